"""The configuration rows of the control database in the shape of a mappings file.

A mappings file has one section per kind of row (:data:`SECTIONS`). Each section names its
control table, the columns each file field stands for (:class:`Field`), and the fields that
identify a row (a source by its name, a label mapping by source, table and label, ...): rows
are compared, changed and removed by that identity, never by their serial ids, so that a file
can be applied to any control database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

__all__ = ["SECTIONS", "Field", "Rows", "Section", "read_rows"]

Row = dict[str, Any]
"""One row as the file holds it: field → value, defaults left out."""


@dataclass(frozen=True)
class Field:
    """A file field and the control column it stands for."""

    path: tuple[str, ...]
    """Where in a file row (``("from", "label")`` is ``from: {label: ...}``)."""
    column: str
    default: Any = None
    """The value a file leaves out (and that an absent field means)."""


@dataclass(frozen=True)
class Section:
    """A section of the file: the rows of one control table (or a part of one)."""

    name: str
    table: str
    id_column: str
    fields: tuple[Field, ...]
    identity: tuple[tuple[str, ...], ...]
    """The paths of the fields that identify a row."""
    fixed: Mapping[str, Any] | None = None
    """Columns every row of this section has (``is_excluded`` of exclude and keep rows)."""

    def key(self, row: Row) -> tuple[Any, ...]:
        return tuple(_get(row, path) for path in self.identity)

    def describe(self, row: Row) -> str:
        """How messages name a row: ``profiles.accounts -> :Account``."""
        values = [str(v) for v in self.key(row)]
        if self.name == "labels":
            return f"{values[0]}.{values[1]} -> :{values[2]}"
        if self.name == "relationships":
            return f"(:{values[1]})-[:{values[0]}]->(:{values[2]})"
        return ".".join(values)

    def to_columns(self, row: Row) -> dict[str, Any]:
        """The control columns of a file row (absent fields get their defaults)."""
        columns = {f.column: _get(row, f.path, f.default) for f in self.fields}
        return {**columns, **(self.fixed or {})}

    def to_row(self, columns: Mapping[str, Any]) -> Row:
        """The file row of control columns: fields equal to their default are left out."""
        row: Row = {}
        for f in self.fields:
            value = columns[f.column]
            if isinstance(value, list | tuple):
                value = list(value)
            if value is None or value == f.default:
                continue
            target = row
            for part in f.path[:-1]:
                target = target.setdefault(part, {})
            target[f.path[-1]] = value
        return row


def _get(row: Mapping[str, Any], path: tuple[str, ...], default: Any = None) -> Any:
    value: Any = row
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return default
        value = value[part]
    return list(value) if isinstance(value, tuple) else value


def _field(path: str, column: str, default: Any = None) -> Field:
    return Field(tuple(path.split(".")), column, default)


_COLUMN_RULE = (_field("source", "source_name"), _field("table", "table_name"))
_COLUMN_IDENTITY = (("source",), ("table",), ("column",))

SECTIONS: tuple[Section, ...] = (
    Section(
        "sources",
        "source_databases",
        "source_id",
        (
            _field("name", "name"),
            _field("host", "db_host"),
            _field("port", "db_port"),
            _field("database", "db_name"),
            _field("user", "db_user"),
            _field("password_env", "db_password_env"),
            _field("schema", "schema_name", "public"),
            _field("active", "is_active", True),
            _field("description", "description"),
        ),
        (("name",),),
    ),
    Section(
        "exclude",
        "field_exclusion_rules",
        "rule_id",
        (*_COLUMN_RULE, _field("column", "column_name"), _field("reason", "reason")),
        _COLUMN_IDENTITY,
        {"is_excluded": True},
    ),
    Section(
        "keep",
        "field_exclusion_rules",
        "rule_id",
        (*_COLUMN_RULE, _field("column", "column_name"), _field("reason", "reason")),
        _COLUMN_IDENTITY,
        {"is_excluded": False},
    ),
    Section(
        "types",
        "column_type_overrides",
        "override_id",
        (
            *_COLUMN_RULE,
            _field("column", "column_name"),
            _field("type", "neo4j_type"),
            _field("reason", "reason"),
        ),
        _COLUMN_IDENTITY,
    ),
    Section(
        "labels",
        "node_label_mappings",
        "mapping_id",
        (
            *_COLUMN_RULE,
            _field("label", "label"),
            _field("group", "group_label"),
            _field("key", "key_columns"),
            _field("active", "is_active", True),
            _field("description", "description"),
        ),
        (("source",), ("table",), ("label",)),
    ),
    Section(
        "relationships",
        "relationship_mappings",
        "mapping_id",
        (
            _field("type", "relationship_type"),
            _field("from.label", "from_label"),
            _field("from.alias", "from_alias"),
            _field("to.label", "to_label"),
            _field("to.alias", "to_alias"),
            _field("join", "join_condition"),
            _field("link.source", "link_source"),
            _field("link.table", "link_table"),
            _field("link.alias", "link_alias"),
            _field("properties", "property_columns", []),
            _field("active", "is_active", True),
            _field("description", "description"),
        ),
        # Two mappings may give one type between the same labels by different joins.
        (("type",), ("from", "label"), ("to", "label"), ("join",)),
    ),
)


@dataclass(frozen=True)
class Rows:
    """Every configuration row, per section, each with its control id (None: not written yet)."""

    sections: Mapping[str, list[tuple[int | None, Row]]]
    clear_passwords: tuple[str, ...] = ()
    """Sources whose password is stored in the control database (a file never holds it)."""

    def by_key(self, section: Section) -> dict[tuple[Any, ...], tuple[int | None, Row]]:
        return {section.key(row): (id_, row) for id_, row in self.sections[section.name]}


def read_rows(conn: psycopg.Connection[Any]) -> Rows:
    """Every configuration row of the control database, inactive ones too."""
    cur = conn.cursor(row_factory=dict_row)
    sections: dict[str, list[tuple[int | None, Row]]] = {}
    clear: list[str] = []
    for section in SECTIONS:
        query = sql.SQL("SELECT * FROM {} {} ORDER BY {}").format(
            sql.Identifier(section.table),
            sql.SQL("WHERE " if section.fixed else "")
            + sql.SQL(" AND ").join(
                sql.SQL("{} = {}").format(sql.Identifier(c), sql.Literal(v))
                for c, v in (section.fixed or {}).items()
            ),
            sql.Identifier(section.id_column),
        )
        found = cur.execute(query).fetchall()
        sections[section.name] = [(r[section.id_column], section.to_row(r)) for r in found]
        if section.name == "sources":
            clear = [r["name"] for r in found if r["db_password"] is not None]
    return Rows(sections, tuple(clear))
