"""``bulk360 check``: one command that verifies a deployment end to end.

Each check is independent and says what it found in one line: the control database and every
active source answer a query, the Neo4j database ``NEO4J_DATABASE`` answers a read (an offline
database, an unreachable server, a refused user and an unknown database are each named), the
newest run succeeded, the graph's counts equal the manifest of the run that built it, and the
HTTP API's ``/health`` answers ``{"ok": true}``. Nothing is written; no check stops the others.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import psycopg
from neo4j import Driver
from neo4j.exceptions import DriverError, Neo4jError, ServiceUnavailable
from psycopg.rows import dict_row

from bulk360.apps.verify import compare_counts, followed_since_built, graph_manifest
from bulk360.control import Source, connect_control, load_config
from bulk360.errors import Bulk360Error, ConfigError, one_line
from bulk360.graph import unreachable
from bulk360.health import neo4j_driver, neo4j_problem, postgres_problem
from bulk360.settings import Settings

__all__ = ["Check", "run_checks"]


@dataclass(frozen=True)
class Check:
    """One thing checked: ``ok`` None means it was skipped."""

    name: str
    ok: bool | None
    detail: str


def _attempt(name: str, probe: Callable[[], str]) -> Check:
    """Run ``probe``; its text is the detail of a pass, its expected error of a failure."""
    try:
        return Check(name, True, probe())
    except _Skipped as skipped:
        return Check(name, None, f"skipped: {skipped}")
    except (Bulk360Error, psycopg.Error, Neo4jError, DriverError, OSError) as exc:
        return Check(name, False, one_line(exc))


class _Failed(Bulk360Error):
    """A check that ran and found the deployment wrong (never leaves this module)."""


class _Skipped(Exception):
    """A check that does not apply (never leaves this module)."""


def _control(settings: Settings) -> str:
    problem = postgres_problem(settings)
    if problem:
        raise _Failed(problem)
    return f"{settings.etl_db_name} at {settings.etl_db_host}:{settings.etl_db_port}"


def _source(settings: Settings, source: Source) -> str:
    with source.connect(settings) as conn:
        conn.execute("SELECT 1")
    return f"{source.dbname} at {source.host}:{source.port}"


def _sources(settings: Settings) -> list[Check]:
    try:
        sources = load_config(settings).sources
    except Bulk360Error as exc:
        return [Check("sources", False, one_line(exc))]
    checks = [
        _attempt(f"source {source.name}", partial(_source, settings, source)) for source in sources
    ]
    return checks or [Check("sources", False, "no active source_databases row")]


def _last_run(settings: Settings) -> str:
    with connect_control(settings) as conn:
        row = (
            conn.cursor(row_factory=dict_row)
            .execute(
                "SELECT run_id, mode, status, error_text FROM etl_run_logs ORDER BY run_id DESC LIMIT 1"
            )
            .fetchone()
        )
    if row is None:
        raise _Failed("no run in etl_run_logs yet")
    if row["status"] != "succeeded":
        raise _Failed(
            f"run {row['run_id']} ({row['mode']}) is {row['status']}: {row['error_text'] or ''}".rstrip(
                ": "
            )
        )
    return f"run {row['run_id']} ({row['mode']}) succeeded"


def _graph_counts(settings: Settings, driver: Driver) -> str:
    session = followed_since_built(settings)
    if session is not None:
        raise _Skipped(
            f"follow session {session} keeps the graph newer than any run's manifest (see follow)"
        )
    manifest = graph_manifest(settings)
    try:
        checks = compare_counts(driver, settings.neo4j_database, manifest)
    except (ServiceUnavailable, OSError) as exc:
        raise _Failed(unreachable(settings.neo4j_uri, exc)) from None
    wrong = [c for c in checks if not c.ok]
    if wrong:
        shown = ", ".join(f"{c.name} {c.actual:,} (manifest {c.expected:,})" for c in wrong[:5])
        more = f" and {len(wrong) - 5} more" if len(wrong) > 5 else ""
        raise _Failed(f"{len(wrong)} count(s) differ from the manifest: {shown}{more}")
    total = sum(c.actual for c in checks)
    return f"{len(checks)} labels and types, {total:,} elements, as in {manifest}"


def _follow(settings: Settings) -> str:
    """Fails when a followed source lags beyond ``BULK360_FOLLOW_MAX_LAG`` seconds."""
    from bulk360.health import follow_problem

    problem, detail = follow_problem(settings)
    if problem:
        raise _Failed(problem)
    if detail is None:
        raise _Skipped("no source is followed")
    return detail


def _api(url: str) -> str:
    health = url.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(health, timeout=10) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise _Failed(
            f"{health} answered {exc.code}: {exc.read().decode(errors='replace')[:200]}"
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Failed(f"{health} does not answer: {reason}") from None
    if body != {"ok": True}:
        raise _Failed(f"{health} answered {body}")
    return f"{health} answered ok"


def _neo4j(settings: Settings, driver: Driver) -> str:
    problem = neo4j_problem(driver, settings)
    if problem:
        raise _Failed(problem)
    return f"{settings.neo4j_uri}, database {settings.neo4j_database} answers"


def run_checks(settings: Settings, api_url: str | None) -> list[Check]:
    """Every check, in order; none stops the others."""
    checks = [_attempt("control database", lambda: _control(settings))]
    checks += _sources(settings)
    try:
        driver = neo4j_driver(settings)
    except ConfigError as exc:  # NEO4J_URI names no Bolt server
        checks.append(Check("neo4j", False, str(exc)))
        checks.append(_attempt("last run", lambda: _last_run(settings)))
        checks.append(Check("graph counts", None, "skipped: Neo4j cannot be reached"))
    else:
        with driver:
            checks.append(_attempt("neo4j", lambda: _neo4j(settings, driver)))
            checks.append(_attempt("last run", lambda: _last_run(settings)))
            checks.append(_attempt("graph counts", lambda: _graph_counts(settings, driver)))
    checks.append(_attempt("follow", lambda: _follow(settings)))
    if api_url:
        checks.append(_attempt("api", lambda: _api(api_url)))
    else:
        checks.append(Check("api", None, "skipped: no --api-url (or BULK360_API_URL)"))
    return checks
