"""The local engine's joins against a plain-Python reference of the join rules
(:mod:`bulk360.plan.rules`), on random small tables: NULL keys, repeated keys, dangling keys,
row filters, link tables, self-joins and multi-column keys."""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from bulk360.control.config import RelationshipMapping
from bulk360.engines.local.transform import build_relationship, joined
from bulk360.plan.rules import (
    MappingLedger,
    RelationshipPlan,
    Role,
    SideCounts,
    counted_sides,
    driving_side,
)
from bulk360.plan.tables import ColumnPlan, TablePlan

Row = dict[str, Any]


def table(name: str, label: str | None, columns: list[tuple[str, str]]) -> TablePlan:
    plans = tuple(ColumnPlan(c, "x", kind, sql.SQL("x")) for c, kind in columns)
    keys = ("id",) if label else ()
    return TablePlan("s", "public", name, plans, (), label, keys, True, True, 0)


@dataclass(frozen=True)
class Case:
    """A mapping and the rows of its tables."""

    plan: RelationshipPlan
    rows: dict[str, list[Row]]
    """Table name → rows, by header."""

    def side(self, role: Role) -> list[Row]:
        rows = self.rows[self.plan.table(role).table]
        for header, values in self.plan.filters_of(role):
            rows = [r for r in rows if r[header] is not None and str(r[header]) in values]
        return rows


def _equal(a: Any, b: Any) -> bool:
    return a is not None and b is not None and a == b


def reference(case: Case) -> tuple[Counter[tuple[Any, ...]], MappingLedger, dict[str, int]]:
    """The relationships (start id, end id, properties as text) and the ledger, by the rules."""
    plan = case.plan
    sides = {role: case.side(role) for role in plan.roles}

    def props(rows: dict[Role, Row]) -> tuple[Any, ...]:
        return tuple(
            None if rows[role][h] is None else str(rows[role][h]) for role, h in plan.properties
        )

    def joins(left: Row, right: Row, pairs: tuple[tuple[str, str], ...]) -> bool:
        return all(_equal(left[a], right[b]) for a, b in pairs)

    def keys_set(row: Row, headers: list[str]) -> bool:
        return all(row[h] is not None for h in headers)

    found: Counter[tuple[Any, ...]] = Counter()
    counts: dict[Role, SideCounts] = {}
    if plan.link_table is None:
        pairs = plan.from_to_keys
        for f, t in product(sides["from"], sides["to"]):
            if joins(f, t, pairs):
                found[(str(f[":ID"]), str(t[":ID"]), *props({"from": f, "to": t}))] += 1
        unique = {}
        for role in ("from", "to"):
            headers = plan.referring_keys(role)  # type: ignore[arg-type]
            values = [tuple(r[h] for h in headers) for r in sides[role] if keys_set(r, headers)]  # type: ignore[index]
            unique[role] = len(values) == len(set(values))
        for role in counted_sides(unique["from"], unique["to"]):
            other: Role = "to" if role == "from" else "from"
            referring = [r for r in sides[role] if keys_set(r, plan.referring_keys(role))]
            oriented = pairs if role == "from" else tuple((b, a) for a, b in pairs)
            matched = [r for r in referring if any(joins(r, o, oriented) for o in sides[other])]
            counts[role] = SideCounts(len(sides[role]), len(referring), len(matched))
        driving = driving_side(unique["from"], unique["to"])
    else:
        referring = [r for r in sides["link"] if keys_set(r, plan.referring_keys("link"))]
        matched = 0
        for link in referring:
            related = 0
            for f, t in product(sides["from"], sides["to"]):
                ok = joins(f, link, plan.from_link_keys) and joins(link, t, plan.link_to_keys)
                if ok and joins(f, t, plan.from_to_keys):
                    found[
                        (str(f[":ID"]), str(t[":ID"]), *props({"from": f, "to": t, "link": link}))
                    ] += 1
                    related += 1
            matched += related > 0
        counts["link"] = SideCounts(len(sides["link"]), len(referring), matched)
        driving = "link"
    ledger = MappingLedger.of(driving, counts[driving])
    return found, ledger, {role: c.orphaned for role, c in counts.items()}


KEY = st.sampled_from([None, 1, 2, 3])
TEXT = st.sampled_from([None, "v", "w"])


def drawn_mapping(
    draw: st.DrawFn,
    kind: str,
    width: int,
    a: TablePlan,
    b: TablePlan,
    link: TablePlan | None,
) -> RelationshipPlan:
    """A mapping of ``kind`` between ``a`` and ``b`` (through ``link``) on ``width`` key columns
    ``k0``... (link columns ``a0``..., ``b0``...), with drawn properties and filters (on ``p``,
    ``q`` and ``f``): the follower's test draws its mappings here too."""
    keys = tuple((f"k{i}:long", f"k{i}:long") for i in range(width))
    roles: list[Role] = ["from", "to", *(["link"] if link else [])]
    property_role = draw(st.sampled_from(roles))
    properties: tuple[tuple[Role, str], ...] = (
        ((property_role, "q:string" if property_role == "link" else "p:string"),)
        if draw(st.booleans())
        else ()
    )
    filters: tuple[tuple[Role, str, tuple[str, ...]], ...] = ()
    if draw(st.booleans()):
        values = tuple(
            draw(st.lists(st.sampled_from(["v", "w"]), min_size=1, max_size=2, unique=True))
        )
        filters = ((draw(st.sampled_from(roles)), "f:string", values),)
    mapping = RelationshipMapping(1, "REL", "A", "x", "B", "y", "", None, None, None, ())
    return RelationshipPlan(
        mapping=mapping,
        from_table=a,
        to_table=b,
        link_table=link,
        from_to_keys=(() if link else keys)
        + ((("f:string", "f:string"),) if kind == "link with a from-to term" else ()),
        from_link_keys=tuple((f"k{i}:long", f"a{i}:long") for i in range(width)) if link else (),
        link_to_keys=tuple((f"b{i}:long", f"k{i}:long") for i in range(width)) if link else (),
        properties=properties,
        filters=filters,
    )


