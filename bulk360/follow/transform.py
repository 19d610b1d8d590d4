"""Transform: a window of one source's changes, against follow's state, as a change set
(:mod:`bulk360.load.changeset`) and the state's rows to write.

For each table the window touched: its rows' values formatted exactly as the readers format them
(by the source itself, :class:`Formatter`), the state's rows of the identities it touched (read
by identity from the store), and its rows after the window. Then:

* **nodes**: rows upserted (``MERGE`` on the key, every property set, a NULL one removed; a value
  TOAST left unsent is left as it is), rows deleted or whose key changed (``DETACH DELETE``);
* **relationships**, per mapping whose tables changed, by the local engine's own joins
  (:func:`bulk360.engines.local.transform.joined`) on the few rows read from the store: the
  pairs of nodes the changed rows related before the window (their old values against the state
  before) and after it (their new values against the state after) are *touched*, and each
  touched pair gets exactly the relationships the state after the window gives it. So a moved
  foreign key moves its edge, a changed e-mail re-links tickets of another database, a link row
  inserted or deleted adds or removes its edge with its properties, a row whose filter column
  changed changes type, and a node deleted and inserted again gets its edges back. A row whose
  values that a mapping reads did not change (``position_seconds`` of a play event) touches no
  pair of it.

The rows read are those of the changed identities, their join partners (looked up by the store's
indexes on every join column) and the other ends of the touched pairs: the size of the change,
not of the tables (a ``TRUNCATE`` reads its table's rows, all of which it removes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import psycopg
from psycopg import sql

from bulk360.engines.local.transform import joined
from bulk360.follow.changes import TableChanges
from bulk360.follow.pgoutput import UNCHANGED
from bulk360.follow.store import StateStore, StoredTable, TableWrite
from bulk360.load.changeset import (
    ChangeSet,
    NodeChanges,
    PairChanges,
    differing_pairs,
    pair_columns,
    replacement_rows,
)
from bulk360.package.files import NodeFile, RelationshipFile, node_rows
from bulk360.plan import ColumnPlan, Plan, RelationshipPlan, TablePlan
from bulk360.plan.rules import Role

__all__ = [
    "UNSENT",
    "Applied",
    "Formatter",
    "Transformed",
    "identity_header",
    "node_file",
    "stored_tables",
    "transform_window",
]

UNSENT = "@unsent"
"""Per formatted row, the columns whose value the stream did not send (TOAST, unchanged)."""
_START, _END = ":START_ID", ":END_ID"


def identity_header(column: str) -> str:
    """How a replica identity column is named in a table's state (PostgreSQL's text)."""
    return f"@{column}"


def _name(header: str) -> str:
    return header.rsplit(":", 1)[0]


def read_headers(plan: Plan, table: TablePlan) -> list[str]:
    """The headers the plan's mappings read of ``table``."""
    headers: list[str] = []
    for rel in plan.relationships:
        for role in rel.roles:
            if rel.table(role).name == table.name:
                headers += rel.read_headers(role)
    return list(dict.fromkeys(headers))


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


def _lookups(plan: Plan, table: TablePlan) -> list[tuple[str, ...]]:
    """The header tuples a window looks ``table``'s rows up by: a node table's id, and per
    mapping the columns the other sides join it by."""
    found: list[tuple[str, ...]] = []
    if table.label:
        found.append((table.id_header,))  # a key is found by its row's identity
    for rel in plan.relationships:
        for role in rel.roles:
            if rel.table(role).name != table.name:
                continue
            if rel.link_table is None:
                pairs = rel.from_to_keys
                found.append(tuple(f if role == "from" else t for f, t in pairs))
            elif role == "from":
                found.append(tuple(f for f, _ in rel.from_link_keys))
            elif role == "to":
                found.append(tuple(t for _, t in rel.link_to_keys))
            else:
                ends = [*(k for _, k in rel.from_link_keys), *(k for k, _ in rel.link_to_keys)]
                found += [tuple(dict.fromkeys(ends)), tuple(k for k, _ in rel.link_to_keys)]
    return [t for t in dict.fromkeys(found) if t]


