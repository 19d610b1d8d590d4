"""The configuration rows of the control database: sources, exclusion and keep rules, type
overrides, node and relationship mappings, and each mapped table's schema baseline.

Reading them gives frozen dataclasses; nothing here checks them against the sources (see
:mod:`bulk360.plan`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from bulk360.control.database import connect_control, error_reason
from bulk360.errors import ConfigError, SourceError
from bulk360.settings import Settings

__all__ = [
    "ControlConfig",
    "ExclusionRule",
    "NodeMapping",
    "RelationshipMapping",
    "SchemaBaseline",
    "Source",
    "TypeOverride",
    "load_config",
    "node_of",
    "override_of",
    "relationship_of",
    "rule_of",
    "source_of",
]


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
            why = error_reason(exc)
            raise SourceError(
                f"source '{self.name}': cannot connect to {self.dbname} at "
                f"{self.host}:{self.port} as {self.user}: {why}"
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
    group_label: str | None = None
    """A second label the nodes also carry, shared by several mappings (a template's tenants)."""

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
            "SELECT mapping_id, source_name, table_name, label, key_columns, group_label"
            " FROM node_label_mappings WHERE is_active AND source_name = ANY(%s)"
            " ORDER BY mapping_id",
            [active],
        ).fetchall()
        relationships = cur.execute(
            "SELECT * FROM relationship_mappings WHERE is_active ORDER BY mapping_id"
        ).fetchall()
    return ControlConfig(
        sources=tuple(source_of(r) for r in sources),
        exclusions=tuple(rule_of(r) for r in rules if r["is_excluded"]),
        kept=tuple(rule_of(r) for r in rules if not r["is_excluded"]),
        overrides=tuple(override_of(r) for r in overrides),
        baselines=_baselines(baseline_rows),
        nodes=tuple(node_of(r) for r in nodes),
        relationships=tuple(relationship_of(r) for r in relationships),
    )


# A row with the control table's columns → its dataclass (the rows a run reads, or the rows a
# mappings file would write: see bulk360.mappings).


def override_of(r: Mapping[str, Any]) -> TypeOverride:
    return TypeOverride(
        r["override_id"], r["source_name"], r["table_name"], r["column_name"], r["neo4j_type"]
    )


def node_of(r: Mapping[str, Any]) -> NodeMapping:
    keys = tuple(r["key_columns"]) if r["key_columns"] else None
    return NodeMapping(
        r["mapping_id"], r["source_name"], r["table_name"], r["label"], keys, r.get("group_label")
    )


def source_of(r: Mapping[str, Any]) -> Source:
    return Source(
        name=r["name"],
        host=r["db_host"],
        port=r["db_port"],
        dbname=r["db_name"],
        user=r["db_user"],
        schema=r["schema_name"],
        password=r["db_password"],
        password_env=r["db_password_env"],
    )


def relationship_of(r: Mapping[str, Any]) -> RelationshipMapping:
    return RelationshipMapping(
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


def rule_of(row: Mapping[str, Any]) -> ExclusionRule:
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
