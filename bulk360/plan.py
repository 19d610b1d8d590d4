"""The plan of a run: the control rows checked against the live catalogs.

:func:`build_plan` either returns a :class:`Plan` — every table to read with the exact columns
and SQL, every relationship with its join keys — or raises
:class:`~bulk360.errors.ValidationFailed` listing every problem it found, each naming the
control row it comes from. Nothing is written before this check passes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from psycopg import sql

from bulk360.catalog import CatalogColumn, CatalogTable
from bulk360.control import ControlConfig, NodeMapping, RelationshipMapping, Source
from bulk360.errors import ValidationFailed
from bulk360.ids import IdRange
from bulk360.joins import (
    ColumnRef,
    Filter,
    JoinConditionError,
    parse_column,
    parse_join_condition,
)
from bulk360.types import OVERRIDE_TYPES, ValueAudit, join_family, property_type

__all__ = [
    "ColumnPlan",
    "Plan",
    "RelationshipPlan",
    "SchemaChange",
    "TablePlan",
    "build_plan",
]

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

    @property
    def name(self) -> str:
        """``label`` for node tables, ``source.table`` for tables read only for relationships."""
        return self.label or f"{self.source}.{self.table}"

    @property
    def id_header(self) -> str:
        """Header of the node id column: a dense global integer id (see :mod:`bulk360.ids`)."""
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


@dataclass(frozen=True)
class RelationshipPlan:
    """A relationship mapping resolved to tables and join-key header fields.

    ``*_keys`` pair header fields of two sides: ``from_link_keys`` are (from, link) pairs,
    ``link_to_keys`` (link, to) pairs and ``from_to_keys`` (from, to) pairs.
    """

    mapping: RelationshipMapping
    from_table: TablePlan
    to_table: TablePlan
    link_table: TablePlan | None
    from_to_keys: tuple[tuple[str, str], ...]
    from_link_keys: tuple[tuple[str, str], ...]
    link_to_keys: tuple[tuple[str, str], ...]
    properties: tuple[tuple[str, str], ...]
    """(role, header) pairs; role is 'from', 'to' or 'link'."""
    filters: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    """(role, header, values): only rows of that side whose text is one of ``values``."""

    @property
    def relationship_type(self) -> str:
        return self.mapping.relationship_type

    @property
    def name(self) -> str:
        """Unique name of the mapping's output, e.g. ``HAS_PAYMENT_METHOD.3``."""
        return f"{self.mapping.relationship_type}.{self.mapping.mapping_id}"


@dataclass(frozen=True)
class SchemaChange:
    """A mapped table's column that changed since the newest succeeded run that read it."""

    source: str
    table: str
    column: str
    text: str
    """One line naming source, table and column, and what to do."""
    blocking: bool
    """Whether it stops a run (a new column without a rule, a changed type)."""


@dataclass(frozen=True)
class Plan:
    """Everything a run reads and builds, checked against the live catalogs."""

    sources: tuple[Source, ...]
    tables: tuple[TablePlan, ...]
    relationships: tuple[RelationshipPlan, ...]
    schema_changes: tuple[SchemaChange, ...] = ()

    def source(self, name: str) -> Source:
        return next(s for s in self.sources if s.name == name)

    @property
    def blocking_changes(self) -> list[SchemaChange]:
        """The schema changes that stop a run unless accepted."""
        return [change for change in self.schema_changes if change.blocking]

    def schema_columns(self) -> list[tuple[str, str, str, str, int]]:
        """(source, table, column, type, position) of every node table: what a run records."""
        return [
            (t.source, t.table, name, type_text, position)
            for t in self.tables
            if t.label
            for position, (name, type_text) in enumerate(t.catalog_columns, start=1)
        ]


