"""A run folder written by bulk360 0.1.0 (manifest format 3, checked in under
``tests/fixtures/format3``) keeps working across the upgrade: ``--resume`` loads it, ``verify``
reads it, and a sync compares with it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psycopg
import pytest
from neo4j import Driver
from psycopg.types.json import Jsonb

from bulk360.settings import Settings
from tests.helpers.cli import bulk360_cli
from tests.helpers.databases import recreate_database, sample_control
from tests.helpers.services import ROOT, cypher
from tests.helpers.snapshots import Snapshot

FIXTURE = ROOT / "tests" / "fixtures" / "format3"
RUN = json.loads((FIXTURE / "run.json").read_text())
FOLDER = FIXTURE / "run-1-439ae90d"
SOURCE_DB = "bulk360_test_format3_source"
CONTROL_DB = "bulk360_test_format3_control"


@pytest.fixture(scope="module")
def upgraded(
    settings: Settings, pg_conninfo: dict[str, object], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """A control database that ran the fixture's run (failed in its load), and its folder."""
    recreate_database(settings, SOURCE_DB)
    with psycopg.connect(**{**settings.control_conninfo(), "dbname": SOURCE_DB}) as conn:
        conn.execute((FIXTURE / "sources.sql").read_text())  # type: ignore[arg-type]
    ours = sample_control(settings, CONTROL_DB, tmp_path_factory.mktemp("format3"))
    folder = ours.import_dir / FOLDER.name
    shutil.copytree(FOLDER, folder)
    with psycopg.connect(**ours.control_conninfo()) as conn:
        conn.execute("UPDATE control_instance SET instance_id = %s", [RUN["control_instance"]])
        conn.execute(
            "INSERT INTO source_databases (name, db_host, db_port, db_name, db_user, db_password_env)"
            " VALUES ('fixture', %s, %s, %s, %s, 'ETL_DB_PASSWORD')",
            [settings.etl_db_host, settings.etl_db_port, SOURCE_DB, settings.etl_db_user],
        )
        conn.execute((FIXTURE / "control.sql").read_text())  # type: ignore[arg-type]
        options = {"workers": 2, "batch_size": 5000, "clear": True, "neo4j_database": "neo4j"}
        conn.execute(
            "INSERT INTO etl_run_logs (run_id, mode, status, options, run_uid, import_dir,"
            " published_at, manifest_sha256, error_text, bulk360_version)"
            " VALUES (%s, 'bolt', 'failed', %s, %s, %s, now(), %s, 'Neo4j went away', '0.1.0')",
            [RUN["run_id"], Jsonb(options), RUN["run_uid"], str(folder), RUN["manifest_sha256"]],
        )
        conn.execute("SELECT setval('etl_run_logs_run_id_seq', 1)")
    return ours


def test_resume_verify_and_sync_work_on_a_format_3_folder(
    upgraded: Settings, neo4j_driver: Driver
) -> None:
    resumed = bulk360_cli(upgraded, upgraded.import_dir, "run", "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming run 1" in resumed.stdout
    assert "manifest and 4 files verified (SHA-256)" in resumed.stdout
    counts = {
        r["l"]: r["n"]
        for r in cypher(neo4j_driver, "MATCH (n) UNWIND labels(n) AS l RETURN l, count(*) AS n")
    }
    assert counts == {"Person": 4, "Pet": 5}
    owners = cypher(
        neo4j_driver,
        "MATCH (p:Person)-[r:OWNS]->(x:Pet) RETURN p.id AS p, x.pet_id AS x, r.kind AS k ORDER BY x",
    )
    assert [(r["p"], r["x"], r["k"]) for r in owners] == [
        (1, 10, "cat"),
        (1, 11, "dog"),
        (2, 12, "parrot, blue"),
    ]

    verified = bulk360_cli(upgraded, upgraded.import_dir, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "graph matches the manifest" in verified.stdout

    unchanged = bulk360_cli(upgraded, upgraded.import_dir, "run", "--mode", "sync")
    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
    assert "no change since run 2" in unchanged.stdout

    with psycopg.connect(**{**upgraded.control_conninfo(), "dbname": SOURCE_DB}) as conn:
        conn.execute("UPDATE pets SET owner_id = 3 WHERE pet_id = 11")
        conn.execute("INSERT INTO friendships VALUES (4, 1, '1960-01-01')")
    changed = bulk360_cli(upgraded, upgraded.import_dir, "run", "--mode", "sync")
    assert changed.returncode == 0, changed.stdout + changed.stderr
    synced = Snapshot.take(neo4j_driver)
    fresh = bulk360_cli(upgraded, upgraded.import_dir, "run", "--mode", "bolt", "--clear")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert synced.differences(Snapshot.take(neo4j_driver)) == []
    manifest = json.loads((Path(upgraded.import_dir) / "current" / "manifest.json").read_text())
    assert manifest["format"] == 4 and manifest["bulk360_version"]
