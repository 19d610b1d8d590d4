"""Session fixtures of the integration tests: a test control database with the Customer 360
sample and a type probe, built into Neo4j once by admin mode."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from neo4j import Driver

from bulk360 import RunOptions, RunSummary
from bulk360.pipeline import run
from bulk360.settings import Settings
from tests.helpers.databases import (
    PROBE_DB,
    PROBE_SQL,
    TEST_CONTROL_DB,
    add_type_probe,
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
    add_type_probe(test_settings)
    return test_settings


@dataclass(frozen=True)
class ParquetBuild:
    """The test control rows imported from a Parquet package, and what followed."""

    summary: RunSummary
    graph: Snapshot
    package: Path
    """A copy of its import package (later runs prune the folder)."""
    sync: RunSummary
    """A sync run right after it, against its package."""


@pytest.fixture(scope="session")
def admin_builds(
    control_settings: Settings, neo4j_driver: Driver, tmp_path_factory: pytest.TempPathFactory
) -> tuple[RunSummary, Snapshot, ParquetBuild]:
    """The test control rows imported by the real neo4j-admin from a Parquet package (then a
    sync run against it), then from a CSV package: the graph the other tests see."""
    parquet = build_with_admin_mode(control_settings, "parquet")
    parquet_graph = Snapshot.take(neo4j_driver)
    assert parquet.import_dir is not None
    package = tmp_path_factory.mktemp("parquet") / parquet.import_dir.name
    shutil.copytree(parquet.import_dir, package)
    sync = run(control_settings, RunOptions(mode="sync", workers=3))
    summary = build_with_admin_mode(control_settings)
    built = ParquetBuild(parquet, parquet_graph, package, sync)
    return summary, Snapshot.take(neo4j_driver), built


@pytest.fixture(scope="session")
def admin_build(
    admin_builds: tuple[RunSummary, Snapshot, ParquetBuild],
) -> tuple[RunSummary, Snapshot]:
    """The test control rows imported by the real neo4j-admin, and the graph it built."""
    return admin_builds[0], admin_builds[1]


@pytest.fixture(scope="session")
def parquet_build(admin_builds: tuple[RunSummary, Snapshot, ParquetBuild]) -> ParquetBuild:
    return admin_builds[2]


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
