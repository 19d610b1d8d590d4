"""Every mode through the real command line with the console reporter: as cron runs it (output
to a pipe) and as a person runs it (a pseudo-terminal, progress bars drawn). Each run must end
with exit 0, no traceback, and a summary whose counts are the graph's.

The module has its own control database and copies of the Customer 360 sources (it changes
their rows), and leaves a graph written by bolt mode from those copies.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from typing import Any

import psycopg
import pytest
from neo4j import Driver

from bulk360 import RunOptions, SilentReporter
from bulk360.errors import InternalError
from bulk360.pipeline import run
from bulk360.settings import Settings
from tests.helpers.cli import CliResult, cli_env, run_cli, summary_counts
from tests.helpers.databases import sample_control
from tests.helpers.services import ROOT, cypher, run_services
from tests.helpers.snapshots import Snapshot

CLI_CONTROL_DB = "bulk360_test_cli_control"
PREFIX = "bulk360_test_cli_"


@pytest.fixture(scope="module")
def cli_settings(
    settings: Settings, pg_conninfo: dict[str, object], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    import_dir = tmp_path_factory.mktemp("cli")
    return sample_control(settings, CLI_CONTROL_DB, import_dir, PREFIX, "customer360")


def bulk360(settings: Settings, *args: str, terminal: bool = False, **kw: Any) -> CliResult:
    return run_cli(settings, settings.import_dir, *args, terminal=terminal, **kw)


def source(settings: Settings, database: str) -> psycopg.Connection[Any]:
    conninfo = {**settings.control_conninfo(), "dbname": PREFIX + database}
    return psycopg.connect(**conninfo, autocommit=True)  # type: ignore[arg-type]


def run_row(settings: Settings, run_id: int | None = None) -> dict[str, Any]:
    with psycopg.connect(**settings.control_conninfo()) as conn:
        cur = conn.cursor(row_factory=psycopg.rows.dict_row)
        if run_id is None:
            row = cur.execute("SELECT * FROM etl_run_logs ORDER BY run_id DESC LIMIT 1").fetchone()
        else:
            row = cur.execute("SELECT * FROM etl_run_logs WHERE run_id = %s", [run_id]).fetchone()
    assert row is not None
    return row


def graph_counts(driver: Driver) -> dict[tuple[str, str], int]:
    nodes = cypher(driver, "MATCH (n) UNWIND labels(n) AS l RETURN l, count(*) AS n")
    rels = cypher(driver, "MATCH ()-[r]->() RETURN type(r) AS t, count(*) AS n")
    return {("nodes", r["l"]): r["n"] for r in nodes} | {
        ("relationships", r["t"]): r["n"] for r in rels
    }


def assert_succeeded(result: CliResult, steps: int) -> dict[tuple[str, str], int]:
    """Exit 0, no traceback, every step printed, a summary table; its counts."""
    assert result.returncode == 0, result.output[-4000:]
    assert "Traceback" not in result.output
    assert f"STEP {steps}/{steps}" in result.output, result.output[-4000:]
    assert ": succeeded" in result.output
    counts = summary_counts(result.output)
    assert counts, result.output[-4000:]
    return counts


def assert_summary_is_the_graph(
    counts: dict[tuple[str, str], int], settings: Settings, driver: Driver
) -> None:
    graph = graph_counts(driver)
    shown = {k: v for k, v in counts.items() if k[0] != "rows"}
    assert shown == graph
    row = run_row(settings)
    assert counts[("rows", "read")] == row["rows_read"]
    assert sum(v for (kind, _), v in shown.items() if kind == "nodes") == row["nodes_written"]


def test_csv_mode_outside_a_terminal(cli_settings: Settings) -> None:
    result = bulk360(cli_settings, "run", "--mode", "csv")
    counts = assert_succeeded(result, 6)
    row = run_row(cli_settings)
    assert row["status"] == "succeeded" and row["mode"] == "csv"
    assert sum(v for (kind, _), v in counts.items() if kind == "nodes") == row["nodes_written"]
    assert counts[("nodes", "Account")] == 400


def test_admin_mode_on_a_terminal(cli_settings: Settings, neo4j_driver: Driver) -> None:
    run_services("neo4j", "stop")
    try:
        result = bulk360(cli_settings, "run", "--mode", "admin", "--overwrite", terminal=True)
    finally:
        run_services("neo4j", "start")
    counts = assert_succeeded(result, 8)
    assert_summary_is_the_graph(counts, cli_settings, neo4j_driver)


def _unknown_ticket_email(settings: Settings) -> str:
    """An e-mail that tickets have and no account has (the sample has two)."""
    with source(settings, "profiles_db") as conn:
        emails = {row[0] for row in conn.execute("SELECT email FROM accounts")}
    with source(settings, "support_db") as conn:
        rows = conn.execute(
            "SELECT customer_email FROM tickets WHERE customer_email IS NOT NULL ORDER BY ticket_id"
        ).fetchall()
    return next(row[0] for row in rows if row[0] not in emails)


def a_day_of_changes(settings: Settings) -> None:
    """What a day does to the three sources: moved foreign keys, an e-mail that re-links
    tickets of another database, an account deleted and inserted again, play events deleted,
    a ticket with its tags inserted in one transaction, a ticket's e-mail set to NULL."""
    unknown = _unknown_ticket_email(settings)
    with source(settings, "profiles_db") as conn:
        conn.execute("UPDATE subscriptions SET account_id = 5 WHERE subscription_id = 10")
        conn.execute("UPDATE payment_methods SET account_id = 6 WHERE payment_method_id = 12")
        conn.execute("UPDATE accounts SET email = %s WHERE account_id = 9", [unknown])
        with conn.transaction():
            kept = conn.execute("SELECT * FROM accounts WHERE account_id = 11").fetchone()
            subs = conn.execute("SELECT * FROM subscriptions WHERE account_id = 11").fetchall()
            conn.execute("DELETE FROM subscriptions WHERE account_id = 11")
            conn.execute("DELETE FROM accounts WHERE account_id = 11")
            assert kept is not None
            marks = ", ".join(["%s"] * len(kept))
            conn.execute(f"INSERT INTO accounts VALUES ({marks})", list(kept))  # type: ignore[arg-type]
            for sub in subs:
                marks = ", ".join(["%s"] * len(sub))
                conn.execute(f"INSERT INTO subscriptions VALUES ({marks})", list(sub))  # type: ignore[arg-type]
    with source(settings, "streaming_db") as conn:
        conn.execute(
            "DELETE FROM play_events WHERE event_id IN (SELECT event_id FROM play_events"
            " ORDER BY event_id LIMIT 3)"
        )
    with source(settings, "support_db") as conn:
        with conn.transaction():
            conn.execute(
                "INSERT INTO tickets (ticket_id, customer_email, subject, status, priority,"
                " created_at) SELECT 9101, email, 'Cannot log in', 'open', 'high',"
                " '2025-11-01 08:00:00+00' FROM (VALUES ('john.smith@email.com')) AS v (email)"
            )
            conn.execute(
                "INSERT INTO ticket_tag_links VALUES (9101, 5, '2025-11-01 08:10:00+00', 'agent.lee'),"
                " (9101, 4, '2025-11-01 08:11:00+00', 'triage-bot')"
            )
        conn.execute("UPDATE tickets SET customer_email = NULL WHERE ticket_id = 2")


