"""The Spark engine against the local engine: same files, same graph; one snapshot per source;
one-line errors. Real PostgreSQL, the real neo4j-admin and Neo4j, Spark in local mode (one
session for the whole test session: the engine reuses the process's session).
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
import pytest
from neo4j import Driver

from bulk360 import RunOptions, RunSummary
from bulk360.control import connect_control, show_run
from bulk360.engines import SparkOptions
from bulk360.engines.spark import SparkEngine
from bulk360.engines.spark.read import Reader
from bulk360.engines.spark.session import parse_conf
from bulk360.errors import Bulk360Error, ConfigError, SourceError
from bulk360.pipeline import run
from bulk360.plan import prepare_plan
from bulk360.settings import Settings
from tests.helpers.cli import bulk360_cli, run_cli, summary_counts
from tests.helpers.databases import PROBE_DB, recreate_database, sample_control
from tests.helpers.neo4j import check_store
from tests.helpers.services import run_services
from tests.helpers.snapshots import Snapshot

SPARK_CONTROL_DB = "bulk360_test_spark_control"
PREFIX = "bulk360_test_spark_"
BRANDS = """
CREATE TABLE brands (code text, note text);
INSERT INTO brands VALUES ('Acme', 'first Acme'), ('Borealis', 'first Borealis'),
    ('Acme', 'second Acme'), (NULL, 'no code'), ('Zenith', 'first Zenith'), ('Acme', 'third');