@st.composite
def cases(draw: st.DrawFn) -> Case:
    width = draw(st.integers(1, 2))
    kind = draw(st.sampled_from(["direct", "self", "link", "link with a from-to term"]))
    node_columns = [*[(f"k{i}", "long") for i in range(width)], ("f", "string"), ("p", "string")]
    a = table("a", "A", node_columns)
    b = a if kind == "self" else table("b", "B", node_columns)
    link_columns = [
        *[(f"a{i}", "long") for i in range(width)],
        *[(f"b{i}", "long") for i in range(width)],
        ("f", "string"),
        ("q", "string"),
    ]
    link = table("l", None, link_columns) if kind.startswith("link") else None

    def rows(plan: TablePlan, ids: int) -> list[Row]:
        drawn = draw(
            st.lists(
                st.fixed_dictionaries(
                    {c.header: KEY if c.neo4j_type == "long" else TEXT for c in plan.columns}
                ),
                max_size=6,
            )
        )
        if plan.label is None:
            return drawn
        return [{":ID": ids + i, **row} for i, row in enumerate(drawn)]

    plan = drawn_mapping(draw, kind, width, a, b, link)
    found = {"a": rows(a, 0)}
    if b is not a:
        found["b"] = rows(b, 100)
    if link is not None:
        found["l"] = rows(link, 0)
    return Case(plan, found)


def frames(case: Case) -> dict[str, pl.DataFrame]:
    """The frames the readers would hand over: integers as integers, other columns as text."""
    found = {}
    for role in case.plan.roles:
        plan = case.plan.table(role)
        schema = {plan.id_header: pl.Int64} if plan.label else {}
        schema |= {
            c.header: pl.Int64 if c.neo4j_type == "long" else pl.String for c in plan.columns
        }
        found[plan.name] = pl.DataFrame(case.rows[plan.table], schema=schema, orient="row")
    return found


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_the_local_joins_follow_the_rules(case: Case) -> None:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "rel.csv"
        result = build_relationship(case.plan, frames(case), out)
        written = pl.read_csv(out, infer_schema=False)
    relationships, ledger, orphans = reference(case)
    assert Counter(tuple(row) for row in written.rows()) == relationships
    # The same rows from the joins alone, each side's rows given by role (the follower's use).
    sides = {role: frames(case)[case.plan.table(role).name] for role in case.plan.roles}
    alone = joined(case.plan, sides).collect().cast(pl.String)
    assert Counter(tuple(row) for row in alone.rows()) == relationships
    assert result.rows == sum(relationships.values())
    assert result.ledger == ledger
    assert dict(result.orphans) == orphans
    # The ledger balances by construction, and says so.
    assert ledger.balances(result.rows, result.rows)


def test_a_case_by_hand_repeated_null_and_dangling_keys() -> None:
    a = table("a", "A", [("k0", "long"), ("f", "string"), ("p", "string")])
    b = table("b", "B", [("k0", "long"), ("f", "string"), ("p", "string")])
    mapping = RelationshipMapping(1, "REL", "A", "x", "B", "y", "", None, None, None, ())
    plan = RelationshipPlan(mapping, a, b, None, (("k0:long", "k0:long"),), (), (), ())
    case = Case(
        plan,
        {
            # A's keys are unique; B's repeat: B refers to A and drives the mapping.
            "a": [
                {":ID": 0, "k0:long": 1, "f:string": None, "p:string": None},
                {":ID": 1, "k0:long": 2, "f:string": None, "p:string": None},
            ],
            "b": [
                {":ID": 10, "k0:long": 1, "f:string": None, "p:string": None},
                {":ID": 11, "k0:long": 1, "f:string": None, "p:string": None},
                {":ID": 12, "k0:long": None, "f:string": None, "p:string": None},
                {":ID": 13, "k0:long": 9, "f:string": None, "p:string": None},
            ],
        },
    )
    relationships, ledger, orphans = reference(case)
    assert sorted(relationships.elements()) == [("0", "10"), ("0", "11")]
    assert ledger == MappingLedger("to", read=4, rejected=1, orphaned=1, matched=2)
    assert orphans == {"to": 1}
    with tempfile.TemporaryDirectory() as folder:
        result = build_relationship(plan, frames(case), Path(folder) / "rel.csv")
    assert result.ledger == ledger and result.rows == 2
