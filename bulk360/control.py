"""The control database: its schema, the mapping rows that drive a run, and the audit log.

Reading the rows gives frozen dataclasses; nothing here checks them against the sources (see
:mod:`bulk360.plan`). Writing is limited to the audit tables ``etl_run_logs``,
``etl_table_logs`` and ``run_artifacts``.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from bulk360.errors import ConfigError, NoSuchRun, SourceError
from bulk360.settings import Settings

__all__ = [
    "ControlConfig",
    "ExclusionRule",
    "NodeMapping",
    "RelationshipMapping",
    "RunLog",
    "SchemaBaseline",
    "Source",
    "TypeOverride",
    "connect_control",
    "failed_since",
    "find_run",
    "graph_run",
    "init_schema",
    "list_runs",
    "load_config",
    "show_run",
    "sql_dir",
]


def sql_dir() -> Path:
    """The ``sql/`` folder: inside an installed wheel, else at the repository root."""
    packaged = Path(__file__).parent / "sql"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "sql"


def _reason(exc: psycopg.Error) -> str:
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
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
            raise ConfigError(
                f"the control database {settings.etl_db_name} has no bulk360 schema or an "
                "older one; run `bulk360 init` first (it creates or migrates the schema)"
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
    """A row of ``field_exclusion_rules``: ``is_excluded`` true excludes, false keeps knowingly."""

    rule_id: int
    source: str
    table: str
    column: str
    reason: str | None
    is_excluded: bool = True


@dataclass(frozen=True)
class TypeOverride:
    """A row of ``column_type_overrides``: the Neo4j type a column gets instead of the default."""

    override_id: int
    source: str
    table: str
    column: str
    neo4j_type: str

    def __str__(self) -> str:
        return f"type override #{self.override_id} ({self.source}.{self.table}.{self.column})"


@dataclass(frozen=True)
class SchemaBaseline:
    """A mapped table's columns and types as the newest succeeded run that read it saw them."""

    run_id: int
    columns: Mapping[str, str]
    """Column name → type as PostgreSQL prints it (``numeric(10,2)``)."""


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
    kept: tuple[ExclusionRule, ...] = ()
    """Rules with ``is_excluded`` false: columns kept knowingly (the schema-drift gate)."""
    overrides: tuple[TypeOverride, ...] = ()
    baselines: Mapping[tuple[str, str], SchemaBaseline] = field(default_factory=dict)
    """(source, table) → the columns the newest succeeded run saw."""

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
        rules = cur.execute(
            "SELECT rule_id, source_name, table_name, column_name, reason, is_excluded"
            " FROM field_exclusion_rules WHERE source_name = ANY(%s) ORDER BY rule_id",
            [active],
        ).fetchall()
        overrides = cur.execute(
            "SELECT override_id, source_name, table_name, column_name, neo4j_type"
            " FROM column_type_overrides WHERE source_name = ANY(%s) ORDER BY override_id",
            [active],
        ).fetchall()
        # Per table, the columns of the newest succeeded run that recorded it.
        baseline_rows = cur.execute(
            "SELECT c.run_id, c.source_name, c.table_name, c.column_name, c.type_name"
            " FROM etl_schema_columns AS c"
            " JOIN (SELECT s.source_name, s.table_name, max(s.run_id) AS run_id"
            "       FROM etl_schema_columns AS s JOIN etl_run_logs AS r USING (run_id)"
            "       WHERE r.status = 'succeeded' AND s.source_name = ANY(%s)"
            "       GROUP BY 1, 2) AS newest USING (source_name, table_name, run_id)"
            " ORDER BY c.position",
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
        exclusions=tuple(_rule(r) for r in rules if r["is_excluded"]),
        kept=tuple(_rule(r) for r in rules if not r["is_excluded"]),
        overrides=tuple(
            TypeOverride(
                r["override_id"],
                r["source_name"],
                r["table_name"],
                r["column_name"],
                r["neo4j_type"],
            )
            for r in overrides
        ),
        baselines=_baselines(baseline_rows),
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


def _rule(row: Mapping[str, Any]) -> ExclusionRule:
    return ExclusionRule(
        row["rule_id"],
        row["source_name"],
        row["table_name"],
        row["column_name"],
        row["reason"],
        row["is_excluded"],
    )


def _baselines(rows: list[dict[str, Any]]) -> dict[tuple[str, str], SchemaBaseline]:
    columns: dict[tuple[str, str], dict[str, str]] = {}
    run_of: dict[tuple[str, str], int] = {}
    for row in rows:
        key = (row["source_name"], row["table_name"])
        columns.setdefault(key, {})[row["column_name"]] = row["type_name"]
        run_of[key] = row["run_id"]
    return {key: SchemaBaseline(run_of[key], cols) for key, cols in columns.items()}


# Advisory-lock namespace of running runs: a run holds (_RUN_LOCK, run_id) for as long as it
# works, so that a later run can tell a run that died (lock free) from one still working.
_RUN_LOCK = 360360

_STOPPED = (
    "the run stopped without finishing: its process ended (killed, or the machine stopped) "
    "before it could record why"
)


class RunLog:
    """The audit rows of one run: ``etl_run_logs``, ``etl_table_logs``, ``run_artifacts``.

    Each write is its own autocommitted statement, so what a failed run did stays recorded. A
    connection of its own holds the run's advisory lock until :meth:`close`.
    """

    def __init__(
        self,
        settings: Settings,
        mode: str,
        options: Mapping[str, Any],
        version: str,
        resumed_from: int | None = None,
    ):
        self._settings = settings
        with connect_control(settings) as conn:
            self.reconciled = _reconcile(conn)
            row = conn.execute("SELECT instance_id::text FROM control_instance").fetchone()
        assert row is not None
        self.instance: str = row[0]
        uid = uuid.uuid4()
        self.token = uid.hex[:8]
        self._lock = psycopg.connect(**settings.control_conninfo())
        try:
            with self._lock.transaction():
                inserted = self._lock.execute(
                    "INSERT INTO etl_run_logs"
                    " (mode, status, options, bulk360_version, resumed_from, run_uid)"
                    " VALUES (%s, 'running', %s, %s, %s, %s) RETURNING run_id",
                    [mode, json.dumps(dict(options)), version, resumed_from, uid],
                ).fetchone()
                assert inserted is not None
                self.run_id: int = inserted[0]
                # Taken before the row is visible, so no other run ever sees it unlocked.
                self._lock.execute("SELECT pg_advisory_lock(%s, %s)", [_RUN_LOCK, self.run_id])
        except BaseException:
            self._lock.close()
            raise
        self._lock.autocommit = True

    def _write(self, query: str, values: list[Any]) -> None:
        try:
            with connect_control(self._settings) as conn:
                conn.execute(query, values)
        except psycopg.Error as exc:  # the connection broke mid-statement
            raise ConfigError(
                f"writing to the control database {self._settings.etl_db_name} failed: "
                f"{_reason(exc)}"
            ) from None

    def folder(self, path: Path) -> None:
        """Where the run's import folder will be (so a stopped run can be found and cleaned)."""
        self._write(
            "UPDATE etl_run_logs SET import_dir = %s WHERE run_id = %s", [str(path), self.run_id]
        )

    def published(self, manifest_sha256: str, at: datetime | None = None) -> None:
        """The import folder is complete and published (``at``, default now); its manifest's
        SHA-256."""
        self._write(
            "UPDATE etl_run_logs SET published_at = coalesce(%s, now()), manifest_sha256 = %s"
            " WHERE run_id = %s",
            [at, manifest_sha256, self.run_id],
        )

    def diffed_against(self, run_id: int) -> None:
        """The run whose import folder a sync compared its own with."""
        self._write(
            "UPDATE etl_run_logs SET diffed_against = %s WHERE run_id = %s", [run_id, self.run_id]
        )

    def schema(self, columns: list[tuple[str, str, str, str, int]]) -> None:
        """The (source, table, column, type, position) of every mapped table read."""
        if not columns:
            return
        rows = [(self.run_id, *column) for column in columns]
        marks = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(rows))
        self._write(
            "INSERT INTO etl_schema_columns"
            " (run_id, source_name, table_name, column_name, type_name, position)"
            f" VALUES {marks} ON CONFLICT DO NOTHING",
            [value for row in rows for value in row],
        )

    def copy_schema(self, from_run: int) -> None:
        """The columns a resumed run read, recorded again for this run."""
        self._write(
            "INSERT INTO etl_schema_columns"
            " SELECT %s, source_name, table_name, column_name, type_name, position"
            " FROM etl_schema_columns WHERE run_id = %s ON CONFLICT DO NOTHING",
            [self.run_id, from_run],
        )

    def table(self, **values: Any) -> None:
        """Insert one ``etl_table_logs`` row for this run."""
        if "details" in values:
            values["details"] = json.dumps(values["details"])
        columns = ", ".join(["run_id", *values])
        marks = ", ".join(["%s"] * (len(values) + 1))
        self._write(
            f"INSERT INTO etl_table_logs ({columns}) VALUES ({marks})",
            [self.run_id, *values.values()],
        )

    def artifact(self, kind: str, path: str, checksum: str | None, loaded: bool) -> None:
        """Register what the run produced; ``loaded`` sets ``last_run_time`` to now."""
        self._write(
            "INSERT INTO run_artifacts (run_id, kind, path, checksum, last_run_time)"
            " VALUES (%s, %s, %s, %s, CASE WHEN %s THEN now() END)",
            [self.run_id, kind, path, checksum, loaded],
        )

    def finish(self, status: str, error: str | None = None, **values: Any) -> None:
        """Close the run row with its status, error text and totals."""
        values = {k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in values.items()}
        sets = ", ".join(f"{name} = %s" for name in values)
        extra = f", {sets}" if sets else ""
        self._write(
            f"UPDATE etl_run_logs SET status = %s, finished_at = now(), error_text = %s{extra}"
            " WHERE run_id = %s",
            [status, error, *values.values(), self.run_id],
        )

    def close(self) -> None:
        """Release the run's lock (closing its connection)."""
        self._lock.close()


