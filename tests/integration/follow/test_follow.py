"""``bulk360 follow`` against real PostgreSQL (logical decoding) and Neo4j: the graph it keeps
equals, element by element, a fresh ``--mode bolt --clear`` build of the sources as they are.

The module has its own control database and copies of both samples' sources (it changes their
rows); every test leaves following stopped and dropped.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from neo4j import Driver

from benchmarks.latency import LatencyProxy
from bulk360 import RunOptions
from bulk360.pipeline import run
from bulk360.settings import Settings
from tests.helpers.cli import CliResult, cli_env, run_cli
from tests.helpers.databases import sample_control
from tests.helpers.distance import distant
from tests.helpers.services import cypher, run_services, superuser_sql
from tests.helpers.services import wait_for as wait_for_condition
from tests.helpers.snapshots import Snapshot

FOLLOW_CONTROL_DB = "bulk360_test_follow_control"
PREFIX = "bulk360_test_follow_"
SECRET = "never-leaves-postgres-7f3a"
"""A hashed_password the tests write: excluded, it must appear nowhere bulk360 keeps."""


@pytest.fixture(scope="module")
def follow_settings(
    settings: Settings, pg_conninfo: dict[str, object], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    import_dir = tmp_path_factory.mktemp("follow")
    return sample_control(
        settings, FOLLOW_CONTROL_DB, import_dir, PREFIX, "customer360", "ecommerce"
    )


@pytest.fixture
def following(follow_settings: Settings) -> Iterator[Settings]:
    """Following is stopped and dropped after the test, whatever happened."""
    try:
        yield follow_settings
    finally:
        bulk360(follow_settings, "follow", "stop", "--drop")


def bulk360(settings: Settings, *args: str, **kw: Any) -> CliResult:
    return run_cli(settings, settings.import_dir, *args, **kw)


def source(settings: Settings, database: str, *statements: str) -> None:
    conninfo = {**settings.control_conninfo(), "dbname": PREFIX + database}
    with psycopg.connect(**conninfo, autocommit=True) as conn:  # type: ignore[arg-type]
        conn.execute("SET synchronous_commit = on")  # the stream has each commit at once
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]


def fresh_build(settings: Settings, driver: Driver) -> Snapshot:
    """The graph ``--mode bolt --clear`` builds from the sources as they are now."""
    assert run(settings, RunOptions(mode="bolt", clear=True, workers=2)).status == "succeeded"
    return Snapshot.take(driver)


def assert_ok(result: CliResult) -> None:
    assert result.returncode == 0, result.output[-4000:]
    assert "Traceback" not in result.output


def start_following(settings: Settings, *args: str) -> subprocess.Popen[str]:
    """``bulk360 follow`` as a service runs it, windows of at most half a second."""
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "bulk360", "follow", "--max-lag", "0.5", "--batch-size", "50"),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(settings, settings.import_dir),
    )


def alive(follower: subprocess.Popen[str]) -> None:
    if follower.poll() is not None:
        stdout, stderr = follower.communicate()
        raise AssertionError(f"the follower ended ({follower.returncode}): {stdout}{stderr}")


def wait_for(condition: Any, what: str, seconds: float = 120) -> None:
    """Each check of the follower opens a connection: asked three times a second."""
    wait_for_condition(condition, what, seconds, every=0.3)


def caught_up(settings: Settings) -> bool:
    """Whether the follower found nothing left to apply, in every source, after this moment:
    it records when (its peeks and ours cannot share a slot)."""
    with psycopg.connect(**settings.control_conninfo()) as conn:
        row = conn.execute(
            "SELECT count(*) > 0 AND bool_and(caught_up_at > %s) FROM etl_follow_sources",
            [caught_up.since],  # type: ignore[attr-defined]
        ).fetchone()
    return bool(row and row[0])


def changed_now(settings: Settings) -> None:
    """What :func:`caught_up` waits for: the sources' changes up to now."""
    with psycopg.connect(**settings.control_conninfo()) as conn:
        row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    caught_up.since = row[0]  # type: ignore[attr-defined]


