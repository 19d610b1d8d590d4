"""What a run reads of each mapped table: its kept columns with their Neo4j types, and the SQL of
its reader (``COPY``), of the Spark engine's JDBC reads, and of its audit scan."""

from __future__ import annotations

import re
from dataclasses import dataclass

from psycopg import sql

from bulk360.plan.ids import IdRange
from bulk360.plan.types import ValueAudit

__all__ = ["IDENTIFIER", "ColumnPlan", "TablePlan"]

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ColumnPlan:
    """A column that leaves PostgreSQL, with its Neo4j type and formatting SQL."""

    name: str
    pg_type: str
    neo4j_type: str
    select: sql.Composable
    audits: tuple[ValueAudit, ...] = ()
    """What the reader counts about values of this column that Neo4j cannot hold as they are."""
    expression: sql.Composable | None = None
    """:attr:`select` without its name (the follower formats the stream's values with it)."""

    @property
    def header(self) -> str:
        """The ``name:type`` header field of the CSV files."""
        return f"{self.name}:{self.neo4j_type}"


@dataclass(frozen=True)
class TablePlan:
    """One table to read: as the nodes of ``label``, or only for relationships (no label)."""

    source: str
    schema: str
    table: str
    columns: tuple[ColumnPlan, ...]
    excluded: tuple[str, ...]
    label: str | None
    key_columns: tuple[str, ...]
    key_unique: bool
    key_not_null: bool
    size_bytes: int
    catalog_columns: tuple[tuple[str, str], ...] = ()
    """Every column of the table (excluded ones too) with its type: the schema a run records."""
    has_ctid: bool = True
    """Whether its rows have a physical position (not a view or a foreign table)."""
    group_label: str | None = None
    """A second label its nodes carry, shared with other tables (a template's tenants)."""

    @property
    def name(self) -> str:
        """``label`` for node tables, ``source.table`` for tables read only for relationships."""
        return self.label or f"{self.source}.{self.table}"

    @property
    def labels_text(self) -> str:
        """``:Label``, or ``:Label:Group`` when its nodes carry a group label too."""
        return "".join(f":{name}" for name in (self.label, self.group_label) if name)

    @property
    def id_header(self) -> str:
        """Header of the node id column: a dense global integer id (see :mod:`bulk360.plan.ids`)."""
        return ":ID"

    def headers(self) -> list[str]:
        """The header fields of this table's CSV file, in order."""
        fields = [column.header for column in self.columns]
        return [self.id_header, *fields] if self.label else fields

    def header_of(self, column: str) -> str:
        """The header field of ``column``."""
        return next(c.header for c in self.columns if c.name == column)

    def _relation(self) -> sql.Composable:
        return sql.Identifier(self.schema, self.table)

    def _key_not_null(self) -> sql.Composable:
        return sql.SQL(" AND ").join(
            sql.SQL("{} IS NOT NULL").format(sql.Identifier(k)) for k in self.key_columns
        )

    def _nodes(self) -> sql.Composable:
        """The rows that become nodes: keys not NULL, and one row per key.

        A key that no unique index guarantees keeps its first row in the table's physical order
        (its ``ctid``; a view's rows have none, so there it is whichever PostgreSQL gives
        first). The others are duplicates, counted and rejected.
        """
        if self.key_unique:
            if self.key_not_null:
                return self._relation()
            return sql.SQL("(SELECT * FROM {} WHERE {}) AS nodes").format(
                self._relation(), self._key_not_null()
            )
        keys = sql.SQL(", ").join(sql.Identifier(k) for k in self.key_columns)
        order = sql.SQL("{}, ctid").format(keys) if self.has_ctid else keys
        return sql.SQL("(SELECT DISTINCT ON ({}) * FROM {} WHERE {} ORDER BY {}) AS nodes").format(
            keys, self._relation(), self._key_not_null(), order
        )

    def select_sql(self, ids: IdRange | None = None) -> sql.Composed:
        """The reader's SELECT: kept columns only, for a node table its id first.

        ``ids`` is the label's range of node ids (a range from 0 when not given, as ``bulk360
        plan`` shows it); PostgreSQL numbers the rows in the order it sends them.
        """
        selects: list[sql.Composable] = [c.select for c in self.columns]
        if not self.label:
            return sql.SQL("SELECT {} FROM {}").format(
                sql.SQL(", ").join(selects), self._relation()
            )
        selects.insert(0, (ids or IdRange(0, None)).expression())
        return sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(selects), self._nodes())

    def text_sql(self, blocks: tuple[int, int | None] | None = None) -> sql.Composed:
        """The reader's rows as text, without ids: the Spark engine's JDBC query.

        Each column is the local reader's SELECT expression as text: PostgreSQL formats the
        value exactly as its ``COPY`` does, so both engines write the same text. Columns are
        named ``c0``, ``c1``, ... in :meth:`headers` order (without ``:ID``). ``blocks`` reads
        only the rows stored in that range of pages (``(first, end)``, end None: to the last),
        a TID range scan; only for a :attr:`splittable` table.
        """
        relation = self._nodes() if self.label else self._relation()
        where: sql.Composable = sql.SQL("")
        if blocks is not None:
            first, end = blocks
            where = sql.SQL(" WHERE ctid >= {}::tid").format(sql.Literal(f"({first},0)"))
            if end is not None:
                where += sql.SQL(" AND ctid < {}::tid").format(sql.Literal(f"({end},0)"))
        # concat() formats with the type's output function, as COPY does; a cast to text
        # may not (inet gains its /32, char(n) loses its padding).
        outer = [
            sql.SQL("CASE WHEN {c} IS NULL THEN NULL ELSE concat({c}) END AS {a}").format(
                c=sql.Identifier(c.name), a=sql.Identifier(f"c{i}")
            )
            for i, c in enumerate(self.columns)
        ]
        return sql.SQL("SELECT {} FROM (SELECT {} FROM {}{}) AS r").format(
            sql.SQL(", ").join(outer),
            sql.SQL(", ").join(c.select for c in self.columns),
            relation,
            where,
        )

    @property
    def splittable(self) -> bool:
        """Whether readers may split it by block ranges: a plain table whose rows are all read
        (rows that a filter or ``DISTINCT ON`` picks are read by one reader)."""
        return self.has_ctid and (not self.label or (self.key_unique and self.key_not_null))

    def copy_sql(self, ids: IdRange | None = None) -> sql.Composed:
        """The reader's ``COPY (SELECT ...) TO STDOUT (FORMAT csv)``."""
        return sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(self.select_sql(ids))

    @property
    def needs_audit(self) -> bool:
        """Whether rows can be rejected (a nullable or non-unique key) or values change."""
        keys_can_fail = bool(self.label) and not (self.key_unique and self.key_not_null)
        return keys_can_fail or any(c.audits for c in self.columns)

    def audit_sql(self) -> tuple[sql.Composed, list[tuple[str, str]]]:
        """One scan counting the rows and what the file will not hold as it is.

        Returns the query and, per result column, what it counts: ``("", "rows")`` every row,
        ``("", "null_key")`` the rows rejected for a NULL key, ``("", "keys")`` the distinct
        keys (when no unique index guarantees them), ``(column, kind)`` for a
        :class:`ValueAudit` of a column.
        """
        counts: list[sql.Composable] = [sql.SQL("count(*)")]
        names: list[tuple[str, str]] = [("", "rows")]
        if self.label and not self.key_not_null:
            counts.append(sql.SQL("count(*) FILTER (WHERE NOT ({}))").format(self._key_not_null()))
            names.append(("", "null_key"))
        if self.label and not self.key_unique:
            keys = sql.SQL(", ").join(sql.Identifier(k) for k in self.key_columns)
            distinct = keys if len(self.key_columns) == 1 else sql.SQL("ROW({})").format(keys)
            counts.append(
                sql.SQL("count(DISTINCT {}) FILTER (WHERE {})").format(
                    distinct, self._key_not_null()
                )
            )
            names.append(("", "keys"))
        for column in self.columns:
            for audit in column.audits:
                counts.append(
                    sql.SQL("count(*) FILTER (WHERE {})").format(audit.predicate(column.name))
                )
                names.append((column.name, audit.kind))
        columns = sql.SQL(", ").join(counts)
        return sql.SQL("SELECT {} FROM {}").format(columns, self._relation()), names
