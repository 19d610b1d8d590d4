"""Bolt mode against the graph neo4j-admin built from the same rows: element by element, written
at a 20 ms round trip by 8 writers (the ``distance`` proxy)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from neo4j import Driver

from benchmarks.latency import LatencyProxy
from bulk360 import RunOptions, RunSummary, SilentReporter
from bulk360.apps.analytics import questions, run_question
from bulk360.apps.verify import compare_counts
from bulk360.errors import TargetError
from bulk360.load import LoadContext
from bulk360.load.bolt import BoltLoader
from bulk360.load.cypher import count_graph
from bulk360.package.files import NodeFile, RelationshipFile
from bulk360.pipeline import run
from bulk360.settings import Settings
from tests.helpers.cli import bulk360_cli, cli_env
from tests.helpers.databases import EDGE_VALUE_CHANGES
from tests.helpers.distance import distant, drop_connections_while_writing
from tests.helpers.services import cypher
from tests.helpers.snapshots import Snapshot, empty_list


def answers(settings: Settings, driver: Driver) -> dict[str, Any]:
    return {q.name: run_question(driver, q, settings.neo4j_database) for q in questions()}


@dataclass(frozen=True)
class BothGraphs:
    admin: Snapshot
    admin_answers: dict[str, Any]
    bolt: Snapshot
    bolt_answers: dict[str, Any]
    summary: RunSummary


@pytest.fixture(scope="module")
def both_graphs(
    admin_graph: Snapshot,
    control_settings: Settings,
    neo4j_driver: Driver,
    distance: LatencyProxy,
) -> BothGraphs:
    """The admin-built graph, then the same database cleared and written by bolt mode through
    the 20 ms proxy, 8 writers, batches of 100 rows: the sample's relationship files (thousands
    of plays on 150 media, subscriptions on 4 plans) are rounds of up to 8 partitions."""
    admin = Snapshot.take(neo4j_driver)
    assert admin == admin_graph  # nothing changed the graph since the admin build
    admin_answers = answers(control_settings, neo4j_driver)
    options = RunOptions(mode="bolt", clear=True, workers=8, batch_size=100)
    summary = run(distant(control_settings, distance), options)
    return BothGraphs(
        admin,
        admin_answers,
        Snapshot.take(neo4j_driver),
        answers(control_settings, neo4j_driver),
        summary,
    )


def test_bolt_graph_equals_the_admin_graph_element_by_element(both_graphs: BothGraphs) -> None:
    admin, bolt = both_graphs.admin, both_graphs.bolt
    assert both_graphs.summary.status == "succeeded"
    assert sum(admin.nodes.values()) == sum(both_graphs.summary.nodes.values()) > 11_000
    assert sum(admin.relationships.values()) == sum(both_graphs.summary.relationships.values())
    # The one documented difference: empty arrays, which Bolt writes and neo4j-admin cannot.
    assert admin.differences(bolt.without_empty_arrays()) == []
    assert admin == bolt.without_empty_arrays()
    empty = [
        (labels, name) for labels, props in bolt.nodes for name, value in props if empty_list(value)
    ]
    assert sorted(empty) == [(("EdgeValue",), "grid"), (("EdgeValue",), "tags")]


def test_hub_relationships_by_eight_writers_never_deadlock(
    both_graphs: BothGraphs, control_settings: Settings
) -> None:
    """No transaction waits for a lock another holds: no retry for a deadlock or a lock. Other
    retries are counted and named (one suite run of about six had one retry, before its cause
    was recorded; a transaction lost with its connection through the proxy would be one)."""
    summary = both_graphs.summary
    assert summary.load is not None
    causes: dict[str, int] = summary.load.details.get("retry_causes", {})
    assert sum(causes.values()) == summary.retries
    assert [c for c in causes if "Deadlock" in c or "Lock" in c] == [], causes
    with psycopg.connect(**control_settings.control_conninfo()) as conn:
        logged = conn.execute(
            "SELECT transaction_retries FROM etl_run_logs WHERE run_id = %s",
            [summary.run_id],
        ).fetchone()
    assert logged == (summary.retries,)


def test_bolt_writes_empty_arrays_and_names_what_it_changed(
    both_graphs: BothGraphs, neo4j_driver: Driver
) -> None:
    rows = cypher(
        neo4j_driver,
        "MATCH (n:EdgeValue) RETURN n.id AS id, n.tags AS tags, n.grid AS grid ORDER BY id",
    )
    assert [(r["tags"], r["grid"]) for r in rows] == [(["a"], [1, 2, 3, 4]), ([], []), (None, None)]
    changed = both_graphs.summary.values_changed
    # Empty arrays are no change in bolt mode; the other counts are the same as admin mode's.
    assert len(changed) == sum(len(c) for c in EDGE_VALUE_CHANGES.values()) - 2
    assert "1 value of probe.public.edge_values.tags had NULL elements: dropped" in changed
    assert not any("empty arrays" in line for line in changed)


def test_bolt_keeps_the_property_types(both_graphs: BothGraphs, neo4j_driver: Driver) -> None:
    probe = cypher(neo4j_driver, "MATCH (n:TypeProbe {id: 1}) RETURN properties(n) AS p")[0]["p"]
    kinds = {name: type(value).__name__ for name, value in probe.items()}
    assert kinds["big"] == "int" and kinds["exact"] == "float" and kinds["flag"] == "bool"
    assert kinds["day"] == "Date" and kinds["moment"] == "DateTime" and kinds["span"] == "Duration"
    assert probe["numbers"] == [1, 2, 3] and probe["words"] == ["a", "b;c", "d,e"]


def test_ten_questions_answer_alike_on_both_graphs(both_graphs: BothGraphs) -> None:
    assert len(both_graphs.admin_answers) == 10
    assert any(both_graphs.admin_answers.values())
    assert both_graphs.bolt_answers == both_graphs.admin_answers


def test_bolt_run_is_logged_like_admin_mode_and_verifies(
    both_graphs: BothGraphs, control_settings: Settings, neo4j_driver: Driver
) -> None:
    run_id = both_graphs.summary.run_id
    with psycopg.connect(**control_settings.control_conninfo()) as conn:
        mode, status, nodes = conn.execute(
            "SELECT mode, status, nodes_written FROM etl_run_logs WHERE run_id = %s", [run_id]
        ).fetchone() or (None, None, None)
        written = dict(
            conn.execute(
                "SELECT coalesce(relationship_type, label), sum(rows_written) FROM etl_table_logs"
                " WHERE run_id = %s AND status = 'succeeded' GROUP BY 1",
                [run_id],
            ).fetchall()
        )
    assert (mode, status) == ("bolt", "succeeded")
    assert nodes == sum(both_graphs.summary.nodes.values())
    assert written["PlayEvent"] == both_graphs.summary.nodes["PlayEvent"]
    assert written["WATCHED"] == both_graphs.summary.relationships["WATCHED"]
    assert both_graphs.summary.import_dir is not None
    checks = compare_counts(
        neo4j_driver,
        control_settings.neo4j_database,
        both_graphs.summary.import_dir / "manifest.json",
    )
    assert checks and all(check.ok for check in checks)


def test_a_second_bolt_run_changes_nothing(
    both_graphs: BothGraphs, control_settings: Settings, neo4j_driver: Driver
) -> None:
    summary = run(control_settings, RunOptions(mode="bolt", workers=2, batch_size=777))
    assert summary.load is not None
    assert "Account" in summary.load.merged_labels  # the merge path, not a fresh create
    assert summary.ledger_balanced is True
    assert Snapshot.take(neo4j_driver) == both_graphs.bolt


def test_connections_dropped_mid_run_fail_clearly_and_resume_completes(
    both_graphs: BothGraphs,
    control_settings: Settings,
    neo4j_driver: Driver,
    distance: LatencyProxy,
    tmp_path: Path,
) -> None:
    with neo4j_driver.session() as session:
        session.run("MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 5000 ROWS").consume()
    # Small batches on one writer, so that the run is still writing when the network fails;
    # cut once 50 nodes are in (batches the writer has heard committed, 20 ms away).
    code, stdout, stderr = drop_connections_while_writing(
        control_settings,
        distance,
        neo4j_driver,
        "bolt",
        "MATCH (n) RETURN count(n) > 50 AS written",
    )
    assert code == 4, stdout + stderr
    assert "Traceback" not in stderr
    error = stderr.strip().splitlines()[-1]
    assert error.startswith("error: writing to Neo4j at bolt://"), stderr
    assert "run again to complete it" in error
    assert control_settings.neo4j_password not in stdout + stderr

    with psycopg.connect(**control_settings.control_conninfo()) as conn:
        run_id, status, text = conn.execute(
            "SELECT run_id, status, error_text FROM etl_run_logs ORDER BY run_id DESC LIMIT 1"
        ).fetchone() or (None, None, None)
        logged = conn.execute(
            "SELECT status, rows_written, rows_processed FROM etl_table_logs"
            " WHERE run_id = %s AND object_kind <> 'table'",
            [run_id],
        ).fetchall()
    assert status == "failed" and "writing to Neo4j" in (text or "")
    assert any(s == "succeeded" or w > 0 for s, w, _ in logged), logged  # what was written
    assert any(s == "failed" and w < p for s, w, p in logged), logged  # and what was not

    # The folder was published before the load: resuming (through the proxy, whose connections
    # are accepted again) repeats only the load and records.
    resumed = bulk360_cli(
        distant(control_settings, distance), control_settings.import_dir, "run", "--resume"
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    steps = [line for line in resumed.stdout.splitlines() if line.startswith("STEP")]
    assert steps[0].endswith(f"(bolt mode), resuming run {run_id}")
    assert [step.split(" ", 2)[2].split(" ")[0] for step in steps[1:]] == [
        "verify",
        "write",
        "record",
    ]
    assert Snapshot.take(neo4j_driver) == both_graphs.bolt
    listed = bulk360_cli(control_settings, control_settings.import_dir, "runs", "--limit", "2")
    assert f"run {run_id}" in listed.stdout  # the resumed column of the new run


def test_a_wrong_password_fails_before_anything_is_read(
    control_settings: Settings, tmp_path: Path
) -> None:
    result = bulk360_cli(control_settings, tmp_path, "run", "--mode", "bolt")
    assert result.returncode == 0, result.stderr  # the right password works from this folder
    bad = subprocess.run(
        [sys.executable, "-m", "bulk360", "run", "--mode", "bolt"],
        capture_output=True,
        text=True,
        env={
            **cli_env(control_settings, tmp_path / "bad"),
            "NEO4J_PASSWORD": "not-the-password",
        },
        check=False,
    )
    assert bad.returncode == 4, bad.stderr
    assert bad.stderr.strip() == (
        f"error: Neo4j at {control_settings.neo4j_uri} refused user "
        f"'{control_settings.neo4j_username}': check NEO4J_USERNAME and NEO4J_PASSWORD"
    )
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())
    with pytest.raises(TargetError, match="does not answer"):
        run(replace(control_settings, neo4j_uri="bolt://127.0.0.1:1"), RunOptions(mode="bolt"))


def test_repeated_pairs_are_replaced_not_doubled(
    both_graphs: BothGraphs, settings: Settings, neo4j_driver: Driver, tmp_path: Path
) -> None:
    (tmp_path / "A.csv").write_text(":ID(PairA),id:long,name:string\n1,1,one\n2,2,two\n")
    (tmp_path / "B.csv").write_text(":ID(PairB),id:long\n10,10\n")
    # Two equal relationships between the same nodes, as a link table can give.
    rels = ":START_ID(PairA),:END_ID(PairB),at:date\n1,10,2024-01-01\n1,10,2024-01-01\n2,10,\n"
    (tmp_path / "R.csv").write_text(rels)
    a = NodeFile("PairA", tmp_path / "A.csv", [":ID(PairA)", "id:long", "name:string"], ["id"])
    b = NodeFile("PairB", tmp_path / "B.csv", [":ID(PairB)", "id:long"], ["id"])
    headers = [":START_ID(PairA)", ":END_ID(PairB)", "at:date"]
    relationship = RelationshipFile("PAIRED.1", "PAIRED", a, b, tmp_path / "R.csv", headers)

    def loader() -> BoltLoader:
        options = RunOptions(mode="bolt", batch_size=2)
        return BoltLoader(LoadContext(settings, options, SilentReporter(), lambda text: None))

    try:
        first = loader().write([a, b], [relationship])
        second = loader().write([a, b], [relationship])
        rows = cypher(
            neo4j_driver,
            "MATCH (a:PairA)-[r:PAIRED]->(b:PairB) RETURN a.id AS a, b.id AS b, r.at AS at "
            "ORDER BY a, at",
        )
    finally:
        neo4j_driver.execute_query("MATCH (n:PairA|PairB) DETACH DELETE n", bookmark_manager_=None)
        for label in ("PairA", "PairB"):
            neo4j_driver.execute_query(
                f"DROP CONSTRAINT bulk360_{label}_key IF EXISTS", bookmark_manager_=None
            )
    assert first.relationships == second.relationships == {"PAIRED.1": 3}
    assert first.details["replaced_groups"] == []
    assert second.details["replaced_groups"] == ["PairA-PAIRED->PairB"]
    assert second.merged_labels == ("PairA", "PairB")
    assert [(r["a"], r["b"]) for r in rows] == [(1, 10), (1, 10), (2, 10)]
    assert str(rows[0]["at"]) == "2024-01-01" and rows[2]["at"] is None


def test_the_counts_of_a_label_or_type_never_seen_are_zero(neo4j_driver: Driver) -> None:
    # A fresh store knows no label: its count query gives no row at all within a UNION.
    nodes, relationships = count_graph(
        neo4j_driver, "neo4j", ["NeverSeenLabel", "Account"], ["NEVER_SEEN_TYPE"]
    )
    assert nodes["NeverSeenLabel"] == 0 and relationships == {"NEVER_SEEN_TYPE": 0}
    assert (
        nodes["Account"] == cypher(neo4j_driver, "MATCH (n:Account) RETURN count(n) AS n")[0]["n"]
    )