# ---- a writer while following starts ------------------------------------------------------


def test_following_starts_while_a_writer_commits_and_loses_nothing(
    following: Settings, neo4j_driver: Driver
) -> None:
    """Accounts with a card and a subscription, one transaction each, committed before, during
    and after the start: after --once every one is in the graph whole, none twice."""
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        conninfo = {**following.control_conninfo(), "dbname": PREFIX + "profiles_db"}
        with psycopg.connect(**conninfo, autocommit=True) as conn:  # type: ignore[arg-type]
            key = 20_000
            while not stop.is_set():
                key += 1
                with conn.transaction():
                    conn.execute(
                        "INSERT INTO accounts (account_id, email, full_name, hashed_password,"
                        " created_at, is_verified) VALUES (%s, %s, 'Writer', %s, now(), true)",
                        [key, f"writer.{key}@email.com", SECRET],
                    )
                    conn.execute(
                        "INSERT INTO payment_methods VALUES (%s, %s, 'Visa', '0001', 'fp-w',"
                        " '2028-01-31', true, now())",
                        [key, key],
                    )
                    conn.execute(
                        "INSERT INTO subscriptions (subscription_id, account_id, plan_id, status,"
                        " started_at, auto_renew, billing_cycle) VALUES (%s, %s, 1, 'active',"
                        " now(), true, interval '1 month')",
                        [key, key],
                    )
                written.append(key)
                time.sleep(0.02)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        wait_for(lambda: len(written) > 20, "the writer's first transactions")
        started = bulk360(following, "follow", "--once", "--clear")
        print("first follow", time.strftime("%X"), started.output[-1500:])
        assert_ok(started)
        assert "follow session" in started.output and "(snapshot)" in started.output
        after = len(written)
        wait_for(lambda: len(written) > after + 20, "more transactions")
    finally:
        stop.set()
        thread.join()
    print("second follow", time.strftime("%X"))
    second = bulk360(following, "follow", "--once")
    print("done", time.strftime("%X"), second.output[-800:])
    assert_ok(second)
    rows = cypher(
        neo4j_driver,
        "MATCH (a:Account) WHERE a.account_id > 20000 OPTIONAL MATCH (a)-[:HAS_PAYMENT_METHOD]->(p)"
        " OPTIONAL MATCH (a)-[:HAS_SUBSCRIPTION]->(s)"
        " RETURN a.account_id AS a, count(DISTINCT p) AS p, count(DISTINCT s) AS s",
    )
    assert sorted(r["a"] for r in rows) == written
    assert all(r["p"] == 1 and r["s"] == 1 for r in rows), rows
    followed = Snapshot.take(neo4j_driver)
    assert followed.differences(fresh_build(following, neo4j_driver)) == []


# ---- a day of changes, applied as they happen ----------------------------------------------