def test_a_day_of_changes_syncs_as_cron_runs_it(
    cli_settings: Settings, neo4j_driver: Driver
) -> None:
    unknown = _unknown_ticket_email(cli_settings)
    a_day_of_changes(cli_settings)
    result = bulk360(cli_settings, "run", "--mode", "sync")
    counts = assert_succeeded(result, 7)
    assert_summary_is_the_graph(counts, cli_settings, neo4j_driver)
    row = run_row(cli_settings)
    assert row["mode"] == "sync" and row["diffed_against"] is not None and row["ledger_balanced"]
    # The moved keys took their relationships, the changed e-mail took the tickets along.
    owner = cypher(
        neo4j_driver,
        "MATCH (a:Account)-[:HAS_SUBSCRIPTION]->(:Subscription {subscription_id: 10})"
        " RETURN collect(a.account_id) AS a",
    )
    assert owner[0]["a"] == [5]
    card = cypher(
        neo4j_driver,
        "MATCH (a:Account)-[:HAS_PAYMENT_METHOD]->(:PaymentMethod {payment_method_id: 12})"
        " RETURN collect(a.account_id) AS a",
    )
    assert card[0]["a"] == [6]
    relinked = cypher(
        neo4j_driver,
        "MATCH (a:Account {account_id: 9})-[:SUBMITTED]->(t:Ticket) RETURN collect(DISTINCT"
        " t.customer_email) AS e",
    )
    assert relinked[0]["e"] == [unknown]
    tagged = cypher(
        neo4j_driver,
        "MATCH (:Account {email: 'john.smith@email.com'})-[:SUBMITTED]->(t:Ticket {ticket_id: 9101})"
        "-[:TAGGED_WITH]->(g:Tag) RETURN count(g) AS n",
    )
    assert tagged[0]["n"] == 2
    assert (
        cypher(
            neo4j_driver, "MATCH ()-[r:SUBMITTED]->(:Ticket {ticket_id: 2}) RETURN count(r) AS n"
        )[0]["n"]
        == 0
    )
    synced = Snapshot.take(neo4j_driver)

    # The same sources built from scratch on a terminal give the same graph, element by element.
    fresh = bulk360(cli_settings, "run", "--mode", "bolt", "--clear", terminal=True)
    assert_summary_is_the_graph(assert_succeeded(fresh, 7), cli_settings, neo4j_driver)
    assert synced.differences(Snapshot.take(neo4j_driver)) == []

    again = bulk360(cli_settings, "run", "--mode", "sync")
    assert_succeeded(again, 7)
    assert "no change since run" in again.output


