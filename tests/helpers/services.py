"""The services the integration tests use: the real PostgreSQL and Neo4j that
``scripts/services`` starts, and how a test reaches them."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from neo4j import Driver

__all__ = [
    "IN_CI",
    "ROOT",
    "command_lines",
    "cypher",
    "run_services",
    "service_missing",
    "superuser_sql",
]

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def service_missing(what: str, exc: BaseException) -> None:
    """Skip locally, fail under CI, naming the service and the error class."""
    message = f"{what} does not answer ({type(exc).__name__}: {exc}); run `make services`"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def services_process(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``scripts/services`` with ``args`` (``env`` added to the environment), however it ends."""
    return subprocess.run(
        [str(ROOT / "scripts" / "services"), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, **(env or {})},
    )


def run_services(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``scripts/services`` with ``args``; fails the test if it exits non-zero."""
    result = services_process(*args, env=env)
    assert result.returncode == 0, f"services {' '.join(args)} failed:\n{result.stderr}"
    return result


def wait_for(condition: Any, what: str, seconds: float = 120, every: float = 0.1) -> Any:
    """What ``condition()`` returns once it is true (asked every ``every`` seconds); the test
    fails after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(every)
    pytest.fail(f"{what} did not happen within {seconds:.0f} s")


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


def superuser_sql(statement: str) -> None:
    """Run ``statement`` as PostgreSQL's superuser on the cluster ``scripts/services`` runs (for
    what bulk360's own role may not do, such as taking a role's REPLICATION away)."""
    result = run_services("postgres", "sql", statement)
    assert "ERROR" not in result.stderr, result.stderr
