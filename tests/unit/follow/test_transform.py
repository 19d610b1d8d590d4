"""A follow window against a plain-Python reference: random tables in a real state store, random
changes to them, and the window's change set applied to a model of the graph must give the graph
a fresh build of the changed tables gives (the join rules by the reference of
``tests/unit/engines/local/test_joins.py``), and the state written must be the new rows'.

Direct mappings, self-joins and link tables, one- and two-column join keys, NULL and repeated
join keys, row filters, relationship properties, a TRUNCATE, rows deleted, inserted and updated
(in their join columns or in a column no mapping reads)."""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from bulk360.follow.changes import Change, TableChanges
from bulk360.follow.store import Checkpoint, Position, StateStore
from bulk360.follow.transform import UNSENT, stored_tables, transform_window
from bulk360.load.changeset import ChangeSet
from bulk360.plan import Plan
from bulk360.plan.rules import RelationshipPlan
from bulk360.plan.tables import ColumnPlan, TablePlan
from tests.unit.engines.local.test_joins import Case, drawn_mapping, reference

Row = dict[str, Any]
KEY = st.sampled_from([None, 1, 2, 3])
TEXT = st.sampled_from([None, "v", "w"])


def table(name: str, label: str | None, columns: list[tuple[str, str]], key: str) -> TablePlan:
    plans = tuple(ColumnPlan(c, "x", kind, sql.SQL("x")) for c, kind in columns)
    keys = (key,) if label else ()
    return TablePlan("s", "public", name, plans, (), label, keys, True, True, 0)


@dataclass(frozen=True)
class World:
    plan: Plan
    rel: RelationshipPlan
    identity: dict[str, str]
    """Table name → its identity column."""
    old: dict[str, list[Row]]
    new: dict[str, list[Row]]
    """Table name → rows by header (``id:long`` ... without ``:ID``)."""
    changes: dict[str, list[Change]]


@st.composite
def worlds(draw: st.DrawFn) -> World:
    width = draw(st.integers(1, 2))
    kind = draw(st.sampled_from(["direct", "self", "link", "link with a from-to term"]))
    node_columns = [
        ("id", "long"),
        *[(f"k{i}", "long") for i in range(width)],
        ("f", "string"),
        ("p", "string"),
        ("other", "string"),  # read by no mapping
    ]
    a = table("a", "A", node_columns, "id")
    b = a if kind == "self" else table("b", "B", node_columns, "id")
    link = None
    if kind.startswith("link"):
        link_columns = [
            ("rid", "long"),
            *[(f"a{i}", "long") for i in range(width)],
            *[(f"b{i}", "long") for i in range(width)],
            ("f", "string"),
            ("q", "string"),
        ]
        link = table("l", None, link_columns, "rid")
    rel = drawn_mapping(draw, kind, width, a, b, link)
    tables = [t for t in (a, b, link) if t is not None]
    tables = list({t.name: t for t in tables}.values())
    identity = {t.name: ("id" if t.label else "rid") for t in tables}

    def row(t: TablePlan, ident: int) -> Row:
        values = {
            c.header: draw(KEY if c.neo4j_type == "long" else TEXT)
            for c in t.columns
            if c.name != identity[t.name]
        }
        return {f"{identity[t.name]}:long": ident, **values}

    old: dict[str, list[Row]] = {}
    new: dict[str, list[Row]] = {}
    changes: dict[str, list[Change]] = {}
    for t in tables:
        idents = draw(st.lists(st.integers(1, 6), unique=True, max_size=5))
        old[t.name] = [row(t, i) for i in idents]
        current = {r[f"{identity[t.name]}:long"]: r for r in old[t.name]}
        found: list[Change] = []
        if draw(st.integers(0, 9)) == 0:
            found.append(Change(t.name, "truncate"))
            current = {}
        for _ in range(draw(st.integers(0, 4))):
            ident = draw(st.integers(1, 8))
            if ident in current and draw(st.booleans()):
                found.append(
                    Change(t.name, "delete", old=_text({f"{identity[t.name]}:long": ident}))
                )
                del current[ident]
                continue
            if ident in current and draw(st.booleans()):  # only a column no mapping reads
                changed = {**current[ident], **({"other:string": "changed"} if t.label else {})}
            else:
                changed = row(t, ident)
            kind_of = "update" if ident in current else "insert"
            found.append(Change(t.name, kind_of, new=_text(changed)))
            current[ident] = changed
        new[t.name] = list(current.values())
        changes[t.name] = found
    plan = Plan((), tuple(tables), (rel,))
    return World(plan, rel, identity, old, new, changes)


def _text(row: Row) -> dict[str, str | None]:
    """A row as the stream sends it: column → text."""
    return {h.rsplit(":", 1)[0]: None if v is None else str(v) for h, v in row.items()}