def stored_tables(plan: Plan, identities: Mapping[str, Sequence[str]]) -> list[StoredTable]:
    """The store's tables for ``plan``: per followed table its state's columns and indexes
    (``identities``: each table's replica identity columns)."""
    tables = []
    for number, table in enumerate(plan.tables):
        identity = identities[table.name]
        schema = state_schema(table, identity, read_headers(plan, table))
        tables.append(
            StoredTable(
                table.name,
                number,
                schema,
                tuple(identity_header(c) for c in identity),
                tuple(_lookups(plan, table)),
            )
        )
    return tables


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

    @classmethod
    def of(cls, changes: ChangeSet) -> Applied:
        found = cls()
        for label, d in changes.nodes.items():
            found.nodes[label] = {
                "inserted": d.inserted,
                "updated": d.updated,
                "deleted": d.deleted,
            }
        for name, p in changes.pairs.items():
            found.relationships[name] = {"inserted": p.added, "deleted": p.removed}
        return found

    def counts(self) -> dict[str, dict[str, int]]:
        """Per label and mapping: inserted, updated, deleted (the ledger's change columns)."""
        found = {k: {"inserted": 0, "updated": 0, "deleted": 0, **v} for k, v in self.nodes.items()}
        return found | {
            k: {"inserted": 0, "updated": 0, "deleted": 0, **v}
            for k, v in self.relationships.items()
        }


def node_file(table: TablePlan, headers: Sequence[str] | None = None) -> NodeFile:
    assert table.label is not None
    return NodeFile(
        table.label,
        table.table,  # type: ignore[arg-type]
        headers or table.headers(),
        table.key_columns,
        group_label=table.group_label,
    )


def relationship_file(rel: RelationshipPlan) -> RelationshipFile:
    start, end = node_file(rel.from_table), node_file(rel.to_table)
    return RelationshipFile(
        rel.name, rel.relationship_type, start, end, start.path, rel.file_headers()
    )


@dataclass(frozen=True)
class _Changed:
    """One table the window changed: its state's rows before and after, and its new values."""

    plan: TablePlan
    identity: list[str]
    gone: pl.DataFrame
    """The state's rows of every identity the window touched (truncated: every row)."""
    new: pl.DataFrame
    """Its rows after the window, of the identities it upserted."""
    formatted: pl.DataFrame
    """The upserted rows as the readers format them (text, by header, with UNSENT)."""
    truncated: bool
    inserted: int
    """Upserted rows of keys the state did not hold (node tables): nodes inserted."""


def _changed_table(
    plan: TablePlan,
    stored: StoredTable,
    store: StateStore,
    change: TableChanges,
    formatted: pl.DataFrame,
    next_ids: dict[str, int],
) -> _Changed:
    identity = [identity_header(c) for c in change.identity]
    schema = dict(stored.schema)
    if change.truncated:
        gone = store.all_rows(plan.name)
    else:
        touched = pl.DataFrame(
            [list(k) for k in [*change.upserts, *change.deletes]],
            schema=dict.fromkeys(identity, pl.String),
            orient="row",
        )
        gone = store.rows(plan.name, identity, touched)
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
    inserted = 0
    if plan.label:
        keys = [plan.header_of(k) for k in plan.key_columns]
        # A key keeps its id (a key is in its row's identity, and unique: its earlier row, if
        # any, is among the rows the window touched).
        known = gone.select(*keys, plan.id_header).unique(keys)
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
        inserted = missing
    new = rows.select(list(schema))
    return _Changed(plan, identity, gone, new, formatted, change.truncated, inserted)