def test_a_sync_on_a_terminal_shows_what_it_writes(
    cli_settings: Settings, neo4j_driver: Driver
) -> None:
    with source(cli_settings, "profiles_db") as conn:
        conn.execute(
            "UPDATE subscriptions SET plan_id = 1 + plan_id % 4 WHERE subscription_id <= 20"
        )
        conn.execute("UPDATE accounts SET full_name = upper(full_name) WHERE account_id <= 30")
    with source(cli_settings, "streaming_db") as conn:
        conn.execute("DELETE FROM play_events WHERE account_id = 3")
    result = bulk360(cli_settings, "run", "--mode", "sync", terminal=True)
    counts = assert_succeeded(result, 7)
    assert_summary_is_the_graph(counts, cli_settings, neo4j_driver)
    # One bar per kind of write: nodes upserted, relationship pairs replaced, nodes deleted.
    for bar in ("Account upserted", "SUBSCRIBED_TO.", "pairs replaced", "PlayEvent deleted"):
        assert bar in result.output, result.output[-4000:]
    changed = Counter(
        (row["label"] or row["relationship_type"], row["rows_updated"])
        for row in _table_rows(cli_settings, run_row(cli_settings)["run_id"])
    )
    assert changed[("Account", 30)] == 1 and changed[("Subscription", 20)] == 1


def _table_rows(settings: Settings, run_id: int) -> list[dict[str, Any]]:
    with psycopg.connect(**settings.control_conninfo()) as conn:
        cur = conn.cursor(row_factory=psycopg.rows.dict_row)
        return cur.execute("SELECT * FROM etl_table_logs WHERE run_id = %s", [run_id]).fetchall()


def test_an_interrupted_bolt_run_resumes_on_a_terminal(
    cli_settings: Settings, neo4j_driver: Driver
) -> None:
    before = Snapshot.take(neo4j_driver)
    interrupted = bulk360(
        cli_settings,
        *("run", "--mode", "bolt", "--batch-size", "20", "--workers", "1"),
        terminal=True,
        interrupt_when=lambda output: "STEP 6/7" in output and "PlayEvent" in output,
    )
    assert interrupted.returncode == 130, interrupted.output[-3000:]
    assert "interrupted (SIGTERM)" in interrupted.output
    assert "Traceback" not in interrupted.output
    failed = run_row(cli_settings)
    assert failed["status"] == "failed" and failed["published_at"] is not None

    resumed = bulk360(cli_settings, "run", "--resume", terminal=True)
    counts = assert_succeeded(resumed, 4)  # start, verify the folder, load, record
    assert f"resumed run {failed['run_id']}" in resumed.output
    assert_summary_is_the_graph(counts, cli_settings, neo4j_driver)
    assert Snapshot.take(neo4j_driver) == before


