"""Whether the control database and the target Neo4j database really answer.

A server that accepts connections is not enough: Neo4j answers Bolt while the database
``NEO4J_DATABASE`` is offline (a store that failed to start), and PostgreSQL answers while the
control database lacks its tables. Each probe runs a real query in the database that matters,
bounded by a short timeout and never retried, and returns None or one line saying what is wrong
(never a password). ``GET /health`` and ``bulk360 check`` share them.
"""

from __future__ import annotations

from typing import Any

import psycopg
from neo4j import READ_ACCESS, Driver, GraphDatabase, Query
from neo4j.exceptions import (
    AuthError,
    ClientError,
    DatabaseUnavailable,
    DriverError,
    Neo4jError,
    ServiceUnavailable,
)

from bulk360.control import connect_control
from bulk360.errors import Bulk360Error, one_line
from bulk360.graph import bolt_uri, unreachable
from bulk360.settings import Settings

__all__ = ["PROBE_SECONDS", "neo4j_driver", "neo4j_problem", "postgres_problem"]

PROBE_SECONDS = 5.0
"""How long a probe waits for an answer."""


def postgres_problem(settings: Settings, timeout: float = PROBE_SECONDS) -> str | None:
    """None when the control database answers a query on its own tables, else why not."""
    try:
        with connect_control(settings) as conn:
            conn.execute(f"SET statement_timeout = {int(timeout * 1000)}")
            conn.execute("SELECT 1 FROM etl_run_logs LIMIT 1")
    except (Bulk360Error, psycopg.Error) as exc:
        return one_line(exc)
    return None


def neo4j_driver(settings: Settings, timeout: float = PROBE_SECONDS) -> Driver:
    """A driver for ``NEO4J_URI`` that gives up on an unreachable server within ``timeout``;
    a URI that names no Bolt server is a :class:`~bulk360.errors.ConfigError`."""
    return GraphDatabase.driver(
        bolt_uri(settings.neo4j_uri),
        auth=(settings.neo4j_username, settings.neo4j_password),
        connection_timeout=timeout,
        connection_acquisition_timeout=timeout,
        max_transaction_retry_time=0,
        notifications_min_severity="OFF",
    )


def neo4j_problem(driver: Driver, settings: Settings, timeout: float = PROBE_SECONDS) -> str | None:
    """None when database ``NEO4J_DATABASE`` answers a read query, else why not."""
    database, uri = settings.neo4j_database, settings.neo4j_uri
    try:
        # An auto-commit query: the driver does not retry it, so an offline database is seen now.
        with driver.session(database=database, default_access_mode=READ_ACCESS) as session:
            session.run(Query("RETURN 1", timeout=timeout)).consume()
    except AuthError:
        return (
            f"Neo4j at {uri} refused user '{settings.neo4j_username}': "
            "check NEO4J_USERNAME and NEO4J_PASSWORD"
        )
    except DatabaseUnavailable:
        return f"database '{database}' on Neo4j at {uri} is {_status(driver, database)}"
    except ClientError as exc:
        if exc.code == "Neo.ClientError.Database.DatabaseNotFound":
            return f"database '{database}' does not exist on Neo4j at {uri} (NEO4J_DATABASE)"
        if exc.code == "Neo.ClientError.Security.AuthenticationRateLimit":
            return (
                f"Neo4j at {uri} refuses user '{settings.neo4j_username}' for a while: too many "
                "failed logins in a row (check NEO4J_PASSWORD wherever bulk360 runs)"
            )
        return f"database '{database}' on Neo4j at {uri} refused a read: {one_line(exc)}"
    except (ServiceUnavailable, DriverError, Neo4jError, OSError) as exc:
        return unreachable(uri, exc)
    return None


def follow_problem(settings: Settings) -> tuple[str | None, str | None]:
    """Whether a followed source lags beyond ``BULK360_FOLLOW_MAX_LAG`` seconds (default 300;
    a stopped follower's lag grows until it does): (the problem, else None; what is fine, None
    when no source is followed)."""
    from bulk360.follow import follow_status

    try:
        found = follow_status(settings)
    except (Bulk360Error, psycopg.Error) as exc:
        return f"follow status unknown: {one_line(exc)}", None
    if not found:
        return None, None
    limit = float(settings.secret("BULK360_FOLLOW_MAX_LAG") or 300)
    behind = [s for s in found if s.lag_seconds is None or s.lag_seconds > limit]
    if behind:
        shown = ", ".join(
            f"source '{s.slot.source}' {s.lag_seconds or 0:.0f} s"
            f" ({'follower running' if s.running else 'no follower running'})"
            for s in behind
        )
        return f"following lags beyond {limit:.0f} s (BULK360_FOLLOW_MAX_LAG): {shown}", None
    worst = max(s.lag_seconds or 0 for s in found)
    running = "running" if all(s.running for s in found) else "stopped"
    return None, f"{len(found)} source(s) followed (follower {running}), lag at most {worst:.1f} s"


def _status(driver: Driver, database: str) -> str:
    """A database's state as the system database reports it, e.g. ``offline (Unable to start)``.

    Asked twice: right after the server restarted, the first answer may be a pooled connection
    to the server that stopped."""
    record: Any = None
    for _ in range(2):
        try:
            with driver.session(database="system") as session:
                record = session.run(
                    Query(
                        "SHOW DATABASE $name YIELD currentStatus, statusMessage",
                        timeout=PROBE_SECONDS,
                    ),
                    name=database,
                ).single()
            break
        except (DriverError, Neo4jError, OSError):
            continue
    if record is None:
        return "unavailable"
    message = " ".join((record["statusMessage"] or "").split())
    return f"{record['currentStatus']} ({message})" if message else record["currentStatus"]