class _Checker:
    """Collects problems while building the plan, so that one report lists them all."""

    def __init__(self, config: ControlConfig, catalogs: Mapping[str, Mapping[str, CatalogTable]]):
        self.config = config
        self.catalogs = catalogs
        self.problems: list[str] = []
        self.excluded: dict[tuple[str, str], dict[str, int]] = {}
        self.changes: list[SchemaChange] = []
        self.overrides = {(o.source, o.table, o.column): o for o in config.overrides}

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def catalog_table(self, source: str, table: str, where: str) -> CatalogTable | None:
        if source not in self.catalogs:
            if self.config.source(source) is None:
                self.problem(f"{where}: source '{source}' is not an active source_databases row")
            return None  # unreachable sources are reported once, by read_catalogs
        found = self.catalogs[source].get(table)
        if found is None:
            schema = self.config.source(source).schema  # type: ignore[union-attr]
            self.problem(f"{where}: table {schema}.{table} does not exist in source '{source}'")
        return found

    def check_exclusions(self) -> None:
        for rule in self.config.exclusions:
            where = f"exclusion rule #{rule.rule_id}"
            found = self.catalog_table(rule.source, rule.table, where)
            if found is not None and found.column(rule.column) is None:
                self.problem(
                    f"{where}: column '{rule.column}' does not exist in {rule.source}.{rule.table}"
                )
            self.excluded.setdefault((rule.source, rule.table), {})[rule.column] = rule.rule_id

    def check_overrides(self) -> None:
        for override in self.config.overrides:
            where = str(override)
            found = self.catalog_table(override.source, override.table, where)
            if found is None:
                continue
            column = found.column(override.column)
            if column is None:
                self.problem(
                    f"{where}: column '{override.column}' does not exist in "
                    f"{override.source}.{override.table}"
                )
            elif override.neo4j_type not in OVERRIDE_TYPES:
                self.problem(
                    f"{where}: neo4j_type '{override.neo4j_type}' is not one of "
                    + ", ".join(OVERRIDE_TYPES)
                )
            elif override.neo4j_type == "double" and not _holds_numbers(column):
                self.problem(
                    f"{where}: a {column.type_text or column.typname} column cannot be a double; "
                    "double is for numeric, money and integer columns"
                )

    def check_drift(self, source: Source, found: CatalogTable, where: str) -> None:
        """Columns new or changed since the newest succeeded run that read this table."""
        baseline = self.config.baselines.get((source.name, found.name))
        if baseline is None:
            return  # mapped for the first time: mapping it is the decision
        excluded = self.excluded.get((source.name, found.name), {})
        kept = {
            r.column for r in self.config.kept if (r.source, r.table) == (source.name, found.name)
        }
        since = f"since run {baseline.run_id}"
        table = f"source '{source.name}', table {source.schema}.{found.name}"

        def change(column: str, text: str, blocking: bool) -> None:
            self.changes.append(SchemaChange(source.name, found.name, column, text, blocking))

        for column in found.columns:
            before = baseline.columns.get(column.name)
            if before is None and column.name not in excluded and column.name not in kept:
                rule = ", ".join(
                    sql.Literal(v).as_string(None) for v in (source.name, found.name, column.name)
                )
                insert = (
                    "INSERT INTO field_exclusion_rules"
                    f" (source_name, table_name, column_name, is_excluded, reason) VALUES ({rule}"
                )
                change(
                    column.name,
                    f"{table}: new column '{column.name}' ({column.type_text}) {since} has no "
                    f"rule; keep it: {insert}, false, 'reviewed'); or exclude it: {insert}, "
                    "true, 'not for the graph');",
                    True,
                )
            elif before is not None and before != column.type_text and column.name not in excluded:
                change(
                    column.name,
                    f"{table}: column '{column.name}' changed type from {before} to "
                    f"{column.type_text} {since}",
                    True,
                )
        for name in baseline.columns:
            if found.column(name) is None and name not in excluded:
                change(
                    name,
                    f"{table}: column '{name}' was dropped {since}; its property is no "
                    "longer written",
                    False,
                )

    def table_plan(
        self,
        source: Source,
        found: CatalogTable,
        label: str | None,
        keys: tuple[str, ...],
        wanted: set[str] | None,
        where: str,
    ) -> TablePlan:
        excluded = self.excluded.get((source.name, found.name), {})
        columns: list[ColumnPlan] = []
        for column in found.columns:
            if column.name in excluded or (wanted is not None and column.name not in wanted):
                continue
            if not IDENTIFIER.match(column.name):
                self.problem(
                    f"{where}: column '{column.name}' of {source.name}.{found.name} is not a valid "
                    "property name; exclude it with a field_exclusion_rules row"
                )
                continue
            override = self.overrides.get((source.name, found.name, column.name))
            kind = property_type(
                column.typname,
                column.category,
                column.element,
                column.precision,
                column.scale,
                override.neo4j_type if override else None,
            )
            columns.append(
                ColumnPlan(
                    column.name,
                    column.typname,
                    kind.neo4j_type,
                    kind.select(column.name),
                    kind.audits,
                )
            )
        key_columns = [found.column(k) for k in keys]
        return TablePlan(
            source=source.name,
            schema=source.schema,
            table=found.name,
            columns=tuple(columns),
            excluded=tuple(sorted(excluded)),
            label=label,
            key_columns=keys,
            key_unique=bool(keys) and found.is_unique(keys),
            key_not_null=all(c is not None and c.not_null for c in key_columns),
            size_bytes=found.size_bytes,
            catalog_columns=tuple((c.name, c.type_text) for c in found.columns),
            has_ctid=found.has_ctid,
        )

    def node_plan(self, mapping: NodeMapping) -> TablePlan | None:
        where = str(mapping)
        if not IDENTIFIER.match(mapping.label):
            self.problem(f"{where}: label '{mapping.label}' is not a valid identifier")
        found = self.catalog_table(mapping.source, mapping.table, where)
        if found is None:
            return None
        keys = mapping.key_columns or found.primary_key
        if not keys:
            self.problem(
                f"{where}: {mapping.source}.{mapping.table} has no primary key; set key_columns"
            )
            return None
        excluded = self.excluded.get((mapping.source, mapping.table), {})
        for key in keys:
            if found.column(key) is None:
                self.problem(
                    f"{where}: key column '{key}' does not exist in {mapping.source}.{mapping.table}"
                )
            elif key in excluded:
                self.problem(
                    f"{where}: key column '{key}' is excluded by exclusion rule #{excluded[key]}"
                )
        source = self.config.source(mapping.source)
        assert source is not None
        self.check_drift(source, found, where)
        return self.table_plan(source, found, mapping.label, tuple(keys), None, where)

    def relationship_plan(
        self, mapping: RelationshipMapping, nodes: Mapping[str, TablePlan]
    ) -> RelationshipPlan | None:
        where = str(mapping)
        problems_before = len(self.problems)
        if not IDENTIFIER.match(mapping.relationship_type):
            self.problem(
                f"{where}: relationship type '{mapping.relationship_type}' is not a valid identifier"
            )
        aliases = [mapping.from_alias, mapping.to_alias] + (
            [mapping.link_alias] if mapping.link_alias else []
        )
        if len(set(aliases)) != len(aliases):
            self.problem(
                f"{where}: aliases {', '.join(aliases)} are ambiguous: each must be distinct"
            )
            return None
        for alias in aliases:
            if not IDENTIFIER.match(alias or ""):
                self.problem(f"{where}: alias '{alias}' is not a valid identifier")
        ends: dict[str, TablePlan] = {}
        for role, label in (("from", mapping.from_label), ("to", mapping.to_label)):
            if label not in nodes:
                self.problem(
                    f"{where}: {role}_label '{label}' is not the label of an active node mapping"
                )
            else:
                ends[role] = nodes[label]
        try:
            condition = parse_join_condition(mapping.join_condition)
        except JoinConditionError as exc:
            self.problem(f"{where}: join_condition: {exc}")
            return None
        equalities, filters = condition.equalities, condition.filters

        # Which columns each alias needs, to build a link-only table plan with just those.
        roles = {mapping.from_alias: "from", mapping.to_alias: "to"}
        if mapping.link_alias:
            roles[mapping.link_alias] = "link"
        properties: list[ColumnRef] = []
        for text in mapping.property_columns:
            try:
                properties.append(parse_column(text))
            except JoinConditionError:
                self.problem(f"{where}: property column '{text}' is not an alias.column reference")
        filtered = [f.column for f in filters]
        referenced = [
            *(e.left for e in equalities),
            *(e.right for e in equalities),
            *properties,
            *filtered,
        ]
        for ref in referenced:
            if ref.alias not in roles:
                self.problem(
                    f"{where}: alias '{ref.alias}' in '{ref}' is not bound; bound aliases are "
                    + ", ".join(f"{a} ({r})" for a, r in roles.items())
                )

        if mapping.link_table:
            assert mapping.link_source and mapping.link_alias
            link_found = self.catalog_table(mapping.link_source, mapping.link_table, where)
            link = next(
                (
                    t
                    for t in nodes.values()
                    if (t.source, t.table) == (mapping.link_source, mapping.link_table)
                ),
                None,
            )
            if link is None and link_found is not None:
                needed = {r.column for r in referenced if r.alias == mapping.link_alias}
                source = self.config.source(mapping.link_source)
                assert source is not None
                link = self.table_plan(source, link_found, None, (), needed, where)
            if link is not None:
                ends["link"] = link
        if len(self.problems) > problems_before or "from" not in ends or "to" not in ends:
            return None

        def column(ref: ColumnRef) -> CatalogColumn | None:
            plan = ends[roles[ref.alias]]
            catalog = self.catalogs[plan.source][plan.table]
            found = catalog.column(ref.column)
            if found is None:
                self.problem(
                    f"{where}: column '{ref}' does not exist in {plan.source}.{plan.table}"
                )
                return None
            rule = self.excluded.get((plan.source, plan.table), {}).get(ref.column)
            if rule is not None:
                self.problem(
                    f"{where}: column '{ref}' is excluded by exclusion rule #{rule}; excluded columns never leave PostgreSQL"
                )
                return None
            return found

        pairs: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for equality in equalities:
            left, right = column(equality.left), column(equality.right)
            if left is None or right is None:
                continue
            left_family = join_family(left.typname, left.category)
            if left_family is None or left_family != join_family(right.typname, right.category):
                self.problem(
                    f"{where}: '{equality}' compares {left.typname} with {right.typname}; "
                    "join keys must have compatible types"
                )
                continue
            sides = (roles[equality.left.alias], roles[equality.right.alias])
            order = {"from": 0, "link": 1, "to": 2}
            (a_role, a_ref), (b_role, b_ref) = sorted(
                [(sides[0], equality.left), (sides[1], equality.right)], key=lambda p: order[p[0]]
            )
            a_header = ends[a_role].header_of(a_ref.column)
            b_header = ends[b_role].header_of(b_ref.column)
            if a_header.split(":")[-1] != b_header.split(":")[-1]:
                # Same PostgreSQL family, but a type override or a numeric's declared
                # precision gives the two sides different Neo4j types.
                self.problem(
                    f"{where}: '{equality}' joins {a_header} with {b_header}; join keys must "
                    "become the same Neo4j type (see column_type_overrides)"
                )
                continue
            pairs.setdefault((a_role, b_role), []).append((a_header, b_header))
        props: list[tuple[str, str]] = []
        for ref in properties:
            if column(ref) is not None:
                props.append((roles[ref.alias], ends[roles[ref.alias]].header_of(ref.column)))
        kept: list[tuple[str, str, tuple[str, ...]]] = []
        for row_filter in filters:
            found_filter = column(row_filter.column)
            if found_filter is not None and self.filter_fits(row_filter, found_filter, where):
                role = roles[row_filter.column.alias]
                header = ends[role].header_of(row_filter.column.column)
                kept.append((role, header, row_filter.values))
        names = [header.split(":")[0] for _, header in props]
        if len(set(names)) != len(names):
            self.problem(f"{where}: property columns {', '.join(names)} repeat a name")
        if len(self.problems) > problems_before:
            return None
        if mapping.link_table and not (pairs.get(("from", "link")) and pairs.get(("link", "to"))):
            self.problem(
                f"{where}: with link table {mapping.link_table} the join condition must join "
                f"{mapping.from_alias} to {mapping.link_alias} and {mapping.link_alias} to {mapping.to_alias}"
            )
        if not mapping.link_table and not pairs.get(("from", "to")):
            self.problem(
                f"{where}: the join condition must join {mapping.from_alias} to {mapping.to_alias}"
            )
        if len(self.problems) > problems_before:
            return None
        return RelationshipPlan(
            mapping=mapping,
            from_table=ends["from"],
            to_table=ends["to"],
            link_table=ends.get("link"),
            from_to_keys=tuple(pairs.get(("from", "to"), ())),
            from_link_keys=tuple(pairs.get(("from", "link"), ())),
            link_to_keys=tuple(pairs.get(("link", "to"), ())),
            properties=tuple(props),
            filters=tuple(kept),
        )

    def filter_fits(self, row_filter: Filter, column: CatalogColumn, where: str) -> bool:
        """A filter compares text columns with strings and integer columns with integers."""
        family = join_family(column.typname, column.category)
        fits = (
            family == "text" or column.category == "E"
            if row_filter.kind == "string"
            else family == "integer" and all(v.lstrip("-").isdigit() for v in row_filter.values)
        )
        if not fits:
            self.problem(
                f"{where}: filter '{row_filter}' compares a {column.typname} column with "
                f"{row_filter.kind} literals; filters compare text columns with 'strings' and "
                "integer columns with integers"
            )
        return fits


