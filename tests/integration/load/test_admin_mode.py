"""Admin mode end to end: real PostgreSQL sources, real neo4j-admin, real Neo4j."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from neo4j import Driver

from bulk360 import RunOptions, RunSummary
from bulk360.apps.analytics import questions, run_question
from bulk360.apps.verify import compare_counts
from bulk360.errors import ValidationFailed
from bulk360.pipeline import run
from bulk360.plan import prepare_plan
from bulk360.settings import Settings
from tests.helpers.cli import bulk360_cli, cli_env
from tests.helpers.databases import EDGE_VALUE_CHANGES
from tests.helpers.services import cypher

SOURCE_DB = {"profiles": "profiles_db", "streaming": "streaming_db", "support": "support_db"}


def source_query(settings: Settings, source: str, query: str) -> list[tuple[Any, ...]]:
    conninfo = {**settings.control_conninfo(), "dbname": SOURCE_DB.get(source, source)}
    with psycopg.connect(**conninfo) as conn:
        return conn.execute(query).fetchall()  # type: ignore[arg-type]


def scalar(settings: Settings, source: str, query: str) -> int:
    return int(source_query(settings, source, query)[0][0])


LABEL_TABLES = {
    "Account": ("profiles", "accounts"),
    "Plan": ("profiles", "plans"),
    "PaymentMethod": ("profiles", "payment_methods"),
    "Subscription": ("profiles", "subscriptions"),
    "Media": ("streaming", "media"),
    "PlayEvent": ("streaming", "play_events"),
    "Ticket": ("support", "tickets"),
    "Tag": ("support", "tags"),
    "TicketTagLink": ("support", "ticket_tag_links"),
    "TypeProbe": ("bulk360_type_probe", "all_types"),
    "EdgeValue": ("bulk360_type_probe", "edge_values"),
}


def test_every_label_has_its_rows_minus_rejected(
    admin_run: RunSummary, control_settings: Settings, neo4j_driver: Driver
) -> None:
    assert admin_run.status == "succeeded"
    for label, (source, table) in LABEL_TABLES.items():
        rows = scalar(control_settings, source, f"SELECT count(*) FROM {table}")
        graph = cypher(neo4j_driver, f"MATCH (n:{label}) RETURN count(n) AS n")[0]["n"]
        assert graph == rows - 0 == admin_run.nodes[label], label
    assert admin_run.rows_rejected == 0


def test_every_relationship_type_equals_the_same_join_in_sql(
    admin_run: RunSummary, control_settings: Settings, neo4j_driver: Driver
) -> None:
    s = control_settings
    emails = {r[0] for r in source_query(s, "profiles", "SELECT email FROM accounts")}
    account_ids = {r[0] for r in source_query(s, "profiles", "SELECT account_id FROM accounts")}
    ticket_emails = [r[0] for r in source_query(s, "support", "SELECT customer_email FROM tickets")]
    event_accounts = [
        r[0] for r in source_query(s, "streaming", "SELECT account_id FROM play_events")
    ]
    expected = {
        "HAS_PAYMENT_METHOD": scalar(
            s,
            "profiles",
            "SELECT count(*) FROM accounts a JOIN payment_methods pm USING (account_id)",
        ),
        "HAS_SUBSCRIPTION": scalar(
            s, "profiles", "SELECT count(*) FROM accounts a JOIN subscriptions USING (account_id)"
        ),
        "SUBSCRIBED_TO": scalar(
            s, "profiles", "SELECT count(*) FROM subscriptions JOIN plans USING (plan_id)"
        ),
        "PLAYED": scalar(
            s, "streaming", "SELECT count(*) FROM play_events JOIN media USING (media_id)"
        ),
        "TAGGED_WITH": scalar(
            s,
            "support",
            "SELECT count(*) FROM tickets t JOIN ticket_tag_links l ON t.ticket_id = l.ticket_id"
            " JOIN tags g ON l.tag_id = g.tag_id",
        ),
        # Across databases: the same join done here, in Python.
        "SUBMITTED": sum(1 for e in ticket_emails if e in emails),
        "WATCHED": sum(1 for a in event_accounts if a in account_ids),
    }
    for kind, count in expected.items():
        graph = cypher(neo4j_driver, f"MATCH ()-[r:{kind}]->() RETURN count(r) AS n")[0]["n"]
        assert graph == count == admin_run.relationships[kind], kind
    # The sample's deliberate orphans: a stray card, 2 tickets from unknown e-mails, 3 events of
    # unknown accounts and a link to a purged ticket. The ticket without an e-mail (a NULL key)
    # refers to nothing and is not an orphan.
    assert admin_run.rows_orphaned == 7


def test_verify_finds_no_difference_and_the_run_is_logged(
    admin_run: RunSummary, control_settings: Settings, neo4j_driver: Driver, import_dir: Path
) -> None:
    checks = compare_counts(
        neo4j_driver, control_settings.neo4j_database, import_dir / "manifest.json"
    )
    assert checks and all(c.ok for c in checks), [c for c in checks if not c.ok]
    with psycopg.connect(**control_settings.control_conninfo()) as conn:
        status, nodes = conn.execute(
            "SELECT status, nodes_written FROM etl_run_logs WHERE run_id = %s", [admin_run.run_id]
        ).fetchone() or (None, None)
        kinds = conn.execute(
            "SELECT object_kind, count(*) FROM etl_table_logs WHERE run_id = %s GROUP BY 1 ORDER BY 1",
            [admin_run.run_id],
        ).fetchall()
        artifact = conn.execute(
            "SELECT path, last_run_time IS NOT NULL FROM run_artifacts WHERE run_id = %s",
            [admin_run.run_id],
        ).fetchone()
    assert (status, nodes) == ("succeeded", sum(admin_run.nodes.values()))
    assert kinds == [("node", 11), ("relationship", 7)]
    assert artifact == (str(import_dir / "manifest.json"), True)
    manifest = json.loads((import_dir / "manifest.json").read_text())
    assert {n["label"] for n in manifest["nodes"]} == set(LABEL_TABLES)


def test_ten_questions_return_rows(admin_run: RunSummary, neo4j_driver: Driver) -> None:
    shipped = questions("customer360")
    assert len(shipped) == 10
    for question in shipped:
        _, rows = run_question(neo4j_driver, question, "neo4j")
        assert rows, question.name


def answer(driver: Driver, number: int) -> list[dict[str, Any]]:
    question = next(q for q in questions("customer360") if q.number == number)
    return run_question(driver, question, "neo4j")[1]


def test_shared_cards_equal_sql(
    admin_run: RunSummary, control_settings: Settings, neo4j_driver: Driver
) -> None:
    sql_rows = source_query(
        control_settings,
        "profiles",
        """SELECT p1.account_id, p2.account_id, p1.card_fingerprint,
                  p1.card_type, p1.card_last_four, p2.card_type, p2.card_last_four
           FROM payment_methods p1 JOIN payment_methods p2
             ON p1.card_fingerprint = p2.card_fingerprint AND p1.account_id < p2.account_id
           JOIN accounts a1 ON a1.account_id = p1.account_id
           JOIN accounts a2 ON a2.account_id = p2.account_id
           ORDER BY 3, 1, 2""",
    )
    graph_rows = [tuple(r.values()) for r in answer(neo4j_driver, 1)]
    assert graph_rows == [tuple(r) for r in sql_rows]
    assert any(r[4] == "0427" for r in graph_rows)  # leading zero kept


def test_popular_media_equal_sql(
    admin_run: RunSummary, control_settings: Settings, neo4j_driver: Driver
) -> None:
    sql_rows = source_query(
        control_settings,
        "streaming",
        """SELECT m.media_id, m.title, m.genre,
                  count(*) FILTER (WHERE action IN ('play', 'START')) AS starts,
                  count(*) FILTER (WHERE action IN ('stop', 'FINISH')) AS completions
           FROM play_events e JOIN media m USING (media_id)
           GROUP BY m.media_id HAVING count(*) FILTER (WHERE action IN ('play', 'START')) > 0
           ORDER BY starts DESC, m.media_id LIMIT 20""",
    )
    graph_rows = answer(neo4j_driver, 6)
    assert [
        (r["media_id"], r["title"], r["genre"], r["starts"], r["completions"]) for r in graph_rows
    ] == sql_rows
    for row in graph_rows:
        assert row["completion_rate"] == pytest.approx(
            row["completions"] / row["starts"], abs=0.0005
        )


def test_plays_by_hour_equal_sql(
    admin_run: RunSummary, control_settings: Settings, neo4j_driver: Driver
) -> None:
    sql_rows = source_query(
        control_settings,
        "streaming",
        "SELECT extract(hour FROM event_timestamp AT TIME ZONE 'UTC')::int, count(*)"
        " FROM play_events GROUP BY 1 ORDER BY 1",
    )
    assert [(r["hour"], r["plays"]) for r in answer(neo4j_driver, 10)] == sql_rows


def test_revenue_by_plan_equals_sql(
    admin_run: RunSummary, control_settings: Settings, neo4j_driver: Driver
) -> None:
    subscribers = source_query(
        control_settings,
        "profiles",
        "SELECT p.plan_name, p.monthly_fee, s.account_id FROM subscriptions s JOIN plans p USING (plan_id)"
        " WHERE s.status IN ('active', 'Active')",
    )
    streams: dict[int, int] = dict(
        source_query(
            control_settings, "streaming", "SELECT account_id, count(*) FROM play_events GROUP BY 1"
        )  # type: ignore[arg-type]
    )
    by_plan: dict[str, list[Any]] = {}
    for plan, fee, account in subscribers:
        by_plan.setdefault(plan, [fee, []])[1].append(streams.get(account, 0))
    expected = {
        plan: (len(counts), round(float(fee) * len(counts), 2), round(sum(counts) / len(counts), 2))
        for plan, (fee, counts) in by_plan.items()
    }
    graph = {
        r["plan"]: (r["active_subscribers"], r["monthly_revenue"], r["avg_streams_per_subscriber"])
        for r in answer(neo4j_driver, 5)
    }
    assert graph.keys() == expected.keys()
    for plan, (subs, revenue, avg) in expected.items():
        assert graph[plan][0] == subs
        assert graph[plan][1] == pytest.approx(revenue, abs=0.01)
        assert graph[plan][2] == pytest.approx(avg, abs=0.01)


def test_every_type_round_trips(admin_run: RunSummary, neo4j_driver: Driver) -> None:
    records, _, _ = neo4j_driver.execute_query(
        "MATCH (n:TypeProbe) RETURN n.id AS id, properties(n) AS p ORDER BY id",
        bookmark_manager_=None,
    )
    full, empty = records[0]["p"], records[1]["p"]
    assert full["small"] == -32768 and full["big"] == 9007199254740993
    assert full["real_value"] == pytest.approx(1.5) and full["double_value"] == 2.718281828459045
    assert full["exact"] == pytest.approx(1234.567)
    assert full["flag"] is True
    assert full["body"] == 'She said "hi", then left;\nline two, café ☕ — 日本'
    assert full["short"] == ""
    assert full["code"] == "0042"
    assert full["day"].to_native() == date(2024, 2, 29)
    local = full["local_moment"].to_native()
    assert local == datetime(2024, 3, 10, 2, 30, 15, 123456) and local.tzinfo is None
    moment = full["moment"].to_native()
    assert moment == datetime(2024, 3, 10, 0, 30, 15, 500000, tzinfo=UTC)
    assert full["clock"].to_native() == time(23, 59, 58)
    span = full["span"]
    assert (span.months, span.days, span.seconds) == (1, 2, 3 * 3600 + 4 * 60 + 5)
    assert full["numbers"] == [1, 2, 3]
    assert full["words"] == ["a", "b;c", "d,e"]
    assert full["uid"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert json.loads(full["doc"]) == {"k": [1, 2]}
    assert full["address"] == "192.168.0.1"
    assert full["raw"] == "deadbeef"
    assert "nothing" not in full
    assert set(empty) == {"id"}  # NULL is no property


def test_values_neo4j_cannot_hold_are_counted_and_named_never_changed_silently(
    admin_run: RunSummary, control_settings: Settings, neo4j_driver: Driver, import_dir: Path
) -> None:
    rows = cypher(
        neo4j_driver, "MATCH (n:EdgeValue) RETURN n.id AS id, properties(n) AS p ORDER BY id"
    )
    first, second, third = (r["p"] for r in rows)
    # numeric wider than a double, or unconstrained: every digit, as text.
    assert first["wide"] == "99999999999999999999999999.9999999999"
    assert first["loose"] == "12345678901234567890.5"
    assert second["wide"] == "1.5000000000" and second["loose"] == "1"
    # A declared precision a double or a long holds exactly: numbers.
    assert first["cents"] == 12.34 and first["whole"] == 123456789012
    assert isinstance(first["whole"], int) and second["cents"] == 0.1
    assert first["price"] == "12.50"  # money, without its currency sign
    # Chosen knowingly by a type override: a double, and the rounding is counted.
    assert first["approx"] == 1e26 and second["approx"] == 0.5
    # NULL elements dropped, a multidimensional array flattened, empty arrays not stored.
    assert first["tags"] == ["a"] and first["grid"] == [1, 2, 3, 4]
    assert "tags" not in second and "grid" not in second
    assert set(third) == {"id"}

    manifest = json.loads((import_dir / "manifest.json").read_text())
    entry = next(n for n in manifest["nodes"] if n["label"] == "EdgeValue")
    assert entry["values"] == EDGE_VALUE_CHANGES
    assert sorted(admin_run.values_changed) == sorted(
        [
            "1 value of probe.public.edge_values.approx do not fit a double exactly: rounded",
            "1 value of probe.public.edge_values.grid were empty arrays: stored as no property "
            "(neo4j-admin cannot store one)",
            "1 value of probe.public.edge_values.grid were multidimensional arrays: flattened",
            "1 value of probe.public.edge_values.tags had NULL elements: dropped",
            "1 value of probe.public.edge_values.tags were empty arrays: stored as no property "
            "(neo4j-admin cannot store one)",
        ]
    )
    with psycopg.connect(**control_settings.control_conninfo()) as conn:
        details = conn.execute(
            "SELECT details->'values' FROM etl_table_logs WHERE run_id = %s AND label = 'EdgeValue'",
            [admin_run.run_id],
        ).fetchone()
    assert details == (EDGE_VALUE_CHANGES,)


def test_every_label_and_mapping_balances_its_ledger(
    admin_run: RunSummary, control_settings: Settings
) -> None:
    with psycopg.connect(**control_settings.control_conninfo()) as conn:
        rows = conn.execute(
            "SELECT coalesce(relationship_type, label, table_name), rows_processed, rows_written,"
            " rows_rejected, rows_duplicate, rows_orphaned, rows_fanout, ledger_balanced"
            " FROM etl_table_logs WHERE run_id = %s AND object_kind <> 'table'",
            [admin_run.run_id],
        ).fetchall()
        balanced = conn.execute(
            "SELECT ledger_balanced FROM etl_run_logs WHERE run_id = %s", [admin_run.run_id]
        ).fetchone()
    assert balanced == (True,) and admin_run.ledger_balanced is True
    assert len(rows) == 18
    for name, read, written, rejected, duplicate, orphaned, fanout, ok in rows:
        assert ok is True, name
        assert read + fanout == written + rejected + duplicate + orphaned, name
    ledger = {row[0]: row[1:7] for row in rows}
    # Each play event refers to one account: 3 of 9,063 refer to none (orphans).
    assert ledger["WATCHED"] == (9_063, 9_060, 0, 0, 3, 0)
    # Two tickets from unknown e-mails are orphans; the one without an e-mail is rejected.
    read, written, rejected, _, orphaned, _ = ledger["SUBMITTED"]
    assert (rejected, orphaned) == (1, 2) and read == written + 3
    # A link to a purged ticket: the link table drives TAGGED_WITH.
    assert ledger["TAGGED_WITH"] == (482, 481, 0, 0, 1, 0)


def test_hashed_password_never_leaves_postgres(
    admin_run: RunSummary, control_settings: Settings, neo4j_driver: Driver, import_dir: Path
) -> None:
    plan = prepare_plan(control_settings)
    for table in plan.tables:
        assert "hashed_password" not in table.copy_sql().as_string(None)
    a_hash = source_query(
        control_settings, "profiles", "SELECT hashed_password FROM accounts LIMIT 1"
    )[0][0]
    for path in import_dir.rglob("*"):
        if path.is_file():
            text = path.read_bytes()
            assert b"hashed_password" not in text, path
            assert a_hash.encode() not in text, path
    keys = [r["propertyKey"] for r in cypher(neo4j_driver, "CALL db.propertyKeys()")]
    assert "hashed_password" not in keys


BAD_CONFIGURATIONS = [
    (
        "UPDATE node_label_mappings SET table_name = 'no_such_table' WHERE label = 'Tag'",
        "UPDATE node_label_mappings SET table_name = 'tags' WHERE label = 'Tag'",
        "table public.no_such_table does not exist in source 'support'",
    ),
    (
        "INSERT INTO field_exclusion_rules (source_name, table_name, column_name) VALUES ('profiles', 'accounts', 'no_such_column')",
        "DELETE FROM field_exclusion_rules WHERE column_name = 'no_such_column'",
        "column 'no_such_column' does not exist in profiles.accounts",
    ),
    (
        "UPDATE relationship_mappings SET join_condition = 'a.account_id = x.account_id' WHERE relationship_type = 'WATCHED'",
        "UPDATE relationship_mappings SET join_condition = 'a.account_id = pe.account_id' WHERE relationship_type = 'WATCHED'",
        "alias 'x' in 'x.account_id' is not bound",
    ),
    (
        "UPDATE relationship_mappings SET join_condition = 'a.email = pe.account_id' WHERE relationship_type = 'WATCHED'",
        "UPDATE relationship_mappings SET join_condition = 'a.account_id = pe.account_id' WHERE relationship_type = 'WATCHED'",
        "'a.email = pe.account_id' compares text with int4",
    ),
    (
        "UPDATE relationship_mappings SET join_condition = 'a.account_id = = pe.account_id' WHERE relationship_type = 'WATCHED'",
        "UPDATE relationship_mappings SET join_condition = 'a.account_id = pe.account_id' WHERE relationship_type = 'WATCHED'",
        "is not a valid condition",
    ),
    (
        "UPDATE node_label_mappings SET label = 'Media Item' WHERE label = 'Media'",
        "UPDATE node_label_mappings SET label = 'Media' WHERE label = 'Media Item'",
        "label 'Media Item' is not a valid identifier",
    ),
]


@pytest.mark.parametrize(("break_sql", "repair_sql", "message"), BAD_CONFIGURATIONS)
def test_bad_configuration_fails_before_anything_is_written(
    control_settings: Settings, tmp_path: Path, break_sql: str, repair_sql: str, message: str
) -> None:
    import_dir = tmp_path / "import"
    import_dir.mkdir()
    with psycopg.connect(**control_settings.control_conninfo(), autocommit=True) as conn:
        conn.execute(break_sql)  # type: ignore[arg-type]
        try:
            result = bulk360_cli(control_settings, import_dir, "run", "--mode", "csv")
        finally:
            conn.execute(repair_sql)  # type: ignore[arg-type]
        status, error = conn.execute(
            "SELECT status, error_text FROM etl_run_logs ORDER BY run_id DESC LIMIT 1"
        ).fetchone() or (None, None)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert result.stderr.startswith("error: the configuration has")
    assert status == "failed" and message in (error or "")
    assert list(import_dir.iterdir()) == []


def test_admin_import_refuses_a_running_neo4j(
    admin_run: RunSummary, control_settings: Settings, neo4j_driver: Driver
) -> None:
    before = cypher(neo4j_driver, "MATCH (n) RETURN count(n) AS n")[0]["n"]
    with pytest.raises(ValidationFailed, match="Neo4j is running"):
        run(control_settings, RunOptions(mode="admin", overwrite=True))
    assert cypher(neo4j_driver, "MATCH (n) RETURN count(n) AS n")[0]["n"] == before


def test_cli_commands_read_the_run(
    admin_run: RunSummary, control_settings: Settings, tmp_path: Path
) -> None:
    import_root = control_settings.import_dir
    plan = bulk360_cli(control_settings, import_root, "plan")
    assert plan.returncode == 0, plan.stderr
    assert 'COPY (SELECT 0 + row_number() OVER () - 1, "account_id" AS "account_id"' in plan.stdout
    assert "(:Account)-[:SUBMITTED]->(:Ticket)" in plan.stdout
    runs = bulk360_cli(control_settings, import_root, "runs")
    assert runs.returncode == 0 and "succeeded" in runs.stdout, runs.stderr
    shown = bulk360_cli(control_settings, import_root, "runs", "show", str(admin_run.run_id))
    assert shown.returncode == 0, shown.stderr
    assert "profiles.public.accounts" in shown.stdout and "WATCHED" in shown.stdout
    verified = bulk360_cli(control_settings, import_root, "verify")
    assert verified.returncode == 0, verified.stderr
    assert "graph matches the manifest" in verified.stdout
    answered = bulk360_cli(control_settings, import_root, "query", "8")
    assert answered.returncode == 0 and "John Smith" in answered.stdout, answered.stderr
    missing = bulk360_cli(control_settings, import_root, "runs", "show", "999999")
    assert missing.returncode == 2 and "no run 999999" in missing.stderr


def test_uninitialised_control_database_is_a_clear_error(
    control_settings: Settings, tmp_path: Path
) -> None:
    with psycopg.connect(**control_settings.control_conninfo(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS bulk360_test_empty WITH (FORCE)")
        conn.execute("CREATE DATABASE bulk360_test_empty")
    empty = replace(control_settings, etl_db_name="bulk360_test_empty")
    result = bulk360_cli(empty, tmp_path, "runs")
    assert result.returncode == 2
    assert "has no bulk360 schema or an older one; run `bulk360 init` first" in result.stderr
    assert "Traceback" not in result.stderr


def test_tables_read_outside_a_terminal_keep_every_cell_whole(
    admin_run: RunSummary, control_settings: Settings, tmp_path: Path
) -> None:
    env = {k: v for k, v in cli_env(control_settings, tmp_path).items() if k != "COLUMNS"}

    def piped(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "bulk360", *args], capture_output=True, text=True, env=env
        )
        assert result.returncode == 0, result.stderr
        assert "…" not in result.stdout, args  # no cell cut to fit 80 columns
        return result.stdout

    journey = piped("query", "8")
    assert "john.smith@email.com" in journey and "Premium (active)" in journey
    assert "profiles.public.accounts" in piped("runs", "show", str(admin_run.run_id))