def a_day_of_changes(settings: Settings) -> None:
    source(
        settings,
        "profiles_db",
        # inserted, with a NULL; a moved foreign key; a changed e-mail that re-links tickets
        "INSERT INTO accounts (account_id, email, full_name, hashed_password, created_at,"
        f" is_verified, marketing_opt_in) VALUES (9001, 'new.person@email.com', 'New', '{SECRET}',"
        " '2025-10-01 10:00:00+00', true, NULL)",
        "UPDATE accounts SET full_name = 'Renamed', marketing_opt_in = NULL WHERE account_id = 2",
        "UPDATE subscriptions SET account_id = 5 WHERE subscription_id = 10",
        "UPDATE payment_methods SET account_id = 6 WHERE payment_method_id = 12",
        "UPDATE accounts SET email = (SELECT email FROM accounts WHERE account_id = 4) || '.old'"
        " WHERE account_id = 4",
    )
    source(
        settings,
        "support_db",
        # the tickets of account 4's old e-mail now belong to nobody; a new ticket with its tags
        "INSERT INTO tickets (ticket_id, customer_email, subject, status, priority, created_at)"
        " VALUES (9001, 'new.person@email.com', 'Hello', 'open', 'low', '2025-10-03 09:00:00+00')",
        "INSERT INTO ticket_tag_links VALUES (9001, 5, '2025-10-03 09:10:00+00', 'agent.lee')",
        "DELETE FROM ticket_tag_links WHERE (ticket_id, tag_id) IN (SELECT ticket_id, tag_id"
        " FROM ticket_tag_links ORDER BY ticket_id, tag_id LIMIT 2)",
        "UPDATE tickets SET customer_email = NULL WHERE ticket_id = 3",
        # a TRUNCATE, and half of the rows inserted again in the same transaction
        "BEGIN; CREATE TEMP TABLE links AS SELECT * FROM ticket_tag_links WHERE ticket_id % 2 = 0;"
        " TRUNCATE ticket_tag_links; INSERT INTO ticket_tag_links SELECT * FROM links; COMMIT",
    )
    source(
        settings,
        "profiles_db",
        # a node with relationships deleted, then inserted again
        "BEGIN; CREATE TEMP TABLE kept AS SELECT * FROM subscriptions WHERE account_id = 8;"
        " DELETE FROM subscriptions WHERE account_id = 8; CREATE TEMP TABLE gone AS SELECT * FROM"
        " accounts WHERE account_id = 8; DELETE FROM accounts WHERE account_id = 8; COMMIT",
        "BEGIN; INSERT INTO accounts SELECT * FROM gone; INSERT INTO subscriptions SELECT * FROM"
        " kept; COMMIT",
    )
    source(
        settings,
        "streaming_db",
        "DELETE FROM play_events WHERE event_id IN (SELECT event_id FROM play_events"
        " ORDER BY event_id LIMIT 3)",
        "UPDATE media SET title = 'A New Title' WHERE media_id = 3",
    )
    source(
        settings,
        "shop",
        # an event's type changes (its relationship's type with it); an order line's quantity
        "UPDATE events SET event_type = 'purchase' WHERE id = (SELECT min(id) FROM events"
        " WHERE event_type = 'view')",
        "UPDATE order_items SET quantity = quantity + 1 WHERE order_id = (SELECT min(order_id)"
        " FROM order_items)",
        "UPDATE categories SET parent_id = NULL WHERE id = (SELECT max(id) FROM categories)",
    )


def test_a_day_of_changes_applied_while_following_equals_a_fresh_build(
    following: Settings, neo4j_driver: Driver, distance: LatencyProxy
) -> None:
    assert_ok(bulk360(following, "follow", "--once", "--clear"))
    follower = start_following(distant(following, distance))  # Neo4j 20 ms away
    try:
        a_day_of_changes(following)
        changed_now(following)
        wait_for(lambda: alive(follower) or caught_up(following), "the follower catching up", 180)
        status = bulk360(following, "follow", "status")
        assert_ok(status)
        assert "running" in status.stdout and "bulk360_" in status.stdout
    finally:
        follower.send_signal(signal.SIGTERM)
        stdout, stderr = follower.communicate(timeout=120)
    assert follower.returncode == 0, stdout + stderr
    assert "Traceback" not in stderr and "follow session" in stdout
    followed = Snapshot.take(neo4j_driver)
    purchases = cypher(neo4j_driver, "MATCH ()-[r:PURCHASED]->() RETURN count(r) AS n")[0]["n"]
    assert followed.differences(fresh_build(following, neo4j_driver)) == []
    assert (
        cypher(neo4j_driver, "MATCH ()-[r:PURCHASED]->() RETURN count(r) AS n")[0]["n"] == purchases
    )
    with psycopg.connect(**following.control_conninfo()) as conn:
        session = conn.execute(
            "SELECT run_id, status FROM etl_run_logs WHERE mode = 'follow' ORDER BY run_id DESC LIMIT 1"
        ).fetchone()
        assert session is not None and session[1] == "succeeded"
        logged = dict(
            conn.execute(
                "SELECT coalesce(label, relationship_type), rows_inserted FROM etl_table_logs"
                " WHERE run_id = %s",
                [session[0]],
            ).fetchall()
        )
    assert logged["Account"] >= 1 and logged["Ticket"] >= 1