def _node_changes(table: _Changed) -> NodeChanges:
    """A node table's upserts (one shape per set of unsent columns) and deletes."""
    plan = table.plan
    assert plan.label is not None
    keys = [plan.header_of(k) for k in plan.key_columns]
    upserts = []
    for (unsent,), group in table.formatted.group_by(UNSENT, maintain_order=True):
        left = set(unsent or [])
        shape = node_file(plan, [h for h in plan.headers() if _name(h) not in left])
        upserts.append((shape, node_rows(shape, group.lazy())))
    gone = table.gone.select(keys)
    deleted = gone.join(table.new.select(keys), on=keys, how="anti", nulls_equal=True).unique()
    delete_file = node_file(plan, [plan.id_header, *keys])
    deletes = deleted.select(
        [k.parse(pl.col(k.column).cast(pl.String)).alias(k.name) for k in delete_file.key_fields()]
    )
    return NodeChanges(
        plan.label,
        node_file(plan),
        tuple(upserts),
        deletes,
        delete_file,
        table.inserted,
        table.new.height - table.inserted,
    )


class _Reader:
    """The store's rows a window asked for, each read once: the state before and after the
    window ask for mostly the same rows (a pair's two nodes, a key's partners)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.read: dict[tuple[str, tuple[str, ...]], tuple[pl.DataFrame, pl.DataFrame]] = {}
        """(table, headers) → (the values asked for so far, the rows found for them)."""

    def rows(self, table: TablePlan, headers: Sequence[str], values: pl.DataFrame) -> pl.DataFrame:
        key = (table.name, tuple(headers))
        schema = self.store.tables[table.name].schema
        wanted = values.select(headers).cast({h: schema[h] for h in headers}).drop_nulls().unique()
        asked, found = self.read.get(key, (wanted.head(0), self.store.tables[table.name].empty()))
        new = wanted.join(asked, on=list(headers), how="anti")
        if new.height:
            found = pl.concat([found, self.store.rows(table.name, headers, new)])
            asked = pl.concat([asked, new])
            self.read[key] = (asked, found)
        return found.join(wanted, on=list(headers), how="semi")


class _View:
    """The state before or after the window, for the rows asked for: the store's rows, and
    after the window with the changed tables' rows replaced by their new ones."""

    def __init__(self, reader: _Reader, changed: Mapping[str, _Changed], after: bool) -> None:
        self.reader = reader
        self.changed = changed
        self.after = after

    def rows(self, table: TablePlan, headers: Sequence[str], values: pl.DataFrame) -> pl.DataFrame:
        found = self.reader.rows(table, headers, values)
        change = self.changed.get(table.name)
        if not self.after or change is None:
            return found
        if change.truncated:
            found = found.head(0)
        else:
            found = found.join(change.gone.select(change.identity), on=change.identity, how="anti")
        wanted = values.select(headers).cast({h: found.schema[h] for h in headers}).unique()
        return pl.concat([found, change.new.join(wanted, on=list(headers), how="semi")])


def _renamed(rows: pl.DataFrame, pairs: Sequence[tuple[str, str]]) -> pl.DataFrame:
    """``rows``' columns ``a`` as ``b`` for each (a, b), each ``b`` once."""
    chosen: dict[str, pl.Expr] = {}
    for a, b in pairs:
        chosen.setdefault(b, pl.col(a).alias(b))
    return rows.select(list(chosen.values()))


