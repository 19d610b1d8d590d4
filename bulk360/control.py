"""The control database: its schema, the mapping rows that drive a run, and the audit log.

Reading the rows gives frozen dataclasses; nothing here checks them against the sources (see
:mod:`bulk360.plan`). Writing is limited to the audit tables ``etl_run_logs``,
``etl_table_logs`` and ``run_artifacts``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from bulk360.errors import ConfigError, SourceError
from bulk360.settings import Settings

__all__ = [
    "ControlConfig",
    "ExclusionRule",
    "NodeMapping",
    "RelationshipMapping",
    "RunLog",
    "Source",
    "connect_control",
    "init_schema",
    "load_config",
    "sql_dir",
]


def sql_dir() -> Path:
    """The ``sql/`` folder: inside an installed wheel, else at the repository root."""
    packaged = Path(__file__).parent / "sql"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "sql"


def _reason(exc: psycopg.OperationalError) -> str:
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
        reason = _reason(exc)
        raise ConfigError(
            f"cannot connect to the control database {settings.etl_db_name} at "
            f"{settings.etl_db_host}:{settings.etl_db_port} as {settings.etl_db_user}: {reason}"
        ) from None
    with conn:
        try:
            yield conn
        except psycopg.errors.UndefinedTable:
            raise ConfigError(
                f"the control database {settings.etl_db_name} has no bulk360 schema; "
                "run `bulk360 init` first"
            ) from None


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


@dataclass(frozen=True)
class Source:
    """A row of ``source_databases``."""

    name: str
    host: str
    port: int
    dbname: str
    user: str
    schema: str
    password: str | None = field(repr=False, default=None)
    password_env: str | None = None

    def conninfo(self, settings: Settings) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect``; the password comes from its variable."""
        password = self.password
        if self.password_env:
            password = settings.secret(self.password_env)
            if password is None:
                raise ConfigError(
                    f"source '{self.name}': environment variable {self.password_env} "
                    "(its db_password_env) is not set"
                )
        return {
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
            "user": self.user,
            "password": password or None,
            "connect_timeout": 10,
            "application_name": "bulk360",
        }

    def connect(self, settings: Settings, **options: Any) -> psycopg.Connection[Any]:
        """Open a connection, turning a failure into a :class:`SourceError`."""
        try:
            return psycopg.connect(**self.conninfo(settings), **options)
        except psycopg.OperationalError as exc:
            reason = _reason(exc)
            raise SourceError(
                f"source '{self.name}': cannot connect to {self.dbname} at "
                f"{self.host}:{self.port} as {self.user}: {reason}"
            ) from None


@dataclass(frozen=True)
class ExclusionRule:
    """A row of ``field_exclusion_rules`` with ``is_excluded`` true."""

    rule_id: int
    source: str
    table: str
    column: str
    reason: str | None


@dataclass(frozen=True)
class NodeMapping:
    """An active row of ``node_label_mappings``."""

    mapping_id: int
    source: str
    table: str
    label: str
    key_columns: tuple[str, ...] | None

    def __str__(self) -> str:
        return f"node mapping #{self.mapping_id} ({self.source}.{self.table} -> :{self.label})"


@dataclass(frozen=True)
class RelationshipMapping:
    """An active row of ``relationship_mappings``."""

    mapping_id: int
    relationship_type: str
    from_label: str
    from_alias: str
    to_label: str
    to_alias: str
    join_condition: str
    link_source: str | None
    link_table: str | None
    link_alias: str | None
    property_columns: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f"relationship mapping #{self.mapping_id} "
            f"((:{self.from_label})-[:{self.relationship_type}]->(:{self.to_label}))"
        )


@dataclass(frozen=True)
class ControlConfig:
    """Everything the active control rows say."""

    sources: tuple[Source, ...]
    exclusions: tuple[ExclusionRule, ...]
    nodes: tuple[NodeMapping, ...]
    relationships: tuple[RelationshipMapping, ...]

    def source(self, name: str) -> Source | None:
        """The active source called ``name``, if any."""
        return next((s for s in self.sources if s.name == name), None)


