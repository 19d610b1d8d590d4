"""Shared fixtures: the real PostgreSQL and Neo4j that ``scripts/services`` starts.

Settings come from the repository's ``.env`` (as ``make test`` creates it). When a service does
not answer, a test is skipped on a developer's machine but fails under ``CI=true``: CI must
never pass by skipping. Helpers live in ``tests/helpers/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg
import pytest
from neo4j import Driver, GraphDatabase

from benchmarks.latency import LatencyProxy
from bulk360.settings import Settings, load_settings
from tests.helpers.services import ROOT, run_services, service_missing


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration needs the services."""
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)


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


def _stopped_neo4j() -> Iterator[None]:
    run_services("neo4j", "stop")
    try:
        yield
    finally:
        run_services("neo4j", "start")


@pytest.fixture
def stopped_neo4j(neo4j_driver: Driver) -> Iterator[None]:
    """Neo4j stopped for the duration of a test, and running again afterwards."""
    yield from _stopped_neo4j()


@pytest.fixture(scope="class")
def stopped_neo4j_for_class(neo4j_driver: Driver) -> Iterator[None]:
    """Neo4j stopped for the tests of a class (one stop and start for all of them)."""
    yield from _stopped_neo4j()


@pytest.fixture(scope="session")
def distance(neo4j_driver: Driver, settings: Settings) -> Iterator[LatencyProxy]:
    """Neo4j at a 20 ms round trip (Aura in a nearby region): a loopback proxy that delays
    every byte by 10 ms each way (:mod:`benchmarks.latency`). Settings through it:
    :func:`tests.helpers.distance.distant`."""
    target = urlsplit(settings.neo4j_uri)
    with LatencyProxy(target.hostname or "127.0.0.1", target.port or 7687, 10) as proxy:
        yield proxy