# ---- faults --------------------------------------------------------------------------------


def a_quarter_of_play_events_change(settings: Settings, value: int) -> None:
    source(
        settings,
        "streaming_db",
        f"UPDATE play_events SET position_seconds = {value} - (event_id % 997)"
        " WHERE event_id % 4 = 0",
    )


def test_a_killed_follower_and_a_cut_network_converge(
    following: Settings, neo4j_driver: Driver, distance: LatencyProxy
) -> None:
    assert_ok(bulk360(following, "follow", "--once", "--clear"))
    # 1. SIGKILL in the middle of a window of thousands of updates, written 50 rows a batch.
    a_quarter_of_play_events_change(following, -1)
    follower = start_following(following)
    try:
        wait_for(
            lambda: cypher(
                neo4j_driver,
                "MATCH (e:PlayEvent) WHERE e.position_seconds < 0 RETURN count(e) > 100 AS b",
            )[0]["b"],
            "the first writes",
        )
    finally:
        os.kill(follower.pid, signal.SIGKILL)
        follower.communicate(timeout=60)
    assert_ok(bulk360(following, "follow", "--once"))
    assert Snapshot.take(neo4j_driver).differences(fresh_build(following, neo4j_driver)) == []

    # 2. The network to Neo4j cut while a follower writes through the 20 ms proxy (every
    #    connection dropped, new ones refused): one line once its 3 s of retries are spent,
    #    then the next follower converges.
    a_quarter_of_play_events_change(following, -2000)
    follower = start_following(distant(following, distance), "--retry-seconds", "3")
    try:
        wait_for(
            lambda: cypher(
                neo4j_driver,
                "MATCH (e:PlayEvent) WHERE e.position_seconds < -1000 RETURN count(e) > 100 AS b",
            )[0]["b"],
            "the first writes",
        )
        distance.refuse(300)
        distance.drop()
        # If the window was written before the network went, the next one meets it cut.
        source(following, "streaming_db", "UPDATE media SET title = 'Down' WHERE media_id = 5")
        stdout, stderr = follower.communicate(timeout=300)
    finally:
        distance.refuse(0)
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 4, stdout + stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("error: writing to Neo4j at")
    assert_ok(bulk360(following, "follow", "--once"))
    assert Snapshot.take(neo4j_driver).differences(fresh_build(following, neo4j_driver)) == []


def test_a_restarted_source_is_followed_again(following: Settings, neo4j_driver: Driver) -> None:
    """PostgreSQL restarts (the sources and the control database with it): the running
    follower connects again and goes on; what it applied stays right."""
    assert_ok(bulk360(following, "follow", "--once", "--clear"))
    follower = start_following(following)
    try:
        source(
            following,
            "profiles_db",
            "UPDATE accounts SET full_name = 'Before' WHERE account_id = 1",
        )
        changed_now(following)
        wait_for(lambda: alive(follower) or caught_up(following), "the follower catching up")
        run_services("postgres", "stop")
        run_services("postgres", "start")
        source(
            following, "profiles_db", "UPDATE accounts SET full_name = 'After' WHERE account_id = 1"
        )
        changed_now(following)
        wait_for(lambda: alive(follower) or caught_up(following), "the follower going on")
    finally:
        follower.send_signal(signal.SIGTERM)
        stdout, stderr = follower.communicate(timeout=120)
    assert follower.returncode == 0, stdout + stderr
    assert "Traceback" not in stdout + stderr
    assert "the connection was lost" in stdout and "connecting again" in stdout
    assert (
        cypher(neo4j_driver, "MATCH (a:Account {account_id: 1}) RETURN a.full_name AS n")[0]["n"]
        == "After"
    )
    assert_ok(bulk360(following, "follow", "--once"))
    assert Snapshot.take(neo4j_driver).differences(fresh_build(following, neo4j_driver)) == []


# ---- what never leaves PostgreSQL ----------------------------------------------------------