def _partners(
    rel: RelationshipPlan, role: Role, rows: pl.DataFrame, view: _View
) -> dict[Role, pl.DataFrame]:
    """``rows`` of side ``role`` with the rows of the other sides they can join."""
    sides: dict[Role, pl.DataFrame] = {role: rows}

    def lookup(other: Role, pairs: Sequence[tuple[str, str]], of: pl.DataFrame) -> pl.DataFrame:
        headers = list(dict.fromkeys(b for _, b in pairs))
        return view.rows(rel.table(other), headers, _renamed(of, pairs))

    if rel.link_table is None:
        keys = rel.from_to_keys
        if role == "from":
            sides["to"] = lookup("to", keys, rows)
        else:
            sides["from"] = lookup("from", [(t, f) for f, t in keys], rows)
        return sides
    from_link, link_to = rel.from_link_keys, rel.link_to_keys
    if role == "from":
        sides["link"] = lookup("link", from_link, rows)
        sides["to"] = lookup("to", link_to, sides["link"])
    elif role == "to":
        sides["link"] = lookup("link", [(t, k) for k, t in link_to], rows)
        sides["from"] = lookup("from", [(k, f) for f, k in from_link], sides["link"])
    else:
        sides["from"] = lookup("from", [(k, f) for f, k in from_link], rows)
        sides["to"] = lookup("to", link_to, rows)
    return sides


def _relevant(rel: RelationshipPlan, role: Role, table: _Changed) -> tuple[pl.DataFrame, ...]:
    """The changed rows of side ``role`` that may change ``rel``'s relationships: rows gone or
    new, less those whose values the mapping reads (its id, keys, filters, properties) stayed."""
    if table.truncated:
        return table.gone, table.new
    read = list(dict.fromkeys([*table.identity, *rel.read_headers(role)]))
    if table.plan.label:
        read.append(table.plan.id_header)
    read = list(dict.fromkeys(read))
    same = table.gone.select(read).join(
        table.new.select(read), on=read, how="semi", nulls_equal=True
    )
    kept = same.select(table.identity)
    return (
        table.gone.join(kept, on=table.identity, how="anti", nulls_equal=True),
        table.new.join(kept, on=table.identity, how="anti", nulls_equal=True),
    )


def _sides_of(
    rel: RelationshipPlan, touched: pl.DataFrame, view: _View
) -> dict[Role, pl.DataFrame]:
    """Every row that makes a relationship of ``rel`` between a touched pair of nodes."""
    start_id, end_id = rel.from_table.id_header, rel.to_table.id_header
    starts = view.rows(rel.from_table, [start_id], touched.select(pl.col(_START).alias(start_id)))
    ends = view.rows(rel.to_table, [end_id], touched.select(pl.col(_END).alias(end_id)))
    sides: dict[Role, pl.DataFrame] = {"from": starts, "to": ends}
    if rel.link_table is not None:
        named = touched.join(
            _renamed(starts, [(start_id, _START), *rel.from_link_keys]), on=_START
        ).join(_renamed(ends, [(end_id, _END), *((t, k) for k, t in rel.link_to_keys)]), on=_END)
        headers = list(
            dict.fromkeys([*(k for _, k in rel.from_link_keys), *(k for k, _ in rel.link_to_keys)])
        )
        sides["link"] = view.rows(rel.link_table, headers, named.select(headers))
    return sides


def _keyed(
    rel: RelationshipPlan, sides: Mapping[Role, pl.DataFrame], touched: pl.DataFrame
) -> pl.DataFrame:
    """The relationships ``sides`` give the touched pairs, named by their nodes' keys as text
    (``s0``..., ``e0``...) with their properties as text: what :func:`differing_pairs` compares."""
    found = joined(rel, sides).join(touched.lazy(), on=[_START, _END], how="semi").collect()
    starts = sides["from"].select(
        pl.col(rel.from_table.id_header).alias(_START),
        *[
            pl.col(rel.from_table.header_of(k)).cast(pl.String).alias(f"s{i}")
            for i, k in enumerate(rel.from_table.key_columns)
        ],
    )
    ends = sides["to"].select(
        pl.col(rel.to_table.id_header).alias(_END),
        *[
            pl.col(rel.to_table.header_of(k)).cast(pl.String).alias(f"e{i}")
            for i, k in enumerate(rel.to_table.key_columns)
        ],
    )
    named = [*starts.columns[1:], *ends.columns[1:]]
    properties = [pl.col(h).cast(pl.String) for _, h in rel.properties]
    return (
        found.join(starts.unique(_START), on=_START)
        .join(ends.unique(_END), on=_END)
        .select(*named, *properties)
    )


