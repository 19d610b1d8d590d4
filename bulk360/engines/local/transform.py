"""Step 4 with the local engine: node checks, and relationship joins by the procedure of
:mod:`bulk360.engines.joins` as Polars joins on key columns only.

The readers parse each table while they write it, and only the columns that a join, an id check
or a relationship property needs (:func:`needed_columns`, see :mod:`bulk360.engines.local.extract`); every
mapping then joins those frames in memory. Integer columns (``:long``) are integers, which join
and hash about twice as fast as text and are written back exactly as PostgreSQL wrote them;
every other column is text (PostgreSQL wrote equal values of compatible types as equal text).
The plan only pairs join keys of one type family, so both sides of a key have one type. Nothing
here looks at the other property columns.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import polars as pl

from bulk360.engines.joins import relate, related_rows
from bulk360.errors import IntegrityError
from bulk360.package.results import NodeCheck, RelationshipResult
from bulk360.plan import Plan, RelationshipPlan, TablePlan
from bulk360.plan.ids import IdRange
from bulk360.plan.rules import Role

__all__ = [
    "OPS",
    "PolarsOps",
    "build_relationship",
    "check_nodes",
    "joined",
    "needed_columns",
]


def check_nodes(table: TablePlan, frame: pl.DataFrame | None, ids: IdRange) -> NodeCheck:
    """The file's ids are exactly the label's range, and its keys are unique.

    PostgreSQL numbered the rows and kept one per key; this confirms it on the parsed columns,
    because neo4j-admin checks nothing of actual ids and a repeated one breaks the store.
    """
    assert table.label is not None and frame is not None
    where = f":{table.label} ({table.source}.{table.table})"
    column = frame.get_column(table.id_header)
    rows = column.len()
    first = int(column.min()) if rows else None  # type: ignore[arg-type]
    last = int(column.max()) if rows else None  # type: ignore[arg-type]
    if not ids.holds(first or 0, last or 0, rows):
        raise IntegrityError(
            f"{where}: node ids {first}..{last} of {rows:,} rows are not the label's range "
            f"from {ids.offset}; nothing was imported"
        )
    if not table.key_unique:
        keys = [table.header_of(k) for k in table.key_columns]
        key = pl.col(keys[0]) if len(keys) == 1 else pl.struct(keys)
        distinct = frame.select(key.n_unique()).item()
        if distinct != frame.height:
            raise IntegrityError(
                f"{where}: {frame.height - distinct:,} rows repeat a key; nothing was imported"
            )
    return NodeCheck(table.label, first, last)


def needed_columns(plan: Plan) -> dict[str, list[str]]:
    """Per table, the columns an id check, a join key, a filter or a relationship property reads."""
    needed: dict[str, list[str]] = {}
    for table in plan.tables:
        if table.label:
            needed.setdefault(table.name, []).append(table.id_header)
            if not table.key_unique:
                needed[table.name] += [table.header_of(k) for k in table.key_columns]
    for rel in plan.relationships:
        for role in rel.roles:
            needed.setdefault(rel.table(role).name, []).extend(rel.read_headers(role))
    return {name: list(dict.fromkeys(columns)) for name, columns in needed.items()}


class PolarsOps:
    """The join procedure's frame operations (:mod:`bulk360.engines.joins`) on Polars lazy
    frames; a side's columns are named ``role|header``."""

    def side(self, frame: pl.DataFrame, role: Role, plan: RelationshipPlan) -> pl.LazyFrame:
        side = frame.lazy()
        for header, values in plan.filters_of(role):
            wanted = pl.Series(values, dtype=pl.String).cast(frame.schema[header])
            side = side.filter(pl.col(header).is_in(wanted.implode()))
        return side.select([pl.col(c).alias(f"{role}|{c}") for c in plan.side_headers(role)])

    def column(self, plan: RelationshipPlan, role: Role, header: str) -> str:
        return f"{role}|{header}"

    def join(
        self, left: pl.LazyFrame, left_on: list[str], right: pl.LazyFrame, right_on: list[str]
    ) -> pl.LazyFrame:
        return left.join(right, left_on=left_on, right_on=right_on)

    def semi(
        self, left: pl.LazyFrame, left_on: list[str], right: pl.LazyFrame, right_on: list[str]
    ) -> pl.LazyFrame:
        return left.join(right.select(right_on), left_on=left_on, right_on=right_on, how="semi")

    def drop_nulls(self, frame: pl.LazyFrame, columns: list[str]) -> pl.LazyFrame:
        return frame.drop_nulls(columns)

    def is_unique(self, frame: pl.LazyFrame, columns: list[str]) -> bool:
        keys = frame.select(columns).drop_nulls()
        key = pl.col(columns[0]) if len(columns) == 1 else pl.struct(columns)
        row = keys.select(total=pl.len(), distinct=key.n_unique()).collect().row(0)
        return bool(row[0] == row[1])

    def numbered(self, frame: pl.LazyFrame, column: str) -> pl.LazyFrame:
        return frame.with_row_index(column)

    def distinct(self, frame: pl.LazyFrame, columns: list[str]) -> pl.LazyFrame:
        return frame.select(columns).unique()

    def counts(self, frames: list[pl.LazyFrame]) -> list[int]:
        # Collected together: the parts the queries share are computed once.
        return [int(f.item()) for f in pl.collect_all([q.select(pl.len()) for q in frames])]


OPS = PolarsOps()


def _relationships(plan: RelationshipPlan, joined: pl.LazyFrame) -> pl.LazyFrame:
    """``:START_ID``, ``:END_ID`` and the property headers of joined rows."""
    return joined.select(
        pl.col(f"from|{plan.from_table.id_header}").alias(":START_ID"),
        pl.col(f"to|{plan.to_table.id_header}").alias(":END_ID"),
        *[pl.col(f"{role}|{header}").alias(header) for role, header in plan.properties],
    )


def joined(plan: RelationshipPlan, frames: Mapping[Role, pl.DataFrame]) -> pl.LazyFrame:
    """The relationships of ``plan`` between the given rows of each side (its rules 1 to 3),
    without counting anything: ``:START_ID``, ``:END_ID`` and the property headers.

    ``frames`` holds each side's rows by role (a self-join's two sides may differ): the
    follower joins the rows a change touched against the rest of the state this way."""
    return _relationships(plan, related_rows(OPS, plan, frames))


def build_relationship(
    plan: RelationshipPlan, frames: Mapping[str, pl.DataFrame], out: Path
) -> RelationshipResult:
    """Join the sides of ``plan`` by its rules and write ``:START_ID,:END_ID,properties`` to
    ``out``."""
    started = time.perf_counter()
    related = relate(OPS, plan, {role: frames[plan.table(role).name] for role in plan.roles})
    frame = _relationships(plan, related.rows).collect()
    frame.write_csv(out)
    texts = [h for _, h in plan.properties if h.endswith((":string", ":string[]"))]
    multiline = bool(texts) and bool(
        frame.select(pl.any_horizontal(pl.col(texts).str.contains("\n", literal=True).any())).item()
    )
    return RelationshipResult(
        plan,
        out,
        frame.height,
        related.ledger,
        orphans=related.orphans,
        seconds=time.perf_counter() - started,
        multiline=multiline,
    )