def test_an_excluded_column_appears_nowhere(following: Settings, neo4j_driver: Driver) -> None:
    assert_ok(bulk360(following, "follow", "--once", "--clear"))
    source(
        following,
        "profiles_db",
        "INSERT INTO accounts (account_id, email, full_name, hashed_password, created_at,"
        f" is_verified) VALUES (9500, 'secret.keeper@email.com', 'Keeper', '{SECRET}', now(), true)",
        f"UPDATE accounts SET hashed_password = '{SECRET}' WHERE account_id = 3",
    )
    # The decoded stream: the slot's messages hold no excluded value.
    conninfo = {**following.control_conninfo(), "dbname": PREFIX + "profiles_db"}
    with psycopg.connect(**conninfo) as conn:  # type: ignore[arg-type]
        slot, publication = conn.execute(
            "SELECT slot_name, (SELECT pubname FROM pg_publication) FROM pg_replication_slots"
            " WHERE database = current_database()"
        ).fetchone() or ("", "")
        stream = b"".join(
            bytes(row[0])
            for row in conn.execute(
                "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, NULL,"
                " 'proto_version', '1', 'publication_names', %s)",
                [slot, publication],
            )
        )
        published = conn.execute(
            "SELECT attnames FROM pg_publication_tables WHERE tablename = 'accounts'"
        ).fetchone()
    assert b"secret.keeper@email.com" in stream  # the change is there
    assert SECRET.encode() not in stream and b"hashed_password" not in stream
    assert published is not None and "hashed_password" not in published[0]
    assert_ok(bulk360(following, "follow", "--once"))
    # Nothing follow keeps, and nothing in the graph.
    kept = [p for p in following.import_dir.rglob("*") if p.is_file()]
    assert kept and not any(SECRET.encode() in p.read_bytes() for p in kept)
    assert not any(b"hashed_password" in p.read_bytes() for p in kept if "follow" in p.parts)
    found = cypher(
        neo4j_driver,
        "MATCH (n) WHERE any(k IN keys(n) WHERE k = 'hashed_password' OR n[k] = $s)"
        " RETURN count(n) AS n",
        s=SECRET,
    )
    assert found[0]["n"] == 0
    keeper = cypher(neo4j_driver, "MATCH (a:Account {account_id: 9500}) RETURN a.email AS e")
    assert keeper == [{"e": "secret.keeper@email.com"}]


# ---- what stops following before anything is created ---------------------------------------


def publications_and_slots(settings: Settings) -> list[str]:
    found = []
    for database in ("profiles_db", "streaming_db", "support_db", "shop"):
        conninfo = {**settings.control_conninfo(), "dbname": PREFIX + database}
        with psycopg.connect(**conninfo) as conn:  # type: ignore[arg-type]
            found += [r[0] for r in conn.execute("SELECT pubname FROM pg_publication")]
            found += [
                r[0]
                for r in conn.execute(
                    "SELECT slot_name FROM pg_replication_slots WHERE database = current_database()"
                )
            ]
    return found


def refused(settings: Settings, *fragments: str) -> CliResult:
    result = bulk360(settings, "follow", "--once")
    assert result.returncode == 2, result.output[-3000:]
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    assert publications_and_slots(settings) == []
    return result


def test_each_source_requirement_is_refused_in_one_line_nothing_created(
    following: Settings,
) -> None:
    # A table without a replica identity.
    source(following, "support_db", "ALTER TABLE ticket_tag_links REPLICA IDENTITY NOTHING")
    try:
        refused(following, "table public.ticket_tag_links has no replica identity")
    finally:
        source(following, "support_db", "ALTER TABLE ticket_tag_links REPLICA IDENTITY DEFAULT")
    # A publication of this name that another control database owns.
    names = bulk360(following, "plan")
    assert_ok(names)
    with psycopg.connect(**following.control_conninfo()) as conn:
        instance = conn.execute("SELECT instance_id::text FROM control_instance").fetchone()
    assert instance is not None
    name = f"bulk360_{instance[0].replace('-', '')[:8]}_shop"
    source(
        following,
        "shop",
        f"CREATE PUBLICATION {name}",
        f"COMMENT ON PUBLICATION {name} IS 'someone else'",
    )
    try:
        result = bulk360(following, "follow", "--once")
        assert (
            result.returncode == 2
            and f"publication {name} exists and belongs to someone else" in result.stderr
        )
    finally:
        source(following, "shop", f"DROP PUBLICATION {name}")
    # A role that may not replicate (only a superuser changes that).
    superuser_sql(f'ALTER ROLE "{following.etl_db_user}" NOREPLICATION')
    try:
        refused(following, f"role {following.etl_db_user} may not use replication slots")
    finally:
        superuser_sql(f'ALTER ROLE "{following.etl_db_user}" REPLICATION')


