"""The checks of the control rows against the live catalogs, collected so that one report lists
every problem, each naming the control row it comes from.

:class:`TableChecks` resolves exclusion rules, type overrides and node mappings into table plans;
:class:`RelationshipChecks` resolves relationship mappings (aliases, join conditions, link
tables, properties and filters) into :class:`~bulk360.plan.rules.RelationshipPlan` values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from bulk360.control.config import ControlConfig, NodeMapping, RelationshipMapping, Source
from bulk360.plan.catalog import CatalogColumn, CatalogTable
from bulk360.plan.conditions import (
    ColumnRef,
    Equality,
    Filter,
    JoinConditionError,
    parse_column,
    parse_join_condition,
)
from bulk360.plan.drift import SchemaChange, schema_changes
from bulk360.plan.rules import RelationshipPlan, Role
from bulk360.plan.tables import IDENTIFIER, ColumnPlan, TablePlan
from bulk360.plan.types import OVERRIDE_TYPES, join_family, property_type

__all__ = ["RelationshipChecks", "TableChecks"]


class TableChecks:
    """Exclusion rules, type overrides and node mappings, with the problems they have."""

    def __init__(
        self,
        config: ControlConfig,
        catalogs: Mapping[str, Mapping[str, CatalogTable]],
        problems: list[str],
    ) -> None:
        self.config = config
        self.catalogs = catalogs
        self.problems = problems
        self.excluded: dict[tuple[str, str], dict[str, int]] = {}
        """(source, table) → excluded column → the rule's id."""
        self.changes: list[SchemaChange] = []
        self.overrides = {(o.source, o.table, o.column): o for o in config.overrides}

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def catalog_table(self, source: str, table: str, where: str) -> CatalogTable | None:
        """The catalog entry of ``source``'s ``table``; a problem when there is none."""
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

    def _column_plan(
        self, source: Source, found: CatalogTable, column: CatalogColumn
    ) -> ColumnPlan:
        override = self.overrides.get((source.name, found.name, column.name))
        kind = property_type(
            column.typname,
            column.category,
            column.element,
            column.precision,
            column.scale,
            override.neo4j_type if override else None,
        )
        return ColumnPlan(
            column.name,
            column.typname,
            kind.neo4j_type,
            kind.select(column.name),
            kind.audits,
            kind.expression(column.name),
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
        """The plan of one table: its kept columns (``wanted``: only those), typed."""
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
            columns.append(self._column_plan(source, found, column))
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
        """The table plan of a node mapping, its keys checked, its schema drift noted."""
        where = str(mapping)
        if not IDENTIFIER.match(mapping.label):
            self.problem(f"{where}: label '{mapping.label}' is not a valid identifier")
        group = mapping.group_label
        if group is not None and not IDENTIFIER.match(group):
            self.problem(f"{where}: group label '{group}' is not a valid identifier")
        elif group is not None and any(group == m.label for m in self.config.nodes):
            self.problem(f"{where}: group label '{group}' is the label of another mapping")
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
        self.changes += schema_changes(self.config, source, found, excluded)
        plan = self.table_plan(source, found, mapping.label, tuple(keys), None, where)
        return replace(plan, group_label=group)


def _holds_numbers(column: CatalogColumn) -> bool:
    """Whether a column can be written as a double (a scalar numeric, money or integer)."""
    if column.category == "A":
        return False
    family = join_family(column.typname, column.category)
    return column.typname in {"numeric", "money"} or family == "integer"


@dataclass(frozen=True)
class _Parsed:
    """A relationship mapping's join condition and property columns, parsed."""

    equalities: tuple[Equality, ...]
    filters: tuple[Filter, ...]
    properties: tuple[ColumnRef, ...]

    def references(self) -> list[ColumnRef]:
        return [
            *(e.left for e in self.equalities),
            *(e.right for e in self.equalities),
            *self.properties,
            *(f.column for f in self.filters),
        ]


_ORDER = {"from": 0, "link": 1, "to": 2}


class _Sides:
    """The sides of one mapping (alias → role → table plan) and the columns it names."""

    def __init__(
        self,
        tables: TableChecks,
        roles: Mapping[str, Role],
        ends: Mapping[Role, TablePlan],
        where: str,
    ) -> None:
        self.tables, self.roles, self.ends, self.where = tables, roles, ends, where

    def column(self, ref: ColumnRef) -> CatalogColumn | None:
        """The catalog column ``ref`` names; a problem when it is missing or excluded."""
        plan = self.ends[self.roles[ref.alias]]
        found = self.tables.catalogs[plan.source][plan.table].column(ref.column)
        if found is None:
            self.tables.problem(
                f"{self.where}: column '{ref}' does not exist in {plan.source}.{plan.table}"
            )
            return None
        rule = self.tables.excluded.get((plan.source, plan.table), {}).get(ref.column)
        if rule is not None:
            self.tables.problem(
                f"{self.where}: column '{ref}' is excluded by exclusion rule #{rule}; excluded "
                "columns never leave PostgreSQL"
            )
            return None
        return found

    def key_pairs(self, parsed: _Parsed) -> dict[tuple[Role, Role], list[tuple[str, str]]]:
        """The equalities as header pairs per (side, side), in from, link, to order."""
        pairs: dict[tuple[Role, Role], list[tuple[str, str]]] = {}
        for equality in parsed.equalities:
            left = self.column(equality.left)
            right = self.column(equality.right)
            if left is None or right is None:
                continue
            family = join_family(left.typname, left.category)
            if family is None or family != join_family(right.typname, right.category):
                self.tables.problem(
                    f"{self.where}: '{equality}' compares {left.typname} with {right.typname}; "
                    "join keys must have compatible types"
                )
                continue
            (a_role, a_ref), (b_role, b_ref) = sorted(
                [
                    (self.roles[equality.left.alias], equality.left),
                    (self.roles[equality.right.alias], equality.right),
                ],
                key=lambda pair: _ORDER[pair[0]],
            )
            a_header = self.ends[a_role].header_of(a_ref.column)
            b_header = self.ends[b_role].header_of(b_ref.column)
            if a_header.split(":")[-1] != b_header.split(":")[-1]:
                # Same PostgreSQL family, but a type override or a numeric's declared
                # precision gives the two sides different Neo4j types.
                self.tables.problem(
                    f"{self.where}: '{equality}' joins {a_header} with {b_header}; join keys must "
                    "become the same Neo4j type (see column_type_overrides)"
                )
                continue
            pairs.setdefault((a_role, b_role), []).append((a_header, b_header))
        return pairs

    def filters(self, parsed: _Parsed) -> list[tuple[Role, str, tuple[str, ...]]]:
        kept: list[tuple[Role, str, tuple[str, ...]]] = []
        for row_filter in parsed.filters:
            column = self.column(row_filter.column)
            if column is not None and self._filter_fits(row_filter, column):
                role = self.roles[row_filter.column.alias]
                header = self.ends[role].header_of(row_filter.column.column)
                kept.append((role, header, row_filter.values))
        return kept

    def _filter_fits(self, row_filter: Filter, column: CatalogColumn) -> bool:
        """A filter compares text columns with strings and integer columns with integers."""
        family = join_family(column.typname, column.category)
        fits = (
            family == "text" or column.category == "E"
            if row_filter.kind == "string"
            else family == "integer" and all(v.lstrip("-").isdigit() for v in row_filter.values)
        )
        if not fits:
            self.tables.problem(
                f"{self.where}: filter '{row_filter}' compares a {column.typname} column with "
                f"{row_filter.kind} literals; filters compare text columns with 'strings' and "
                "integer columns with integers"
            )
        return fits

    def properties(self, parsed: _Parsed) -> list[tuple[Role, str]]:
        """(role, header) of each property column that exists and is not excluded."""
        return [
            (self.roles[ref.alias], self.ends[self.roles[ref.alias]].header_of(ref.column))
            for ref in parsed.properties
            if self.column(ref) is not None
        ]


class RelationshipChecks:
    """Relationship mappings resolved against the node plans, with the problems they have."""

    def __init__(self, tables: TableChecks, nodes: Mapping[str, TablePlan]) -> None:
        self.tables = tables
        self.nodes = nodes

    def problem(self, text: str) -> None:
        self.tables.problem(text)

    def plan(self, mapping: RelationshipMapping) -> RelationshipPlan | None:
        """The plan of one mapping, or None after adding its problems."""
        where = str(mapping)
        before = len(self.tables.problems)
        roles = self._roles(mapping, where)
        if roles is None:
            return None
        ends = self._node_ends(mapping, where)
        parsed = self._parse(mapping, where)
        if parsed is None:
            return None
        for ref in parsed.references():
            if ref.alias not in roles:
                self.problem(
                    f"{where}: alias '{ref.alias}' in '{ref}' is not bound; bound aliases are "
                    + ", ".join(f"{a} ({r})" for a, r in roles.items())
                )
        self._link_end(mapping, parsed, ends, where)
        if len(self.tables.problems) > before or "from" not in ends or "to" not in ends:
            return None
        sides = _Sides(self.tables, roles, ends, where)
        pairs = sides.key_pairs(parsed)
        props = sides.properties(parsed)
        kept = sides.filters(parsed)
        names = [header.split(":")[0] for _, header in props]
        if len(set(names)) != len(names):
            self.problem(f"{where}: property columns {', '.join(names)} repeat a name")
        if len(self.tables.problems) == before:
            self._check_joined(mapping, pairs, where)
        if len(self.tables.problems) > before:
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

    def _roles(self, mapping: RelationshipMapping, where: str) -> dict[str, Role] | None:
        """Alias → role; None when the aliases are ambiguous."""
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
        roles: dict[str, Role] = {mapping.from_alias: "from", mapping.to_alias: "to"}
        if mapping.link_alias:
            roles[mapping.link_alias] = "link"
        return roles

    def _parse(self, mapping: RelationshipMapping, where: str) -> _Parsed | None:
        try:
            condition = parse_join_condition(mapping.join_condition)
        except JoinConditionError as exc:
            self.problem(f"{where}: join_condition: {exc}")
            return None
        properties: list[ColumnRef] = []
        for text in mapping.property_columns:
            try:
                properties.append(parse_column(text))
            except JoinConditionError:
                self.problem(f"{where}: property column '{text}' is not an alias.column reference")
        return _Parsed(condition.equalities, condition.filters, tuple(properties))

    def _node_ends(self, mapping: RelationshipMapping, where: str) -> dict[Role, TablePlan]:
        """The node table plan of the from and the to side."""
        ends: dict[Role, TablePlan] = {}
        for role, label in (("from", mapping.from_label), ("to", mapping.to_label)):
            if label not in self.nodes:
                self.problem(
                    f"{where}: {role}_label '{label}' is not the label of an active node mapping"
                )
            else:
                ends[role] = self.nodes[label]  # type: ignore[index]
        return ends

    def _link_end(
        self,
        mapping: RelationshipMapping,
        parsed: _Parsed,
        ends: dict[Role, TablePlan],
        where: str,
    ) -> None:
        """The link side's plan, when there is one: a link table not mapped as nodes is read
        only for the columns the mapping names."""
        if not mapping.link_table:
            return
        assert mapping.link_source and mapping.link_alias
        found = self.tables.catalog_table(mapping.link_source, mapping.link_table, where)
        link = next(
            (
                t
                for t in self.nodes.values()
                if (t.source, t.table) == (mapping.link_source, mapping.link_table)
            ),
            None,
        )
        if link is None and found is not None:
            needed = {r.column for r in parsed.references() if r.alias == mapping.link_alias}
            source = self.tables.config.source(mapping.link_source)
            assert source is not None
            link = self.tables.table_plan(source, found, None, (), needed, where)
        if link is not None:
            ends["link"] = link

    def _check_joined(
        self,
        mapping: RelationshipMapping,
        pairs: Mapping[tuple[Role, Role], list[tuple[str, str]]],
        where: str,
    ) -> None:
        """The condition joins the sides it must: from to to, or from to link to to."""
        if mapping.link_table and not (pairs.get(("from", "link")) and pairs.get(("link", "to"))):
            self.problem(
                f"{where}: with link table {mapping.link_table} the join condition must join "
                f"{mapping.from_alias} to {mapping.link_alias} and {mapping.link_alias} to "
                f"{mapping.to_alias}"
            )
        if not mapping.link_table and not pairs.get(("from", "to")):
            self.problem(
                f"{where}: the join condition must join {mapping.from_alias} to {mapping.to_alias}"
            )