def _reconcile(conn: psycopg.Connection[Any]) -> list[int]:
    """Mark runs found ``running`` whose process is gone as failed; returns their ids.

    A run that lost the control database wrote why into its folder (``failure.json``); that
    text becomes its error. Its unpublished work folder is removed.
    """
    stale = conn.execute(
        "SELECT run_id, import_dir FROM etl_run_logs WHERE status = 'running' ORDER BY run_id"
    ).fetchall()
    marked = []
    for run_id, import_dir in stale:
        with conn.transaction():
            row = conn.execute(
                "SELECT pg_try_advisory_xact_lock(%s, %s)", [_RUN_LOCK, run_id]
            ).fetchone()
            if not (row and row[0]):
                continue  # still running
            error, finished = _failure_of(Path(import_dir) if import_dir else None)
            conn.execute(
                "UPDATE etl_run_logs SET status = 'failed', error_text = %s,"
                " finished_at = coalesce(%s::timestamptz, now()) WHERE run_id = %s",
                [error or _STOPPED, finished, run_id],
            )
        marked.append(run_id)
    return marked


def _failure_of(final_dir: Path | None) -> tuple[str | None, str | None]:
    """The failure a run wrote into its folder, and remove its unpublished work folder."""
    if final_dir is None:
        return None, None
    work_dir = final_dir.parent / f".{final_dir.name}.partial"
    found: dict[str, Any] = {}
    for folder in (final_dir, work_dir):
        try:
            found = json.loads((folder / "failure.json").read_text())
            break
        except (OSError, ValueError):
            continue
    shutil.rmtree(work_dir, ignore_errors=True)
    return found.get("error"), found.get("finished_at")