def _holds_numbers(column: CatalogColumn) -> bool:
    """Whether a column can be written as a double (a scalar numeric, money or integer)."""
    if column.category == "A":
        return False
    family = join_family(column.typname, column.category)
    return column.typname in {"numeric", "money"} or family == "integer"


def build_plan(
    config: ControlConfig,
    catalogs: Mapping[str, Mapping[str, CatalogTable]],
    problems: list[str] | None = None,
) -> Plan:
    """Check ``config`` against ``catalogs`` (source name → tables) and build the plan.

    ``problems`` found earlier (e.g. unreachable sources) are reported together with these.
    Raises :class:`ValidationFailed` if anything is wrong.
    """
    checker = _Checker(config, catalogs)
    checker.problems.extend(problems or [])
    if not config.nodes:
        checker.problem("node_label_mappings has no active row for an active source")
    checker.check_exclusions()
    checker.check_overrides()
    nodes: dict[str, TablePlan] = {}
    for mapping in config.nodes:
        if mapping.label in nodes:
            checker.problem(f"{mapping}: label '{mapping.label}' is already mapped by another row")
            continue
        plan = checker.node_plan(mapping)
        if plan is not None:
            nodes[mapping.label] = plan
    relationships = [checker.relationship_plan(m, nodes) for m in config.relationships]
    if checker.problems:
        raise ValidationFailed(checker.problems)
    tables = list(nodes.values())
    for rel in relationships:
        assert rel is not None
        if rel.link_table is not None and rel.link_table not in tables:
            tables.append(rel.link_table)
    used = {t.source for t in tables}
    return Plan(
        sources=tuple(s for s in config.sources if s.name in used),
        tables=tuple(tables),
        relationships=tuple(r for r in relationships if r is not None),
        schema_changes=tuple(checker.changes),
    )