def load_config(settings: Settings) -> ControlConfig:
    """Read the active control rows."""
    with connect_control(settings) as conn:
        cur = conn.cursor(row_factory=dict_row)
        sources = cur.execute(
            "SELECT name, db_host, db_port, db_name, db_user, db_password, db_password_env,"
            " schema_name FROM source_databases WHERE is_active ORDER BY source_id"
        ).fetchall()
        active = [row["name"] for row in sources]
        exclusions = cur.execute(
            "SELECT rule_id, source_name, table_name, column_name, reason"
            " FROM field_exclusion_rules WHERE is_excluded AND source_name = ANY(%s)"
            " ORDER BY rule_id",
            [active],
        ).fetchall()
        nodes = cur.execute(
            "SELECT mapping_id, source_name, table_name, label, key_columns"
            " FROM node_label_mappings WHERE is_active AND source_name = ANY(%s)"
            " ORDER BY mapping_id",
            [active],
        ).fetchall()
        relationships = cur.execute(
            "SELECT * FROM relationship_mappings WHERE is_active ORDER BY mapping_id"
        ).fetchall()
    return ControlConfig(
        sources=tuple(
            Source(
                name=r["name"],
                host=r["db_host"],
                port=r["db_port"],
                dbname=r["db_name"],
                user=r["db_user"],
                schema=r["schema_name"],
                password=r["db_password"],
                password_env=r["db_password_env"],
            )
            for r in sources
        ),
        exclusions=tuple(
            ExclusionRule(
                r["rule_id"], r["source_name"], r["table_name"], r["column_name"], r["reason"]
            )
            for r in exclusions
        ),
        nodes=tuple(
            NodeMapping(
                r["mapping_id"],
                r["source_name"],
                r["table_name"],
                r["label"],
                tuple(r["key_columns"]) if r["key_columns"] else None,
            )
            for r in nodes
        ),
        relationships=tuple(
            RelationshipMapping(
                mapping_id=r["mapping_id"],
                relationship_type=r["relationship_type"],
                from_label=r["from_label"],
                from_alias=r["from_alias"],
                to_label=r["to_label"],
                to_alias=r["to_alias"],
                join_condition=r["join_condition"],
                link_source=r["link_source"],
                link_table=r["link_table"],
                link_alias=r["link_alias"],
                property_columns=tuple(r["property_columns"] or ()),
            )
            for r in relationships
        ),
    )


class RunLog:
    """The audit rows of one run: ``etl_run_logs``, ``etl_table_logs``, ``run_artifacts``.

    Each write is its own autocommitted statement, so what a failed run did stays recorded.
    """

    def __init__(self, settings: Settings, mode: str, options: Mapping[str, Any], version: str):
        self._settings = settings
        with connect_control(settings) as conn:
            row = conn.execute(
                "INSERT INTO etl_run_logs (mode, status, options, bulk360_version)"
                " VALUES (%s, 'running', %s, %s) RETURNING run_id",
                [mode, json.dumps(dict(options)), version],
            ).fetchone()
        assert row is not None
        self.run_id: int = row[0]

    def table(self, **values: Any) -> None:
        """Insert one ``etl_table_logs`` row for this run."""
        if "details" in values:
            values["details"] = json.dumps(values["details"])
        columns = ", ".join(["run_id", *values])
        marks = ", ".join(["%s"] * (len(values) + 1))
        with connect_control(self._settings) as conn:
            conn.execute(
                f"INSERT INTO etl_table_logs ({columns}) VALUES ({marks})",
                [self.run_id, *values.values()],
            )

    def artifact(self, kind: str, path: str, checksum: str | None, loaded: bool) -> None:
        """Register what the run produced; ``loaded`` sets ``last_run_time`` to now."""
        with connect_control(self._settings) as conn:
            conn.execute(
                "INSERT INTO run_artifacts (run_id, kind, path, checksum, last_run_time)"
                " VALUES (%s, %s, %s, %s, CASE WHEN %s THEN now() END)",
                [self.run_id, kind, path, checksum, loaded],
            )

    def finish(self, status: str, error: str | None = None, **totals: Any) -> None:
        """Close the run row with its status, totals and error text."""
        sets = ", ".join(f"{name} = %s" for name in totals)
        extra = f", {sets}" if sets else ""
        with connect_control(self._settings) as conn:
            conn.execute(
                f"UPDATE etl_run_logs SET status = %s, finished_at = now(), error_text = %s{extra}"
                " WHERE run_id = %s",
                [status, error, *totals.values(), self.run_id],
            )


def list_runs(settings: Settings, limit: int = 20) -> list[dict[str, Any]]:
    """The newest runs, newest first."""
    with connect_control(settings) as conn:
        cur = conn.cursor(row_factory=dict_row)
        return cur.execute(
            "SELECT * FROM etl_run_logs ORDER BY run_id DESC LIMIT %s", [limit]
        ).fetchall()


def show_run(settings: Settings, run_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One run and its ``etl_table_logs`` rows."""
    with connect_control(settings) as conn:
        cur = conn.cursor(row_factory=dict_row)
        run_row = cur.execute("SELECT * FROM etl_run_logs WHERE run_id = %s", [run_id]).fetchone()
        if run_row is None:
            raise ConfigError(f"no run {run_id} in etl_run_logs")
        tables = cur.execute(
            "SELECT * FROM etl_table_logs WHERE run_id = %s ORDER BY log_id", [run_id]
        ).fetchall()
    return run_row, tables