def failed_since(settings: Settings, run_id: int, mode: str) -> list[int]:
    """The failed runs of ``mode`` newer than ``run_id``."""
    with connect_control(settings) as conn:
        rows = conn.execute(
            "SELECT run_id FROM etl_run_logs WHERE status = 'failed' AND mode = %s"
            " AND run_id > %s ORDER BY run_id",
            [mode, run_id],
        ).fetchall()
    return [row[0] for row in rows]


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
            raise NoSuchRun(f"no run {run_id} in etl_run_logs")
        tables = cur.execute(
            "SELECT * FROM etl_table_logs WHERE run_id = %s ORDER BY log_id", [run_id]
        ).fetchall()
    return run_row, tables


def find_run(settings: Settings, run_id: int | None, status: str) -> dict[str, Any]:
    """Run ``run_id`` (or the newest run with ``status``); a ConfigError if there is none."""
    with connect_control(settings) as conn:
        _reconcile(conn)
        cur = conn.cursor(row_factory=dict_row)
        if run_id is None:
            row = cur.execute(
                "SELECT * FROM etl_run_logs WHERE status = %s ORDER BY run_id DESC LIMIT 1",
                [status],
            ).fetchone()
            if row is None:
                raise ConfigError(f"no {status} run in etl_run_logs")
            return row
        row = cur.execute("SELECT * FROM etl_run_logs WHERE run_id = %s", [run_id]).fetchone()
    if row is None:
        raise NoSuchRun(f"no run {run_id} in etl_run_logs")
    return row


def graph_run(settings: Settings, after: int | None = None) -> dict[str, Any] | None:
    """The newest succeeded run that loaded ``NEO4J_DATABASE`` (admin, bolt or sync mode).

    ``after``: only a run newer than that run id.
    """
    with connect_control(settings) as conn:
        cur = conn.cursor(row_factory=dict_row)
        return cur.execute(
            "SELECT * FROM etl_run_logs WHERE status = 'succeeded'"
            " AND mode IN ('admin', 'bolt', 'sync')"
            " AND coalesce(options->>'neo4j_database', %s) = %s AND run_id > %s"
            " ORDER BY run_id DESC LIMIT 1",
            [settings.neo4j_database, settings.neo4j_database, after or 0],
        ).fetchone()
