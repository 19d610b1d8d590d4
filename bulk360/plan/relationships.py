"""The checks of relationship mappings (aliases, join conditions, link tables, properties and
filters) against the node plans (:class:`RelationshipChecks`), resolved into
:class:`~bulk360.plan.rules.RelationshipPlan` values; each problem names its mapping row."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bulk360.control.config import RelationshipMapping
from bulk360.plan.catalog import CatalogColumn
from bulk360.plan.conditions import (
    ColumnRef,
    Equality,
    Filter,
    JoinConditionError,
    parse_column,
    parse_join_condition,
)
from bulk360.plan.nodes import TableChecks
from bulk360.plan.rules import RelationshipPlan, Role
from bulk360.plan.tables import IDENTIFIER, TablePlan
from bulk360.plan.types import join_family

__all__ = ["RelationshipChecks"]


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