def test_a_publication_changed_by_hand_is_refused(following: Settings) -> None:
    assert_ok(bulk360(following, "follow", "--once", "--clear"))
    with psycopg.connect(
        **{**following.control_conninfo(), "dbname": PREFIX + "support_db"},
        autocommit=True,  # type: ignore[arg-type]
    ) as conn:
        publication = conn.execute("SELECT pubname FROM pg_publication").fetchone()
        assert publication is not None
        conn.execute(f'ALTER PUBLICATION "{publication[0]}" DROP TABLE tags')
    result = bulk360(following, "follow", "--once")
    assert result.returncode == 2 and "Traceback" not in result.output
    assert f"publication {publication[0]} was changed (public.tags missing)" in result.stderr
    assert "bulk360 follow stop --drop" in result.stderr


# ---- a transaction larger than logical_decoding_work_mem ------------------------------------


def streamed_transactions(settings: Settings) -> int:
    conninfo = {**settings.control_conninfo(), "dbname": PREFIX + "streaming_db"}
    with psycopg.connect(**conninfo) as conn:  # type: ignore[arg-type]
        row = conn.execute(
            "SELECT coalesce(sum(stream_txns), 0) FROM pg_stat_replication_slots s"
            " JOIN pg_replication_slots r USING (slot_name) WHERE r.database = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def test_a_transaction_larger_than_decoding_memory_streams_in_and_in_parts(
    following: Settings, neo4j_driver: Driver
) -> None:
    """With logical_decoding_work_mem at its least (64 kB) a transaction of 20,000 play events
    (one of its subtransactions rolled back) reaches the follower before it commits, waits in
    its spool, and is applied in windows of 5,000 rows: the graph equals a fresh build."""
    database = PREFIX + "streaming_db"
    superuser_sql(f"ALTER DATABASE \"{database}\" SET logical_decoding_work_mem = '64kB'")
    try:
        assert_ok(bulk360(following, "follow", "--once", "--clear"))
        follower = start_following(following, "--max-rows", "5000")
        try:
            source(
                following,
                "streaming_db",
                "BEGIN;"
                " INSERT INTO play_events (event_id, account_id, media_id, action, event_timestamp)"
                " SELECT 700000 + g, 1 + g % 400, 1 + g % 150, 'play', now() FROM"
                " generate_series(1, 20000) g;"
                " SAVEPOINT s; UPDATE play_events SET media_id = 3 WHERE event_id > 700000;"
                " ROLLBACK TO SAVEPOINT s;"
                " UPDATE play_events SET media_id = 7 WHERE event_id BETWEEN 700001 AND 700010;"
                " COMMIT",
            )
            changed_now(following)
            wait_for(lambda: alive(follower) or caught_up(following), "the follower catching up")
        finally:
            follower.send_signal(signal.SIGTERM)
            stdout, stderr = follower.communicate(timeout=120)
        assert follower.returncode == 0, stdout + stderr
        assert streamed_transactions(following) >= 1
        played = cypher(
            neo4j_driver,
            "MATCH (e:PlayEvent)-[:PLAYED]->(m:Media) WHERE e.event_id > 700000"
            " RETURN count(e) AS n, sum(CASE WHEN m.media_id = 7 THEN 1 ELSE 0 END) AS seven",
        )[0]
        assert played["n"] == 20000 and played["seven"] >= 10
        assert Snapshot.take(neo4j_driver).differences(fresh_build(following, neo4j_driver)) == []
    finally:
        superuser_sql(f'ALTER DATABASE "{database}" RESET logical_decoding_work_mem')
        source(following, "streaming_db", "DELETE FROM play_events WHERE event_id > 700000")