"""


def _source(conn: psycopg.Connection[Any], settings: Settings, name: str, database: str) -> None:
    conn.execute(
        "INSERT INTO source_databases (name, db_host, db_port, db_name, db_user, db_password_env)"
        " VALUES (%s, %s, %s, %s, %s, 'ETL_DB_PASSWORD')",
        [name, settings.etl_db_host, settings.etl_db_port, database, settings.etl_db_user],
    )


@pytest.fixture(scope="module")
def spark_settings(
    settings: Settings, control_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """Both samples, the all-types probe and a table with repeated and NULL keys, in one
    control database (``control_settings`` made the probe database)."""
    spark = sample_control(
        settings,
        SPARK_CONTROL_DB,
        tmp_path_factory.mktemp("spark"),
        PREFIX,
        "customer360",
        "ecommerce",
    )
    recreate_database(settings, PREFIX + "brands")
    with psycopg.connect(**{**settings.control_conninfo(), "dbname": PREFIX + "brands"}) as conn:
        conn.execute(BRANDS)  # type: ignore[arg-type]
    with psycopg.connect(**spark.control_conninfo(), autocommit=True) as conn:
        _source(conn, settings, "probe", PROBE_DB)
        _source(conn, settings, "brands", PREFIX + "brands")
        conn.execute(
            "INSERT INTO node_label_mappings (source_name, table_name, label, key_columns)"
            " VALUES ('probe', 'all_types', 'TypeProbe', NULL),"
            " ('probe', 'edge_values', 'EdgeValue', NULL), ('brands', 'brands', 'Brand', '{code}')"
        )
        conn.execute(
            "INSERT INTO column_type_overrides (source_name, table_name, column_name, neo4j_type,"
            " reason) VALUES ('probe', 'edge_values', 'approx', 'double', 'arithmetic')"
        )
        conn.execute(
            "INSERT INTO relationship_mappings (relationship_type, from_label, from_alias,"
            " to_label, to_alias, join_condition) VALUES"
            " ('MADE_BY', 'Product', 'p', 'Brand', 'b', 'p.brand = b.code')"
        )
    return spark


@pytest.fixture
def without_the_shop(spark_settings: Settings) -> Iterator[Settings]:
    """The control database with the shop's source (and the mapping to its products) inactive:
    the graph tests compare graphs of Customer 360, the type probe and the brands (the shop's
    files are compared by the first test; building its graph twice with Spark on two cores
    would take most of the suite's time)."""

    def active(value: bool) -> None:
        with psycopg.connect(**spark_settings.control_conninfo(), autocommit=True) as conn:
            conn.execute("UPDATE source_databases SET is_active = %s WHERE name = 'shop'", [value])
            conn.execute(
                "UPDATE relationship_mappings SET is_active = %s"
                " WHERE relationship_type = 'MADE_BY' OR description LIKE 'ecommerce:%%'",
                [value],
            )

    active(False)
    try:
        yield spark_settings
    finally:
        active(True)


def _spark(**options: Any) -> RunOptions:
    return RunOptions(**({"engine": "spark", "spark_master": "local[2]", "workers": 2} | options))


def _comparable(manifest: dict[str, Any]) -> dict[str, Any]:
    """A manifest without what differs between any two runs (times, checksums, file sizes,
    where each label's ids start)."""
    varying = {"seconds", "sha256", "bytes", "ids"}
    return {
        kind: sorted(
            ({k: v for k, v in entry.items() if k not in varying} for entry in manifest[kind]),
            key=json.dumps,
        )
        for kind in ("nodes", "relationships", "tables")
    }


def _rows(folder: Path, manifest: dict[str, Any]) -> dict[str, Counter[Any]]:
    """Every file as a multiset of rows, ids replaced by the node's label and key."""
    key_of: dict[str, Any] = {}
    rows: dict[str, Counter[Any]] = {}
    for node in manifest["nodes"]:
        frame = pl.read_csv(folder / node["file"], infer_schema=False)
        assert frame.columns == node["headers"]
        keys = [h for h in node["headers"] if h.split(":")[0] in node["keys"]]
        for row_id, *key in frame.select(":ID", *keys).rows():
            key_of[row_id] = (node["label"], *key)
        rows[node["label"]] = Counter(frame.drop(":ID").rows())
    for rel in manifest["relationships"]:
        frame = pl.read_csv(folder / rel["file"], infer_schema=False)
        assert frame.columns == rel["headers"]
        rows[f"{rel['type']}.{rel['mapping_id']}"] = Counter(
            (key_of[start], key_of[end], *rest) for start, end, *rest in frame.rows()
        )
    return rows


def _folder(summary: RunSummary) -> tuple[Path, dict[str, Any]]:
    assert summary.import_dir is not None
    return summary.import_dir, json.loads((summary.import_dir / "manifest.json").read_text())


SPARK_CLI = ("--engine", "spark", "--spark-master", "local[2]", "--workers", "2")
"""The Spark engine's options on the command line (each CLI run starts a Spark of its own)."""


def test_the_spark_engine_writes_what_the_local_engine_writes(spark_settings: Settings) -> None:
    local = _folder(run(spark_settings, RunOptions(mode="csv", workers=2)))
    # Through the command line, as cron runs it: the console's steps and summary, no traceback.
    result = run_cli(spark_settings, spark_settings.import_dir, "run", "--mode", "csv", *SPARK_CLI)
    assert result.returncode == 0 and "Traceback" not in result.output, result.output[-3000:]
    assert "STEP 6/6" in result.output and "over JDBC with Spark (local[2])" in result.output
    folder = Path(result.stdout.split("import folder: ", 1)[1].split()[0])
    spark = (folder, json.loads((folder / "manifest.json").read_text()))
    shown = summary_counts(result.output)
    assert shown[("nodes", "Brand")] == 3
    assert shown[("rows", "read")] == sum(
        e["rows_read"] for e in [*spark[1]["nodes"], *spark[1]["tables"]]
    )
    assert _comparable(spark[1]) == _comparable(local[1])
    local_rows, spark_rows = _rows(*local), _rows(*spark)
    assert spark_rows == local_rows
    brands = spark_rows["Brand"]
    assert sum(brands.values()) == 3  # Acme, Borealis, Zenith: repeats and NULL rejected
    assert ("Acme", "first Acme") in brands
    assert spark[1]["totals"]["rows_rejected"] == local[1]["totals"]["rows_rejected"] >= 3


def test_admin_mode_builds_the_same_graph_with_either_engine(
    without_the_shop: Settings, neo4j_driver: Driver, tmp_path: Path
) -> None:
    spark_settings = without_the_shop
    graphs = []
    for engine in ("local", "spark"):
        run_services("neo4j", "stop")
        try:
            if engine == "local":
                summary = run(spark_settings, RunOptions(mode="admin", overwrite=True, workers=2))
                assert summary.status == "succeeded" and summary.ledger_balanced
            else:  # through the command line on a terminal, as a person runs it
                result = run_cli(
                    spark_settings,
                    spark_settings.import_dir,
                    *("run", "--mode", "admin", "--overwrite", *SPARK_CLI),
                    terminal=True,
                )
                assert result.returncode == 0, result.output[-3000:]
                assert "Traceback" not in result.output and "STEP 8/8" in result.output
                assert "balanced" in result.output
                shown = summary_counts(result.output)
            reports = tmp_path / engine
            reports.mkdir()
            check_store(spark_settings, reports)
        finally:
            run_services("neo4j", "start")
        graphs.append(Snapshot.take(neo4j_driver))
    local, spark = graphs
    assert {n: c for (kind, n), c in shown.items() if kind == "nodes"} == summary.nodes
    assert sum(spark.nodes.values()) > 11_000
    assert spark == local


def test_bolt_mode_with_spark_builds_the_same_graph_and_a_rerun_changes_nothing(
    without_the_shop: Settings, neo4j_driver: Driver
) -> None:
    spark_settings = without_the_shop
    run(spark_settings, RunOptions(mode="bolt", clear=True, workers=2))
    local = Snapshot.take(neo4j_driver)
    # Batches of 1,000 by 2 writers: the connector writes the larger relationship files in
    # rounds (two rounds of two partitions once a file has four batches).
    first = run(spark_settings, _spark(mode="bolt", clear=True, workers=2, batch_size=1_000))
    assert Snapshot.take(neo4j_driver) == local
    again = run(spark_settings, _spark(mode="bolt"))
    assert Snapshot.take(neo4j_driver) == local
    assert again.nodes == first.nodes and again.relationships == first.relationships


def test_all_tables_of_a_source_are_read_in_one_snapshot(spark_settings: Settings) -> None:
    """A writer commits an account and its payment method together, again and again, while
    Spark reads: every account in the files has its payment method and the other way round."""
    source = psycopg.connect(
        **{**spark_settings.control_conninfo(), "dbname": PREFIX + "profiles_db"}, autocommit=True
    )
    stop = threading.Event()
    committed = []

    def write() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            account = 1_000_000 + n
            with source.transaction():
                source.execute(
                    "INSERT INTO accounts (account_id, email, full_name, hashed_password,"
                    " created_at) VALUES (%s, %s, 'Snapshot Probe', 'x', now())",
                    [account, f"snapshot-{n}@example.com"],
                )
                source.execute(
                    "INSERT INTO payment_methods (payment_method_id, account_id, card_type,"
                    " card_last_four, card_fingerprint, expires_on, is_default, added_at)"
                    " VALUES (%s, %s, 'visa', '0000', 'fp', '2030-01-01', false, now())",
                    [account, account],
                )
            committed.append(account)
            time.sleep(0.01)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(0.5)
        summary = run(spark_settings, _spark(mode="csv"))
    finally:
        stop.set()
        writer.join()
        source.close()
    folder, manifest = _folder(summary)
    files = {
        n["label"]: pl.read_csv(folder / n["file"], infer_schema=False) for n in manifest["nodes"]
    }
    accounts = set(
        files["Account"].filter(pl.col("email:string").str.starts_with("snapshot-"))[
            "account_id:long"
        ]
    )
    methods = files["PaymentMethod"]
    owners = set(methods.filter(pl.col("card_fingerprint:string") == "fp")["account_id:long"])
    assert len(committed) > 20  # the writer ran throughout
    assert accounts and accounts == owners


def test_an_unreachable_source_is_one_line_before_anything_is_written(
    spark_settings: Settings,
) -> None:
    with psycopg.connect(**spark_settings.control_conninfo(), autocommit=True) as conn:
        conn.execute("UPDATE source_databases SET db_port = 1 WHERE name = 'brands'")
    try:
        with pytest.raises(Bulk360Error) as failed:
            run(spark_settings, _spark(mode="csv"))
    finally:
        with psycopg.connect(**spark_settings.control_conninfo(), autocommit=True) as conn:
            conn.execute(
                "UPDATE source_databases SET db_port = %s WHERE name = 'brands'",
                [spark_settings.etl_db_port],
            )
    assert "source 'brands': cannot connect" in str(failed.value)
    assert spark_settings.etl_db_password not in str(failed.value)
    with connect_control(spark_settings) as conn:
        row = conn.execute("SELECT max(run_id) FROM etl_run_logs").fetchone()
    assert row is not None
    failed_run, _ = show_run(spark_settings, row[0])
    assert failed_run["status"] == "failed"
    assert not list(spark_settings.import_dir.glob(f"run-{row[0]}-*"))  # nothing published
    # Reachable from here but not from Spark's executors (another network): the engine's own
    # probe, one JDBC round trip per source before anything is written, says so in one line.
    plan = prepare_plan(spark_settings)
    engine = SparkEngine(spark_settings, SparkOptions("local[2]"))
    source = dataclasses.replace(plan.source("brands"), port=1)
    with pytest.raises(SourceError) as unreachable:
        engine.probe(Reader(engine.spark, spark_settings, source, "00000003-00000002-1"), source)
    message = str(unreachable.value)
    assert "\n" not in message and message.startswith("source 'brands': Spark cannot read it")
    assert "Connection" in message and spark_settings.etl_db_password not in message


def test_a_missing_jdbc_driver_or_a_bad_spark_setting_is_one_line(
    spark_settings: Settings, tmp_path: Path
) -> None:
    home = tmp_path / "spark"
    (home / "jars").mkdir(parents=True)
    (home / "bin").mkdir()
    with pytest.raises(ConfigError, match="PostgreSQL JDBC driver is missing"):
        run(replace(spark_settings, spark_home=home), _spark(mode="csv"))
    with pytest.raises(ConfigError, match=r"spark\.<name>=<value>"):
        parse_conf(("spark.executor.memory",))
    result = bulk360_cli(
        spark_settings,
        spark_settings.import_dir,
        *("run", "--mode", "csv", "--engine", "spark", "--spark-conf", "spark.driver.memory=lots"),
    )
    assert result.returncode != 0
    # The JVM that refused the setting says why on its own stderr first; bulk360's line is last.
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: Spark did not start"), result.stderr[-2000:]
    assert "-Xmxlots" in result.stderr and "Traceback" not in result.stderr
    with connect_control(spark_settings) as conn:
        row = conn.execute(
            "SELECT status, error_text FROM etl_run_logs ORDER BY run_id DESC LIMIT 1"
        ).fetchone()
    assert row is not None and row[0] == "failed" and "Spark did not start" in row[1]
