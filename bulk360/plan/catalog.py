"""What a source database really holds, read from its system catalogs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

__all__ = ["CatalogColumn", "CatalogTable", "read_catalog"]


@dataclass(frozen=True)
class CatalogColumn:
    """A column as ``pg_attribute`` and ``pg_type`` describe it."""

    name: str
    typname: str
    category: str
    element: str | None
    not_null: bool
    type_text: str = ""
    """The declared type as PostgreSQL prints it (``numeric(10,2)``, ``text[]``)."""
    precision: int | None = None
    """Declared precision of a numeric (or numeric array) column; None when unconstrained."""
    scale: int | None = None
    """Declared scale of a numeric (or numeric array) column; None when unconstrained."""


@dataclass(frozen=True)
class CatalogTable:
    """A table (or view) of one schema with its columns, primary key and unique keys."""

    name: str
    columns: tuple[CatalogColumn, ...]
    primary_key: tuple[str, ...]
    unique_keys: tuple[frozenset[str], ...]
    size_bytes: int
    kind: str = "r"
    """``pg_class.relkind``: r table, p partitioned table, v view, m materialized view, f foreign."""

    @property
    def has_ctid(self) -> bool:
        """Whether rows have a physical position (views and foreign tables have none)."""
        return self.kind in {"r", "p", "m"}

    def column(self, name: str) -> CatalogColumn | None:
        """The column called ``name``, if the table has one."""
        return next((c for c in self.columns if c.name == name), None)

    def is_unique(self, columns: tuple[str, ...]) -> bool:
        """Whether a unique index covers a subset of ``columns`` (so they are unique too)."""
        return any(key <= set(columns) for key in self.unique_keys)


_COLUMNS = """
SELECT c.relname, a.attname,
       coalesce(bt.typname, t.typname) AS typname,
       coalesce(bt.typcategory, t.typcategory) AS typcategory,
       et.typname AS element, a.attnotnull, pg_relation_size(c.oid) AS size, c.relkind,
       format_type(a.atttypid, a.atttypmod) AS type_text,
       -- numeric(p, s) stores ((p << 16) | (s & 2047)) + 4 in its type modifier (the scale is
       -- an 11-bit signed number since PostgreSQL 15); -1 is unconstrained
       CASE WHEN coalesce(et.typname, bt.typname, t.typname) = 'numeric' AND m.typmod >= 4
            THEN ((m.typmod - 4) >> 16) & 65535 END AS numeric_precision,
       CASE WHEN coalesce(et.typname, bt.typname, t.typname) = 'numeric' AND m.typmod >= 4
            THEN (((m.typmod - 4) & 2047) # 1024) - 1024 END AS numeric_scale
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
LEFT JOIN pg_type et ON et.oid = coalesce(bt.typelem, t.typelem)
     AND coalesce(bt.typcategory, t.typcategory) = 'A'
CROSS JOIN LATERAL (SELECT CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END) AS m(typmod)
WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.relname, a.attnum
"""

_KEYS = """
SELECT c.relname, i.indisprimary,
       array_agg(a.attname ORDER BY k.ord) AS columns
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
WHERE n.nspname = %s AND i.indisunique AND i.indpred IS NULL
GROUP BY c.relname, i.indexrelid, i.indisprimary
"""


def read_catalog(conn: psycopg.Connection[Any], schema: str) -> dict[str, CatalogTable]:
    """All tables of ``schema`` with their columns and keys."""
    columns: dict[str, list[CatalogColumn]] = {}
    sizes: dict[str, int] = {}
    kinds: dict[str, str] = {}
    for (
        relname,
        attname,
        typname,
        category,
        element,
        not_null,
        size,
        kind,
        type_text,
        precision,
        scale,
    ) in conn.execute(_COLUMNS, [schema]):
        columns.setdefault(relname, []).append(
            CatalogColumn(
                attname, typname, category, element, not_null, type_text, precision, scale
            )
        )
        sizes[relname] = size
        kinds[relname] = kind
    primary: dict[str, tuple[str, ...]] = {}
    unique: dict[str, list[frozenset[str]]] = {}
    for relname, is_primary, key_columns in conn.execute(_KEYS, [schema]):
        unique.setdefault(relname, []).append(frozenset(key_columns))
        if is_primary:
            primary[relname] = tuple(key_columns)
    return {
        name: CatalogTable(
            name=name,
            columns=tuple(cols),
            primary_key=primary.get(name, ()),
            unique_keys=tuple(unique.get(name, ())),
            size_bytes=sizes.get(name, 0),
            kind=kinds.get(name, "r"),
        )
        for name, cols in columns.items()
    }