# ---- follow's state: missing, damaged, of other control rows, its disk full ------------------


def state_file(settings: Settings) -> Path:
    (found,) = settings.import_dir.glob("follow/*/state.sqlite")
    return found


def test_a_state_that_cannot_be_used_stops_in_one_line_and_clear_rebuilds(
    following: Settings, neo4j_driver: Driver
) -> None:
    assert_ok(bulk360(following, "follow", "--once", "--clear"))
    path = state_file(following)
    # Damaged.
    path.write_bytes(b"\0" * 4096 + path.read_bytes()[4096:])
    damaged = bulk360(following, "follow", "--once")
    assert damaged.returncode == 2 and "Traceback" not in damaged.output, damaged.output
    assert f"follow's state {path} is damaged" in damaged.stderr
    assert "bulk360 follow --clear" in damaged.stderr
    # Missing (the slots are still there).
    path.unlink()
    missing = bulk360(following, "follow", "--once")
    assert missing.returncode == 2 and "Traceback" not in missing.output
    assert "bulk360 follow --clear" in missing.stderr, missing.stderr
    # --clear builds it again.
    source(
        following, "profiles_db", "UPDATE accounts SET full_name = 'Cleared' WHERE account_id = 2"
    )
    assert_ok(bulk360(following, "follow", "--once", "--clear"))
    assert state_file(following).is_file()
    # The control rows change under it: the state is of other rows.
    with psycopg.connect(**following.control_conninfo()) as conn:
        conn.execute(
            "UPDATE relationship_mappings SET property_columns = '{l.tagged_at}'"
            " WHERE relationship_type = 'TAGGED_WITH'"
        )
    try:
        other = bulk360(following, "follow", "--once")
        assert other.returncode == 2 and "Traceback" not in other.output
        assert "was built for other control rows" in other.stderr, other.stderr
        assert_ok(bulk360(following, "follow", "--once", "--clear"))
    finally:
        with psycopg.connect(**following.control_conninfo()) as conn:
            conn.execute(
                "UPDATE relationship_mappings SET property_columns = '{l.tagged_at,l.tagged_by}'"
                " WHERE relationship_type = 'TAGGED_WITH'"
            )
    assert_ok(bulk360(following, "follow", "--once", "--clear"))
    assert Snapshot.take(neo4j_driver).differences(fresh_build(following, neo4j_driver)) == []


def test_a_full_disk_at_a_checkpoint_is_one_line_and_nothing_is_lost(
    following: Settings, neo4j_driver: Driver, tmp_path: Path
) -> None:
    assert_ok(bulk360(following, "follow", "--once", "--clear"))
    folder = state_file(following).parent
    kept = tmp_path / "kept"
    shutil.copytree(folder, kept)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size + (256 << 10)}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert mounted.returncode == 0, mounted.stderr
    try:
        for item in kept.iterdir():
            shutil.copy2(item, folder / item.name)
        # Every play event moves to another medium: the state rewrites each row.
        source(following, "streaming_db", "UPDATE play_events SET media_id = 1 + media_id % 150")
        full = bulk360(following, "follow", "--once")
        assert full.returncode == 4 and "Traceback" not in full.output, full.output
        assert "could not be written" in full.stderr and "free space" in full.stderr
        shutil.rmtree(kept)
        shutil.copytree(folder, kept)  # the store as the failed checkpoint left it
    finally:
        subprocess.run(["umount", str(folder)], check=False)
    shutil.rmtree(folder)
    shutil.copytree(kept, folder)
    assert_ok(bulk360(following, "follow", "--once"))
    assert Snapshot.take(neo4j_driver).differences(fresh_build(following, neo4j_driver)) == []
