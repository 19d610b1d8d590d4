"""Sample datasets under ``sql/samples/<name>/``, loaded into the control database's server.

A sample folder holds ``<database>.sql`` for each source database (each is dropped and created
again), an optional ``common.sql`` run first in each of them, and ``control.sql`` with the
control rows, which reads the connection of the sources from a temporary table
``sample_target(host, port, db_user)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bulk360.control import connect_control, init_schema, sql_dir
from bulk360.errors import ConfigError, SourceError
from bulk360.settings import Settings

__all__ = ["SampleLoad", "available_samples", "load_sample"]


@dataclass(frozen=True)
class SampleLoad:
    """What loading a sample created."""

    name: str
    databases: dict[str, dict[str, int]]
    """Rows per table of each database created."""


def available_samples() -> list[str]:
    return sorted(p.name for p in (sql_dir() / "samples").iterdir() if (p / "control.sql").exists())


def _folder(name: str) -> Path:
    folder = sql_dir() / "samples" / name
    if not (folder / "control.sql").exists():
        raise ConfigError(f"no sample called '{name}'; samples: {', '.join(available_samples())}")
    return folder


def _row_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    tables = conn.execute(
        "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY relname"
    ).fetchall()
    counts = {}
    for (table,) in tables:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchone()
        counts[table] = int(row[0]) if row else 0
    return counts


def load_sample(settings: Settings, name: str) -> SampleLoad:
    """Create the sample's databases, fill them, and write its control rows."""
    folder = _folder(name)
    common = folder / "common.sql"
    init_schema(settings)
    created: dict[str, dict[str, int]] = {}
    for script in sorted(folder.glob("*.sql")):
        if script.name in {"common.sql", "control.sql"}:
            continue
        database = script.stem
        with connect_control(settings) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        conninfo = {**settings.control_conninfo(), "dbname": database}
        try:
            with psycopg.connect(**conninfo, autocommit=True) as conn:
                with conn.transaction():
                    if common.exists():
                        conn.execute(common.read_text())
                    conn.execute(script.read_text())
                conn.execute("ANALYZE")
                created[database] = _row_counts(conn)
        except psycopg.Error as exc:
            raise SourceError(
                f"sample {name}: {script.name} failed: {exc.diag.message_primary}"
            ) from None
    with connect_control(settings) as conn, conn.transaction():
        conn.execute(
            "CREATE TEMPORARY TABLE sample_target ON COMMIT DROP AS"
            " SELECT %s::text AS host, %s::integer AS port, %s::text AS db_user",
            [settings.etl_db_host, settings.etl_db_port, settings.etl_db_user],
        )
        conn.execute((folder / "control.sql").read_text())
    return SampleLoad(name, created)