def _state(world: World, name: str, rows: list[Row]) -> pl.DataFrame:
    ident = world.identity[name]
    return pl.DataFrame(
        [{f"@{ident}": str(r[f"{ident}:long"]), **r} for r in rows],
        schema={
            f"@{ident}": pl.String,
            **{h: pl.Int64 if h.endswith(":long") else pl.String for h in _headers(world, name)},
        },
        orient="row",
    )


def _headers(world: World, name: str) -> list[str]:
    t = next(t for t in world.plan.tables if t.name == name)
    return [c.header for c in t.columns]


def graph_of(world: World, rows: dict[str, list[Row]]) -> tuple[dict[Any, Row], Counter[Any]]:
    """Nodes by (label, key) with their properties, and relationships by (start key, end key,
    properties), as a fresh build of ``rows`` gives them (keys as a node's id)."""
    nodes = {}
    for t in world.plan.tables:
        if t.label:
            for r in rows[t.name]:
                nodes[(t.label, r["id:long"])] = {h.rsplit(":", 1)[0]: v for h, v in r.items()}
    by_table = {}
    for t in world.plan.tables:
        by_table[t.table] = [
            {**r, ":ID": r["id:long"]} if t.label else dict(r) for r in rows[t.name]
        ]
    found, _, _ = reference(Case(world.rel, by_table))
    return nodes, Counter({(int(s), int(e), *rest): n for (s, e, *rest), n in found.items()})


def apply_model(
    world: World, changes: ChangeSet, nodes: dict[Any, Row], edges: Counter[Any]
) -> None:
    """What :func:`bulk360.load.changeset.write_change_set` does to a graph, in its order."""
    for d in changes.nodes.values():
        for _, upserted in d.upserts:
            for r in upserted.iter_rows(named=True):
                nodes[(d.label, r["id"])] = dict(r)
    for p in changes.pairs.values():
        for r in p.replace.iter_rows(named=True):
            start, end = r["s0"], r["e0"]
            for key in [k for k in edges if k[0] == start and k[1] == end]:
                del edges[key]
            for props in r["p"]:
                values = tuple(v for k, v in props.items() if k != "n")
                edges[(start, end, *values)] += 1
    for d in changes.nodes.values():
        for (key,) in d.deletes.iter_rows():
            nodes.pop((d.label, key), None)
            start_label, end_label = world.rel.from_table.label, world.rel.to_table.label
            for k in list(edges):
                if (d.label == start_label and k[0] == key) or (
                    d.label == end_label and k[1] == key
                ):
                    del edges[k]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_a_window_gives_the_graph_a_fresh_build_gives(world: World) -> None:
    identities = {name: (ident,) for name, ident in world.identity.items()}
    tables = stored_tables(world.plan, identities)
    with tempfile.TemporaryDirectory() as folder:
        with StateStore.create(Path(folder), "plan", tables) as store:
            for t in world.plan.tables:
                state = _state(world, t.name, world.old[t.name])
                if t.label:
                    state = state.with_row_index(":ID").with_columns(pl.col(":ID").cast(pl.Int64))
                    store.next_ids[t.label] = state.height
                store.fill(t.name, [state.select(list(store.tables[t.name].schema))])
            store.positions["s"] = Position("0/0")
        window = {}
        formatted = {}
        for name, found in world.changes.items():
            if not found:
                continue
            changes = TableChanges(name, identities[name])
            for change in found:
                changes.add(change)
            window[name] = changes
            upserted = [
                {f"@{world.identity[name]}": v[world.identity[name]], **_by_header(world, name, v)}
                for v in changes.upserts.values()
            ]
            headers = [f"@{world.identity[name]}", *_headers(world, name)]
            formatted[name] = pl.DataFrame(
                upserted, schema=dict.fromkeys(headers, pl.String), orient="row"
            ).with_columns(pl.lit([], dtype=pl.List(pl.String)).alias(UNSENT))
        transformed = transform_window(world.plan, store, window, formatted)
        nodes, edges = graph_of(world, world.old)
        apply_model(world, transformed.changes, nodes, edges)
        want_nodes, want_edges = graph_of(world, world.new)
        assert nodes == {k: {c: v for c, v in r.items()} for k, r in want_nodes.items()}
        assert edges == want_edges
        # The state written holds the new rows, each key with one id of its own.
        store.checkpoint(
            transformed.writes, transformed.next_ids, Checkpoint("s", "0/0", "0/1", 1, 1), None
        )
        for t in world.plan.tables:
            kept = store.all_rows(t.name)
            columns = [c for c in kept.columns if c != ":ID"]
            want = _state(world, t.name, world.new[t.name]).select(columns).sort(columns[0])
            got = kept.select(columns).sort(columns[0])
            assert got.equals(want), (got, want)
            if t.label:
                assert kept[":ID"].n_unique() == kept.height
        store.close()


def _by_header(world: World, name: str, values: dict[str, Any]) -> dict[str, Any]:
    return {h: values.get(h.rsplit(":", 1)[0]) for h in _headers(world, name)}
