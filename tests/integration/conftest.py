"""Session fixtures of the integration tests: a test control database with the Customer 360
sample and a type probe, built into Neo4j once by admin mode."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from neo4j import Driver

from bulk360 import RunSummary
from bulk360.settings import Settings
from tests.helpers.databases import (
    PROBE_DB,
    PROBE_SQL,
    TEST_CONTROL_DB,
    recreate_database,
    sample_control,
)
from tests.helpers.neo4j import build_with_admin_mode
from tests.helpers.snapshots import Snapshot


@pytest.fixture(scope="session")
def control_settings(
    settings: Settings, pg_conninfo: dict[str, object], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """Settings of a fresh control database holding the sample rows and the type probe."""
    test_settings = sample_control(
        settings, TEST_CONTROL_DB, tmp_path_factory.mktemp("import"), "", "customer360"
    )
    recreate_database(settings, PROBE_DB)
    with psycopg.connect(**{**settings.control_conninfo(), "dbname": PROBE_DB}) as conn:
        conn.execute(PROBE_SQL)  # type: ignore[arg-type]
    with psycopg.connect(**test_settings.control_conninfo()) as conn:
        conn.execute(
            "INSERT INTO source_databases (name, db_host, db_port, db_name, db_user, db_password_env)"
            " VALUES ('probe', %s, %s, %s, %s, 'ETL_DB_PASSWORD')",
            [settings.etl_db_host, settings.etl_db_port, PROBE_DB, settings.etl_db_user],
        )
        conn.execute(
            "INSERT INTO node_label_mappings (source_name, table_name, label)"
            " VALUES ('probe', 'all_types', 'TypeProbe'), ('probe', 'edge_values', 'EdgeValue')"
        )
        conn.execute(
            "INSERT INTO column_type_overrides (source_name, table_name, column_name, neo4j_type,"
            " reason) VALUES ('probe', 'edge_values', 'approx', 'double', 'used in arithmetic')"
        )
    return test_settings


@pytest.fixture(scope="session")
def admin_build(control_settings: Settings, neo4j_driver: Driver) -> tuple[RunSummary, Snapshot]:
    """The test control rows imported by the real neo4j-admin, and the graph it built."""
    summary = build_with_admin_mode(control_settings)
    return summary, Snapshot.take(neo4j_driver)


@pytest.fixture(scope="session")
def admin_run(admin_build: tuple[RunSummary, Snapshot]) -> RunSummary:
    """The admin run of the test control rows, Neo4j running again afterwards."""
    return admin_build[0]


@pytest.fixture(scope="session")
def admin_graph(admin_build: tuple[RunSummary, Snapshot]) -> Snapshot:
    """Every element of the graph a clean admin run of the test control rows builds."""
    return admin_build[1]


@pytest.fixture(scope="session")
def import_dir(admin_run: RunSummary) -> Path:
    assert admin_run.import_dir is not None
    return admin_run.import_dir
