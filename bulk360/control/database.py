"""The control database's connection and schema (``sql/control/``, applied by ``bulk360 init``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from bulk360.errors import ConfigError
from bulk360.settings import Settings

__all__ = ["connect_control", "error_reason", "init_schema", "no_schema", "sql_dir"]


def sql_dir() -> Path:
    """The ``sql/`` folder: inside an installed wheel, else at the repository root."""
    packaged = Path(__file__).parents[1] / "sql"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "sql"


def error_reason(exc: psycopg.Error) -> str:
    """The last line of libpq's message: what went wrong, without the connection string."""
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


@contextmanager
def connect_control(
    settings: Settings, autocommit: bool = True
) -> Iterator[psycopg.Connection[Any]]:
    """A connection to the control database; a failure names the host, never the password."""
    try:
        conn = psycopg.connect(**settings.control_conninfo(), autocommit=autocommit)
    except psycopg.OperationalError as exc:
        why = error_reason(exc)
        raise ConfigError(
            f"cannot connect to the control database {settings.etl_db_name} at "
            f"{settings.etl_db_host}:{settings.etl_db_port} as {settings.etl_db_user}: {why}"
        ) from None
    with conn:
        try:
            yield conn
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
            raise no_schema(settings) from None


def no_schema(settings: Settings) -> ConfigError:
    """What a query of a table or column the control database does not have means."""
    return ConfigError(
        f"the control database {settings.etl_db_name} has no bulk360 schema or an "
        "older one; run `bulk360 init` first (it creates or migrates the schema)"
    )


def init_schema(settings: Settings) -> list[str]:
    """Apply the control schema files not yet applied; returns the names applied now."""
    applied_now: list[str] = []
    with connect_control(settings) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for path in sorted((sql_dir() / "control").glob("*.sql")):
            if path.stem in done:
                continue
            with conn.transaction():
                conn.execute(path.read_text())
                conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", [path.stem])
            applied_now.append(path.stem)
    return applied_now
