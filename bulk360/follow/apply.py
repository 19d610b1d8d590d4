"""A window of one source's changes, applied to the graph and to follow's state.

For each table the window touched: its rows' values formatted exactly as the readers format them
(by the source itself, :class:`Formatter`), and the table's state after the window. Then:

* **nodes**: rows upserted (``MERGE`` on the key, every property set, a NULL one removed; a value
  TOAST left unsent is left as it is), rows deleted or whose key changed (``DETACH DELETE``);
* **relationships**, per mapping whose tables changed, by the local engine's own joins
  (:func:`bulk360.engines.local.transform.joined`): the pairs of nodes the changed rows related
  before the window (their old values against the state before) and after it (their new values
  against the state after) are *touched*, and each touched pair gets exactly the relationships
  the state after the window gives it (sync's pair replacement). So a moved foreign key moves its
  edge, a changed e-mail re-links tickets of another database, a link row inserted or deleted
  adds or removes its edge with its properties, a row whose filter column changed changes type,
  and a node deleted and inserted again gets its edges back.

The writes go nodes, relationships, deleted nodes; each is idempotent, so a window applied twice
(after a crash, before its checkpoint) changes nothing more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import psycopg
from psycopg import sql

from bulk360.engines.local.transform import joined
from bulk360.follow.changes import TableChanges
from bulk360.follow.pgoutput import UNCHANGED
from bulk360.load.cypher import delete_nodes_query, merge_nodes_query, replace_pairs_query
from bulk360.load.writer import Batch, DriverWriter, batches
from bulk360.package.files import NodeFile, RelationshipFile, node_rows
from bulk360.plan import ColumnPlan, Plan, RelationshipPlan, TablePlan
from bulk360.plan.rules import Role

__all__ = [
    "Applied",
    "Formatter",
    "Updated",
    "apply_window",
    "identity_header",
    "node_file",
    "state_schema",
]

UNSENT = "@unsent"
"""Per formatted row, the columns whose value the stream did not send (TOAST, unchanged)."""
_START, _END = ":START_ID", ":END_ID"


def identity_header(column: str) -> str:
    """How a replica identity column is named in a table's state (PostgreSQL's text)."""
    return f"@{column}"


def _name(header: str) -> str:
    return header.rsplit(":", 1)[0]


def state_schema(table: TablePlan, identity: Sequence[str], read: Sequence[str]) -> dict[str, Any]:
    """The columns of a table's state and their types: its identity as text, a node table's
    follow id and key, and the headers ``read`` (``:long`` as integers, the rest as text)."""
    schema: dict[str, Any] = dict.fromkeys(map(identity_header, identity), pl.String)
    if table.label:
        schema[table.id_header] = pl.Int64
        read = [*(table.header_of(k) for k in table.key_columns), *read]
    for header in dict.fromkeys(read):
        if header != table.id_header:
            schema[header] = pl.Int64 if header.endswith(":long") else pl.String
    return schema


class Formatter:
    """Formats a table's values as its reader does, in the source: each column's text (as the
    stream sent it) cast to the column's type, then the reader's SELECT expression applied."""

    def __init__(self, table: TablePlan, identity: Sequence[str]) -> None:
        self.table = table
        self.identity = list(identity)
        types = dict(table.catalog_columns)
        self.columns = list(dict.fromkeys([*identity, *(c.name for c in table.columns)]))
        inner = [
            sql.SQL("CAST(u.{} AS {}) AS {}").format(
                sql.Identifier(f"c{i}"), sql.SQL(types[name]), sql.Identifier(name)
            )
            for i, name in enumerate(self.columns)
        ]
        # The readers' expressions, then every value as the text of its type's output function
        # (concat, as COPY writes it), so that nothing is parsed on the way back.
        formatted = [
            sql.SQL("{} AS {}").format(sql.Identifier(name), sql.Identifier(f"f{i}"))
            for i, name in enumerate(identity)
        ] + [
            sql.SQL("{} AS {}").format(_expression(c), sql.Identifier(f"f{len(identity) + i}"))
            for i, c in enumerate(table.columns)
        ]
        width = len(identity) + len(table.columns)
        texts = [
            sql.SQL("CASE WHEN {f} IS NULL THEN NULL ELSE concat({f}) END").format(
                f=sql.Identifier(f"f{i}")
            )
            for i in range(width)
        ]
        names = sql.SQL(", ").join(sql.Identifier(f"c{i}") for i in range(len(self.columns)))
        arrays = sql.SQL(", ").join(sql.SQL("%s::text[]") for _ in self.columns)
        self.query = sql.SQL(
            "SELECT {texts} FROM (SELECT {formatted}, r.ord FROM (SELECT {inner}, u.ord FROM"
            " unnest({arrays}) WITH ORDINALITY AS u({names}, ord)) AS r) AS f ORDER BY f.ord"
        ).format(
            texts=sql.SQL(", ").join(texts),
            formatted=sql.SQL(", ").join(formatted),
            inner=sql.SQL(", ").join(inner),
            arrays=arrays,
            names=names,
        )
        self.headers = [identity_header(c) for c in identity] + [c.header for c in table.columns]

    def format(
        self, conn: psycopg.Connection[Any], rows: Sequence[Mapping[str, Any]]
    ) -> pl.DataFrame:
        """``rows`` (column → the stream's text, None or UNCHANGED) as the reader's text, by
        header, with :data:`UNSENT`."""
        if not rows:
            return pl.DataFrame(
                schema={**dict.fromkeys(self.headers, pl.String), UNSENT: pl.List(pl.String)}
            )
        values = [[_sent(row.get(c)) for row in rows] for c in self.columns]
        found = conn.execute(self.query, values).fetchall()
        frame = pl.DataFrame(found, schema=dict.fromkeys(self.headers, pl.String), orient="row")
        unsent = [[c for c in self.columns if row.get(c) is UNCHANGED] for row in rows]
        return frame.with_columns(pl.Series(UNSENT, unsent, dtype=pl.List(pl.String)))


def _expression(column: ColumnPlan) -> sql.Composable:
    assert column.expression is not None, "a plan's columns carry their expressions"
    return column.expression


def _sent(value: Any) -> str | None:
    return None if value is UNCHANGED else value


@dataclass
class Applied:
    """What windows changed, per label and mapping."""

    nodes: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per label: inserted, updated, deleted."""
    relationships: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per mapping: inserted (added), deleted (removed)."""

    def add(self, other: Applied) -> None:
        for mine, theirs in ((self.nodes, other.nodes), (self.relationships, other.relationships)):
            for name, counts in theirs.items():
                into = mine.setdefault(name, {})
                for kind, count in counts.items():
                    into[kind] = into.get(kind, 0) + count

    def counts(self) -> dict[str, dict[str, int]]:
        """Per label and mapping: inserted, updated, deleted (the ledger's change columns)."""
        found = {k: {"inserted": 0, "updated": 0, "deleted": 0, **v} for k, v in self.nodes.items()}
        return found | {
            k: {"inserted": 0, "updated": 0, "deleted": 0, **v}
            for k, v in self.relationships.items()
        }


@dataclass
class _Table:
    """One changed table: its state before and after the window, and what changed."""

    plan: TablePlan
    before: pl.DataFrame
    after: pl.DataFrame
    gone: pl.DataFrame
    """Rows of ``before`` that the window deleted or replaced."""
    new: pl.DataFrame
    """Rows of ``after`` that the window upserted."""
    formatted: pl.DataFrame
    """The upserted rows as the readers format them (text, by header)."""


def _next_state(
    plan: TablePlan,
    before: pl.DataFrame,
    change: TableChanges,
    formatted: pl.DataFrame,
    next_ids: dict[str, int],
) -> _Table:
    identity = [identity_header(c) for c in change.identity]
    schema = dict(before.schema)
    touched = pl.DataFrame(
        [list(k) for k in [*change.upserts, *change.deletes]],
        schema=dict.fromkeys(identity, pl.String),
        orient="row",
    )
    gone = (
        before
        if change.truncated
        else before.join(touched, on=identity, how="semi", nulls_equal=True)
    )
    kept = before.join(gone.select(identity), on=identity, how="anti", nulls_equal=True)
    columns = [c for c in schema if c in formatted.columns]
    rows = formatted.select(*[pl.col(c).cast(schema[c]) for c in columns], UNSENT).join(
        gone, on=identity, how="left", suffix="@before", nulls_equal=True
    )
    # A value the stream did not send (TOAST, unchanged) is the state's own.
    rows = rows.with_columns(
        [
            pl.when(pl.col(UNSENT).list.contains(_name(c)))
            .then(pl.col(f"{c}@before"))
            .otherwise(pl.col(c))
            .alias(c)
            for c in columns
            if f"{c}@before" in rows.columns and not c.startswith("@")
        ]
    ).select(columns)
    if plan.label:
        keys = [plan.header_of(k) for k in plan.key_columns]
        # The ids the upserted keys already have: the state filtered by the window's few keys
        # first, so no join builds a table of the whole state.
        known = (
            before.select(*keys, plan.id_header)
            .join(rows.select(keys).unique(), on=keys, how="semi", nulls_equal=True)
            .unique(keys)
        )
        rows = rows.join(known, on=keys, how="left", nulls_equal=True)
        missing = rows.filter(pl.col(plan.id_header).is_null()).height
        first = next_ids.get(plan.label, 0)
        next_ids[plan.label] = first + missing
        fresh = pl.int_range(first, first + missing, dtype=pl.Int64)
        rows = pl.concat(
            [
                rows.filter(pl.col(plan.id_header).is_not_null()),
                rows.filter(pl.col(plan.id_header).is_null()).with_columns(
                    fresh.alias(plan.id_header)
                ),
            ]
        )
    new = rows.select(list(schema))
    return _Table(plan, before, pl.concat([kept, new]), gone, new, formatted)


def node_file(table: TablePlan, headers: Sequence[str] | None = None) -> NodeFile:
    assert table.label is not None
    return NodeFile(
        table.label,
        table.table,  # type: ignore[arg-type]
        headers or table.headers(),
        table.key_columns,
        group_label=table.group_label,
    )


def _node_writes(
    table: _Table, size: int, applied: Applied
) -> tuple[list[Iterator[Batch]], Iterator[Batch]]:
    """A node table's upserts (one query per set of unsent columns) and deletes."""
    plan = table.plan
    assert plan.label is not None
    keys = [plan.header_of(k) for k in plan.key_columns]
    upserts: list[Iterator[Batch]] = []
    for (unsent,), group in table.formatted.group_by(UNSENT, maintain_order=True):
        left = set(unsent or [])
        node = node_file(plan, [h for h in plan.headers() if _name(h) not in left])
        rows = node_rows(node, group.lazy())
        upserts.append(batches(rows, size, "node", plan.label, merge_nodes_query(node)))
    inserted = table.new.join(_among(table.before, table.new, keys), on=keys, how="anti").height
    gone = table.gone.select(keys)
    deleted = gone.join(_among(table.after, gone, keys), on=keys, how="anti").unique()
    counts = applied.nodes.setdefault(plan.label, {"inserted": 0, "updated": 0, "deleted": 0})
    counts["inserted"] += inserted
    counts["updated"] += table.new.height - inserted
    counts["deleted"] += deleted.height
    node = node_file(plan, [plan.id_header, *keys])
    values = deleted.select(
        [k.parse(pl.col(k.column).cast(pl.String)).alias(k.name) for k in node.key_fields()]
    )
    return upserts, batches(values, size, "deleted", plan.label, delete_nodes_query(node))


def _among(state: pl.DataFrame, few: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """The keys of ``few`` that ``state`` holds (the state probed, never hashed whole)."""
    return state.select(keys).join(few.select(keys).unique(), on=keys, how="semi").unique()


def _relationship_file(rel: RelationshipPlan) -> RelationshipFile:
    start, end = node_file(rel.from_table), node_file(rel.to_table)
    return RelationshipFile(
        rel.name, rel.relationship_type, start, end, start.path, rel.file_headers()
    )


def _touched(
    rel: RelationshipPlan, tables: Mapping[str, _Table], state: Mapping[str, pl.DataFrame]
) -> tuple[pl.DataFrame, dict[Role, pl.DataFrame], dict[Role, pl.DataFrame]] | None:
    """The pairs of nodes whose relationships of ``rel`` the window may change (``:START_ID``,
    ``:END_ID``), with each side's state before and after; None when it changed none."""
    changed = [r for r in rel.roles if rel.table(r).name in tables]
    if not changed:
        return None

    def side(role: Role, when: str) -> pl.DataFrame:
        name = rel.table(role).name
        return getattr(tables[name], when) if name in tables else state[name]

    before = {r: side(r, "before") for r in rel.roles}
    after = {r: side(r, "after") for r in rel.roles}
    pairs = []
    for role in changed:
        table = tables[rel.table(role).name]
        for sides, rows in ((before, table.gone), (after, table.new)):
            found = joined(rel, {**sides, role: rows}).select(_START, _END)
            pairs.append(found.collect())
    return pl.concat(pairs).unique(), before, after


def _relationships_of(
    rel: RelationshipPlan, touched: pl.DataFrame, sides: Mapping[Role, pl.DataFrame]
) -> pl.DataFrame:
    """The relationships of the touched pairs, as ``sides`` give them."""
    limited = dict(sides)
    ends: tuple[tuple[Role, str], ...] = (("from", _START), ("to", _END))
    for role, column in ends:
        id_header = rel.table(role).id_header
        present = touched.select(pl.col(column).alias(id_header)).unique()
        limited[role] = sides[role].join(present, on=id_header, how="semi")
    return joined(rel, limited).join(touched.lazy(), on=[_START, _END], how="semi").collect()


def _replacements(
    rel: RelationshipPlan,
    tables: Mapping[str, _Table],
    state: Mapping[str, pl.DataFrame],
    applied: Applied,
) -> pl.DataFrame | None:
    """Rows of sync's pair replacement for one mapping (start keys, end keys, the list of the
    pair's relationships' properties), with what they add and remove counted."""
    found = _touched(rel, tables, state)
    if found is None or found[0].height == 0:
        return None
    touched, before, after = found
    old, new = _relationships_of(rel, touched, before), _relationships_of(rel, touched, after)
    counted = [_START, _END, *(h for _, h in rel.properties)]
    both = (
        old.group_by(counted)
        .len("old")
        .join(
            new.group_by(counted).len("new"),
            on=counted,
            how="full",
            coalesce=True,
            nulls_equal=True,
        )
        .fill_null(0)
    )
    counts = applied.relationships.setdefault(rel.name, {"inserted": 0, "deleted": 0})
    change = both["new"].cast(pl.Int64) - both["old"].cast(pl.Int64)
    counts["inserted"] += int(change.clip(lower_bound=0).sum())
    counts["deleted"] += int((-change).clip(lower_bound=0).sum())
    # Only the pairs whose relationships differ are replaced (a changed property that no
    # mapping reads leaves its edges alone).
    differing = both.filter(change != 0).select(_START, _END).unique()
    if differing.height == 0:
        return None
    return _pair_rows(rel, differing, new, after)


def _pair_rows(
    rel: RelationshipPlan,
    touched: pl.DataFrame,
    new: pl.DataFrame,
    after: Mapping[Role, pl.DataFrame],
) -> pl.DataFrame:
    """Each touched pair whose two nodes exist after the window: their typed key values and
    the list of the pair's relationships (their typed properties ``p0``, ``p1``...)."""
    file = _relationship_file(rel)

    def keys(role: Role, id_column: str, prefix: str) -> pl.DataFrame:
        table = rel.table(role)
        headers = [table.header_of(k) for k in table.key_columns]
        return after[role].select(
            pl.col(table.id_header).alias(id_column),
            *[pl.col(h).alias(f"{prefix}{i}") for i, h in enumerate(headers)],
        )

    values = [
        f.parse(pl.col(f.column).cast(pl.String)).alias(f"p{i}") for i, f in enumerate(file.fields)
    ]
    grouped = new.group_by(_START, _END).agg(pl.struct(values or [pl.lit(0).alias("n")]).alias("p"))
    everything = (
        touched.join(keys("from", _START, "s"), on=_START)
        .join(keys("to", _END, "e"), on=_END)
        .join(grouped, on=[_START, _END], how="left")
    )
    typed = [
        *[
            k.parse(pl.col(f"s{i}").cast(pl.String)).alias(f"s{i}")
            for i, k in enumerate(file.start.key_fields())
        ],
        *[
            k.parse(pl.col(f"e{i}").cast(pl.String)).alias(f"e{i}")
            for i, k in enumerate(file.end.key_fields())
        ],
    ]
    # A pair left without relationships has no list: UNWIND of null creates none.
    return everything.select(*typed, "p")


@dataclass(frozen=True)
class Updated:
    """A changed table's state after a window, and what the window changed of it."""

    after: pl.DataFrame
    new: pl.DataFrame
    """Its rows the window upserted."""
    removed: pl.DataFrame
    """The identities of its rows the window removed."""


def apply_window(
    plan: Plan,
    state: Mapping[str, pl.DataFrame],
    next_ids: dict[str, int],
    changes: Mapping[str, TableChanges],
    formatted: Mapping[str, pl.DataFrame],
    writer: DriverWriter,
    progress: Callable[[str, int], None],
) -> tuple[dict[str, Updated], Applied]:
    """Write a window's net changes into the graph; each changed table's new state."""
    by_name = {t.name: t for t in plan.tables}
    tables = {
        name: _next_state(by_name[name], state[name], change, formatted[name], next_ids)
        for name, change in changes.items()
    }
    applied = Applied()
    size = writer.batch_size
    upserts: list[Iterator[Batch]] = []
    deletes: list[Iterator[Batch]] = []
    for table in tables.values():
        if table.plan.label:
            node_upserts, node_deletes = _node_writes(table, size, applied)
            upserts += node_upserts
            deletes.append(node_deletes)
    replacements: list[tuple[pl.DataFrame, RelationshipFile]] = []
    for rel in plan.relationships:
        rows = _replacements(rel, tables, state, applied)
        if rows is not None and rows.height:
            replacements.append((rows, _relationship_file(rel)))
    writer.write_batches(upserts, progress)
    for rows, file in replacements:
        writer.write_pairs(rows, file, "replaced", replace_pairs_query(file), progress)
    writer.write_batches(deletes, progress)
    updated = {}
    for name, table in tables.items():
        identity = [identity_header(c) for c in changes[name].identity]
        removed = table.gone.select(identity).join(
            table.new.select(identity), on=identity, how="anti", nulls_equal=True
        )
        updated[name] = Updated(table.after, table.new, removed)
    return updated, applied
