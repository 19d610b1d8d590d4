"""Sync mode against real PostgreSQL and Neo4j: only what changed is written, and the graph is
then, element by element, the graph a fresh ``--mode bolt --clear`` build of the same sources.

The module has its own control database and its own copies of the Customer 360 sources (the
tests change their rows), and leaves the graph built by bolt mode from those copies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from neo4j import Driver

from benchmarks.latency import LatencyProxy
from bulk360 import RunOptions, RunSummary
from bulk360.errors import TargetError
from bulk360.pipeline import run
from bulk360.settings import Settings
from tests.helpers.cli import bulk360_cli
from tests.helpers.databases import sample_control
from tests.helpers.distance import distant, drop_connections_while_writing
from tests.helpers.services import cypher
from tests.helpers.snapshots import Snapshot

SYNC_CONTROL_DB = "bulk360_test_sync_control"
PREFIX = "bulk360_test_sync_"


@pytest.fixture(scope="module")
def sync_settings(
    settings: Settings, pg_conninfo: dict[str, object], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    import_dir = tmp_path_factory.mktemp("sync")
    return sample_control(settings, SYNC_CONTROL_DB, import_dir, PREFIX, "customer360")


def source(settings: Settings, database: str, *statements: str) -> None:
    conninfo = {**settings.control_conninfo(), "dbname": PREFIX + database}
    with psycopg.connect(**conninfo, autocommit=True) as conn:  # type: ignore[arg-type]
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]


def fresh_bolt_build(settings: Settings, driver: Driver) -> Snapshot:
    """The graph ``--mode bolt --clear`` builds from the sources as they are now."""
    assert run(settings, RunOptions(mode="bolt", clear=True, workers=2)).status == "succeeded"
    return Snapshot.take(driver)


def sync(settings: Settings, **options: Any) -> RunSummary:
    return run(settings, RunOptions(mode="sync", **({"workers": 2} | options)))


def test_a_sync_without_an_earlier_run_refuses(sync_settings: Settings, tmp_path: Path) -> None:
    result = bulk360_cli(sync_settings, sync_settings.import_dir, "run", "--mode", "sync")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "error: no succeeded run built the graph of database 'neo4j' yet, so there is nothing "
        "to compare with: rebuild it with --mode bolt --clear (or --mode sync --full)"
    )


@pytest.fixture(scope="module")
def baseline(sync_settings: Settings, neo4j_driver: Driver) -> Snapshot:
    """The graph of the unchanged sources, written by a full sync (as bolt mode --clear)."""
    summary = sync(sync_settings, full=True)
    assert summary.status == "succeeded" and summary.load is not None
    return Snapshot.take(neo4j_driver)


CHANGES = {
    "profiles_db": (
        # Inserted: an account with a card and a subscription.
        "INSERT INTO accounts (account_id, email, full_name, hashed_password, created_at,"
        " is_verified) VALUES (9001, 'new.person@email.com', 'New Person', 'x',"
        " '2025-10-01 10:00:00+00', true)",
        "INSERT INTO payment_methods (payment_method_id, account_id, card_type, card_last_four,"
        " card_fingerprint, expires_on, is_default, added_at) VALUES (990001, 9001, 'Visa', '0001',"
        " 'fp-new', '2028-01-31', true, '2025-10-01 10:00:00+00')",
        "INSERT INTO subscriptions (subscription_id, account_id, plan_id, status, started_at,"
        " auto_renew, billing_cycle) VALUES (990001, 9001, 2, 'active', '2025-10-01 10:00:00+00',"
        " true, interval '1 month')",
        # Updated: a text, a timestamp, a value set to NULL; a foreign key moved to another plan.
        "UPDATE accounts SET full_name = 'Renamed Person', created_at = '2024-01-02 03:04:05+00',"
        " marketing_opt_in = NULL WHERE account_id = 2",
        "UPDATE subscriptions SET plan_id = CASE plan_id WHEN 1 THEN 2 ELSE 1 END"
        " WHERE subscription_id = 3",
        # Deleted: an account with relationships (its subscriptions first, for the foreign key).
        "DELETE FROM subscriptions WHERE account_id = 7",
        "DELETE FROM accounts WHERE account_id = 7",
    ),
    "streaming_db": (
        "INSERT INTO play_events (event_id, account_id, media_id, action, event_timestamp)"
        " VALUES (900001, 9001, 1, 'play', '2025-10-02 20:00:00+00')",
        "UPDATE media SET title = 'A New Title' WHERE media_id = 3",
        "DELETE FROM play_events WHERE event_id IN (SELECT event_id FROM play_events"
        " ORDER BY event_id LIMIT 2)",
    ),
    "support_db": (
        "INSERT INTO tickets (ticket_id, customer_email, subject, status, priority, created_at)"
        " VALUES (9001, 'new.person@email.com', 'Hello', 'open', 'low', '2025-10-03 09:00:00+00')",
        "UPDATE tickets SET status = 'closed' WHERE ticket_id = 1",
        # A link-table row: a TicketTagLink node and a TAGGED_WITH relationship go.
        "DELETE FROM ticket_tag_links WHERE (ticket_id, tag_id) IN (SELECT ticket_id, tag_id"
        " FROM ticket_tag_links ORDER BY ticket_id, tag_id LIMIT 1)",
    ),
}


def test_a_sync_writes_only_the_changes_and_gives_the_fresh_build(
    sync_settings: Settings, baseline: Snapshot, neo4j_driver: Driver, distance: LatencyProxy
) -> None:
    for database, statements in CHANGES.items():
        source(sync_settings, database, *statements)
    # At a 20 ms round trip, 8 writers.
    summary = sync(distant(sync_settings, distance), workers=8, batch_size=50)
    assert summary.status == "succeeded" and summary.ledger_balanced
    assert summary.retries == 0
    changes = summary.changes
    assert changes["Account"] == {"inserted": 1, "updated": 1, "deleted": 1}
    assert changes["PlayEvent"] == {"inserted": 1, "updated": 0, "deleted": 2}
    assert changes["TicketTagLink"]["deleted"] == 1
    assert changes["Plan"] == {"inserted": 0, "updated": 0, "deleted": 0}
    assert (changes["Subscription"]["inserted"], changes["Subscription"]["updated"]) == (1, 1)
    synced = Snapshot.take(neo4j_driver)
    # The foreign key that moved took its relationship to the other plan.
    plans = cypher(
        neo4j_driver,
        "MATCH (:Subscription {subscription_id: 3})-[:SUBSCRIBED_TO]->(p:Plan) RETURN p.plan_id AS p",
    )
    conninfo = {**sync_settings.control_conninfo(), "dbname": PREFIX + "profiles_db"}
    with psycopg.connect(**conninfo) as conn:  # type: ignore[arg-type]
        plan = conn.execute(
            "SELECT plan_id FROM subscriptions WHERE subscription_id = 3"
        ).fetchone()
    assert [r["p"] for r in plans] == [plan[0] if plan else None]
    account = cypher(neo4j_driver, "MATCH (a:Account {account_id: 2}) RETURN properties(a) AS p")
    assert account[0]["p"]["full_name"] == "Renamed Person"
    assert "marketing_opt_in" not in account[0]["p"]  # a value that became NULL is removed
    with psycopg.connect(**sync_settings.control_conninfo()) as conn:
        logged = conn.execute(
            "SELECT rows_inserted, rows_updated, rows_deleted FROM etl_table_logs"
            " WHERE run_id = %s AND label = 'Account'",
            [summary.run_id],
        ).fetchone()
        diffed = conn.execute(
            "SELECT diffed_against FROM etl_run_logs WHERE run_id = %s", [summary.run_id]
        ).fetchone()
    assert logged == (1, 1, 1) and diffed == (summary.diffed_against,)
    fresh = fresh_bolt_build(sync_settings, neo4j_driver)
    assert synced.differences(fresh) == []
    assert synced == fresh


def test_a_sync_right_after_a_sync_writes_nothing(
    sync_settings: Settings, baseline: Snapshot, neo4j_driver: Driver
) -> None:
    before = Snapshot.take(neo4j_driver)
    first = sync(sync_settings)
    again = sync(sync_settings)
    for summary in (first, again):
        assert summary.status == "succeeded" and summary.load is not None
        assert summary.load.diffed_against is not None  # compared, not written whole
    assert again.load is not None and not again.load.graph_nodes  # nothing written to count
    assert not any(any(c.values()) for c in again.changes.values())
    assert any(note.startswith("no change since run") for note in again.notes)
    assert Snapshot.take(neo4j_driver) == before
    shown = bulk360_cli(sync_settings, sync_settings.import_dir, "runs", "show", str(again.run_id))
    assert f"compared with run {first.run_id}" in shown.stdout


def test_a_graph_changed_by_hand_is_refused(
    sync_settings: Settings, baseline: Snapshot, neo4j_driver: Driver
) -> None:
    cypher(neo4j_driver, "CREATE (:Account {account_id: -1, email: 'by.hand@email.com'})")
    try:
        with pytest.raises(TargetError) as caught:
            sync(sync_settings)
    finally:
        cypher(neo4j_driver, "MATCH (a:Account {account_id: -1}) DELETE a")
    message = str(caught.value)
    assert message.startswith("the graph does not match run ")
    assert "Account " in message and "it was changed outside bulk360" in message
    assert message.endswith("rebuild it with --mode bolt --clear (or --mode sync --full)")
    assert sync(sync_settings).status == "succeeded"  # as it was: the sync goes through


def test_an_exclusion_rule_added_between_runs_removes_the_property(
    sync_settings: Settings, baseline: Snapshot, neo4j_driver: Driver
) -> None:
    with psycopg.connect(**sync_settings.control_conninfo(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO field_exclusion_rules (source_name, table_name, column_name, reason)"
            " VALUES ('profiles', 'accounts', 'full_name', 'personal data')"
        )
        try:
            summary = sync(sync_settings)
            left = cypher(
                neo4j_driver,
                "MATCH (a:Account) WHERE a.full_name IS NOT NULL RETURN count(a) AS n",
            )
        finally:
            conn.execute("DELETE FROM field_exclusion_rules WHERE column_name = 'full_name'")
    accounts = summary.nodes["Account"]
    assert summary.status == "succeeded" and accounts > 300
    assert summary.changes["Account"]["updated"] == accounts  # every account
    assert left[0]["n"] == 0
    back = sync(sync_settings)
    assert back.changes["Account"]["updated"] == accounts
    assert cypher(neo4j_driver, "MATCH (a:Account {account_id: 1}) RETURN a.full_name AS n")[0]["n"]


def test_connections_dropped_mid_sync_fail_and_the_next_sync_converges(
    sync_settings: Settings, baseline: Snapshot, neo4j_driver: Driver, distance: LatencyProxy
) -> None:
    # Every play event changes: thousands of updates, written in batches of 5 by one writer.
    source(
        sync_settings,
        "streaming_db",
        "UPDATE play_events SET position_seconds = -1 - (event_id % 997)",
    )
    code, stdout, stderr = drop_connections_while_writing(
        sync_settings,
        distance,
        neo4j_driver,
        "sync",
        "MATCH (e:PlayEvent) WHERE e.position_seconds < 0 RETURN count(e) > 100 AS started",
    )
    assert code == 4, stdout + stderr
    assert "Traceback" not in stderr
    assert "run the sync again to complete it" in stderr.strip().splitlines()[-1]
    with psycopg.connect(**sync_settings.control_conninfo()) as conn:
        status = conn.execute(
            "SELECT status FROM etl_run_logs ORDER BY run_id DESC LIMIT 1"
        ).fetchone()
    assert status == ("failed",)

    converged = sync(sync_settings)
    assert converged.status == "succeeded" and converged.ledger_balanced
    assert any("failed after run" in note for note in converged.notes)
    synced = Snapshot.take(neo4j_driver)
    assert synced == fresh_bolt_build(sync_settings, neo4j_driver)