class _FailingReporter(SilentReporter):
    """A reporter with a bug at step 5: what an unexpected exception inside a run looks like."""

    def step(self, number: int, total: int, title: str) -> None:
        if number == 5:
            raise KeyError("HAS_SUBSCRIPTION.100")


def test_an_unexpected_error_is_one_line_naming_the_step_and_the_run(
    cli_settings: Settings,
) -> None:
    folders = set(cli_settings.import_dir.iterdir())
    with pytest.raises(InternalError) as caught:
        run(cli_settings, RunOptions(mode="csv"), _FailingReporter())
    row = run_row(cli_settings)
    run_id = row["run_id"]
    assert str(caught.value) == (
        f"run {run_id} stopped: unexpected KeyError in step 5/6 (write): 'HAS_SUBSCRIPTION.100'; "
        f"this is a bug in bulk360: the traceback is in the run row (bulk360 runs show {run_id})"
    )
    assert isinstance(caught.value.__cause__, KeyError)
    assert row["status"] == "failed"
    assert row["error_text"] == "unexpected KeyError in step 5/6 (write): 'HAS_SUBSCRIPTION.100'"
    assert "Traceback" in row["traceback"] and "KeyError" in row["traceback"]
    assert set(cli_settings.import_dir.iterdir()) == folders  # the partial folder is gone
    shown = bulk360(cli_settings, "runs", "show", str(run_id))
    assert shown.returncode == 0 and "KeyError: 'HAS_SUBSCRIPTION.100'" in shown.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("run", "--mode", "bolt"),
        ("run", "--mode", "sync"),
        ("verify",),
        ("query", "1"),
        ("serve", "--port", "1"),
    ],
)
def test_an_http_neo4j_uri_is_one_line_naming_the_bolt_port(
    cli_settings: Settings, args: tuple[str, ...]
) -> None:
    folders = set(cli_settings.import_dir.iterdir())
    result = bulk360(cli_settings, *args, env={"NEO4J_URI": "http://localhost:7474"})
    assert result.returncode == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: NEO4J_URI 'http://localhost:7474' is not a Bolt URI")
    assert "bolt://" in lines[0] and "neo4j+s://" in lines[0]
    assert "Bolt listens on 7687 (e.g. bolt://localhost:7687)" in lines[0]
    assert set(cli_settings.import_dir.iterdir()) == folders  # nothing written


def test_check_names_an_http_neo4j_uri_and_goes_on(cli_settings: Settings) -> None:
    result = bulk360(cli_settings, "check", env={"NEO4J_URI": "http://localhost:7474"})
    assert result.returncode == 6, result.output
    assert "Traceback" not in result.output
    neo4j = [line for line in result.stdout.splitlines() if " neo4j " in f" {line} "]
    assert neo4j and "FAIL" in neo4j[0] and "is not a Bolt URI" in neo4j[0]
    assert any(
        line.startswith("ok") and "control database" in line for line in result.stdout.splitlines()
    )


def test_the_readme_python_example_runs(cli_settings: Settings, neo4j_driver: Driver) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Using bulk360 from Python", 1)[1]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    result = subprocess.run(
        [sys.executable, "-c", example],
        capture_output=True,
        text=True,
        env=cli_env(cli_settings, cli_settings.import_dir),
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    status, *_ = result.stdout.split()
    assert status == "succeeded" and result.stdout.rstrip().endswith("True")
    assert run_row(cli_settings)["mode"] == "bolt"
    assert graph_counts(neo4j_driver)[("nodes", "Account")] == 400
