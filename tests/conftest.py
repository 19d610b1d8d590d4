"""Shared fixtures: the real PostgreSQL and Neo4j that ``scripts/services`` starts.

Settings come from the repository's ``.env`` (as ``make test`` creates it). When a service does
not answer, a test is skipped on a developer's machine but fails under ``CI=true``: CI must
never pass by skipping.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from neo4j import Driver, GraphDatabase

from bulk360.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration needs the services."""
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)


def service_missing(what: str, exc: BaseException) -> None:
    """Skip locally, fail under CI, naming the service and the error class."""
    message = f"{what} does not answer ({type(exc).__name__}: {exc}); run `make services`"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def run_services(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``scripts/services`` with ``args``; fails the test if it exits non-zero."""
    result = subprocess.run(
        [str(ROOT / "scripts" / "services"), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"services {' '.join(args)} failed:\n{result.stderr}"
    return result


def command_lines() -> dict[int, str]:
    """The command line of every running process, by pid."""
    found = {}
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found[int(cmdline.parent.name)] = text
    return found


def cypher(driver: Driver, query: str, **parameters: Any) -> list[dict[str, Any]]:
    """Run a read query and return its records as dicts.

    No bookmarks are carried between calls: after neo4j-admin rebuilds a database its
    transaction ids start again, and an old bookmark would wait for a transaction that never comes.
    """
    records, _, _ = driver.execute_query(query, parameters, bookmark_manager_=None)
    return [record.data() for record in records]


@pytest.fixture(scope="session")
def settings() -> Settings:
    env_file = ROOT / ".env"
    return load_settings(env_file if env_file.exists() else ROOT / ".env.example")


@pytest.fixture(scope="session")
def pg_conninfo(settings: Settings) -> dict[str, object]:
    """Connection keywords for the control database; skips or fails if it does not answer."""
    conninfo = settings.control_conninfo()
    try:
        psycopg.connect(**conninfo).close()
    except psycopg.OperationalError as exc:
        service_missing("PostgreSQL", exc)
    return conninfo


@pytest.fixture(scope="session")
def neo4j_driver(settings: Settings) -> Iterator[Driver]:
    driver = GraphDatabase.driver(
        settings.neo4j_uri, auth=(settings.neo4j_username, settings.neo4j_password)
    )
    try:
        driver.verify_connectivity()
    except Exception as exc:
        driver.close()
        service_missing("Neo4j", exc)
    yield driver
    driver.close()


@pytest.fixture
def stopped_neo4j(neo4j_driver: Driver) -> Iterator[None]:
    """Neo4j stopped for the duration of a test, and running again afterwards."""
    run_services("neo4j", "stop")
    try:
        yield
    finally:
        run_services("neo4j", "start")