def _pair_changes(
    rel: RelationshipPlan, changed: Mapping[str, _Changed], store: StateStore
) -> PairChanges | None:
    roles = [r for r in rel.roles if rel.table(r).name in changed]
    if not roles:
        return None
    reader = _Reader(store)
    before, after = _View(reader, changed, False), _View(reader, changed, True)
    pairs = []
    for role in roles:
        gone, new = _relevant(rel, role, changed[rel.table(role).name])
        for rows, view in ((gone, before), (new, after)):
            if rows.height:
                sides = _partners(rel, role, rows, view)
                pairs.append(joined(rel, sides).select(_START, _END).collect())
    touched = pl.concat(pairs).unique() if pairs else None
    if touched is None or touched.height == 0:
        return None
    file = relationship_file(rel)
    old_sides, new_sides = _sides_of(rel, touched, before), _sides_of(rel, touched, after)
    new = _keyed(rel, new_sides, touched)
    differing, added, removed = differing_pairs(
        file, _keyed(rel, old_sides, touched).lazy(), new.lazy()
    )
    if differing.height == 0:
        return None
    # Only pairs whose two nodes exist after the window: a deleted node's go with it.
    columns = pair_columns(file)
    starts = [c for c in columns if c.startswith("s")]
    ends = [c for c in columns if c.startswith("e")]
    alive_starts = _keyed_nodes(rel.from_table, new_sides["from"], "s")
    alive_ends = _keyed_nodes(rel.to_table, new_sides["to"], "e")
    existing = differing.join(alive_starts, on=starts, how="semi").join(
        alive_ends, on=ends, how="semi"
    )
    return PairChanges(
        rel.name, file, replacement_rows(file, new.lazy(), existing.lazy()), added, removed
    )


def _keyed_nodes(table: TablePlan, rows: pl.DataFrame, prefix: str) -> pl.DataFrame:
    return rows.select(
        [
            pl.col(table.header_of(k)).cast(pl.String).alias(f"{prefix}{i}")
            for i, k in enumerate(table.key_columns)
        ]
    ).unique()


@dataclass(frozen=True)
class Transformed:
    """A window as a change set, and what the state must hold after it."""

    changes: ChangeSet
    writes: dict[str, TableWrite]
    next_ids: dict[str, int]


def transform_window(
    plan: Plan,
    store: StateStore,
    changes: Mapping[str, TableChanges],
    formatted: Mapping[str, pl.DataFrame],
) -> Transformed:
    """A window's net changes (``formatted``: each changed table's upserted rows as the readers
    format them) as a change set, against the state in ``store`` (which it does not change)."""
    by_name = {t.name: t for t in plan.tables}
    next_ids = dict(store.next_ids)
    changed = {
        name: _changed_table(
            by_name[name], store.tables[name], store, change, formatted[name], next_ids
        )
        for name, change in changes.items()
    }
    result = ChangeSet()
    for table in changed.values():
        if table.plan.label:
            result.nodes[table.plan.label] = _node_changes(table)
    for rel in plan.relationships:
        pair = _pair_changes(rel, changed, store)
        if pair is not None:
            result.pairs[rel.name] = pair
    writes = {}
    for name, table in changed.items():
        if table.truncated:
            writes[name] = TableWrite(table.new, table.gone.head(0).select(table.identity), True)
            continue
        identity = table.identity
        removed = table.gone.select(identity).join(
            table.new.select(identity), on=identity, how="anti", nulls_equal=True
        )
        # Rows whose state is what it was (a column no join reads changed) are not written.
        written = table.new.join(
            table.gone, on=list(table.new.columns), how="anti", nulls_equal=True
        )
        writes[name] = TableWrite(written, removed)
    return Transformed(result, writes, next_ids)
