"""Step 4 with the local engine: node checks, and relationship joins by the rules of
:mod:`bulk360.plan.rules` as Polars joins on key columns only.

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
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from bulk360.errors import IntegrityError
from bulk360.package.results import NodeCheck, RelationshipResult
from bulk360.plan import Plan, RelationshipPlan, TablePlan
from bulk360.plan.ids import IdRange
from bulk360.plan.rules import MappingLedger, Role, SideCounts, counted_sides, driving_side

__all__ = [
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


def _side(frame: pl.DataFrame, role: Role, plan: RelationshipPlan) -> pl.LazyFrame:
    """One side's rows that its filters keep (rule 1), its columns renamed ``role|header`` so
    that sides cannot clash."""
    side = frame.lazy()
    for header, values in plan.filters_of(role):
        wanted = pl.Series(values, dtype=pl.String).cast(frame.schema[header])
        side = side.filter(pl.col(header).is_in(wanted.implode()))
    return side.select([pl.col(c).alias(f"{role}|{c}") for c in plan.side_headers(role)])


def _is_unique(side: pl.LazyFrame, keys: list[str]) -> bool:
    frame = side.select(keys).drop_nulls()
    key = pl.col(keys[0]) if len(keys) == 1 else pl.struct(keys)
    row = frame.select(total=pl.len(), distinct=key.n_unique()).collect().row(0)
    return bool(row[0] == row[1])


def _counted(queries: list[pl.LazyFrame]) -> list[SideCounts]:
    """Side counts from (side, its rows with keys set, those matched) query triples, collected
    together (common parts computed once)."""
    counts = [int(f.item()) for f in pl.collect_all([q.select(pl.len()) for q in queries])]
    return [SideCounts(*counts[i : i + 3]) for i in range(0, len(counts), 3)]


def _direct_keys(plan: RelationshipPlan) -> dict[Role, list[str]]:
    return {
        "from": [f"from|{f}" for f, _ in plan.from_to_keys],
        "to": [f"to|{t}" for _, t in plan.from_to_keys],
    }


def _direct(
    plan: RelationshipPlan, sides: Mapping[Role, pl.LazyFrame]
) -> tuple[pl.LazyFrame, Role, dict[Role, SideCounts]]:
    """A direct mapping: the joined rows, the driving side and the counted sides' counts."""
    keys = _direct_keys(plan)
    joined = sides["from"].join(sides["to"], left_on=keys["from"], right_on=keys["to"])
    from_unique = _is_unique(sides["from"], keys["from"])
    to_unique = _is_unique(sides["to"], keys["to"])
    counted = counted_sides(from_unique, to_unique)
    queries: list[pl.LazyFrame] = []
    for role in counted:
        other: Role = "to" if role == "from" else "from"
        referring = sides[role].drop_nulls(keys[role])
        matched = referring.join(sides[other], left_on=keys[role], right_on=keys[other], how="semi")
        queries += [sides[role], referring, matched]
    counts = dict(zip(counted, _counted(queries), strict=True))
    return joined, driving_side(from_unique, to_unique), counts


@dataclass(frozen=True)
class _LinkKeys:
    """The renamed key columns of a mapping through a link table."""

    from_keys: list[str]
    link_from: list[str]
    link_to: list[str]
    to_keys: list[str]
    extra_from: list[str]
    """From-to pairs that narrow the link's matches (a term between the two ends)."""
    extra_to: list[str]

    @classmethod
    def of(cls, plan: RelationshipPlan) -> _LinkKeys:
        return cls(
            [f"from|{f}" for f, _ in plan.from_link_keys],
            [f"link|{k}" for _, k in plan.from_link_keys],
            [f"link|{k}" for k, _ in plan.link_to_keys],
            [f"to|{t}" for _, t in plan.link_to_keys],
            [f"from|{f}" for f, _ in plan.from_to_keys],
            [f"to|{t}" for _, t in plan.from_to_keys],
        )

    def join(self, link: pl.LazyFrame, sides: Mapping[Role, pl.LazyFrame]) -> pl.LazyFrame:
        """Each link row with every from row and to row it names (rule 3)."""
        return link.join(sides["from"], left_on=self.link_from, right_on=self.from_keys).join(
            sides["to"],
            left_on=[*self.link_to, *self.extra_from],
            right_on=[*self.to_keys, *self.extra_to],
        )


def _through_link(
    plan: RelationshipPlan, sides: Mapping[Role, pl.LazyFrame]
) -> tuple[pl.LazyFrame, SideCounts]:
    """A mapping through a link table: the joined rows and the link side's counts."""
    keys = _LinkKeys.of(plan)
    referring = sides["link"].drop_nulls([*keys.link_from, *keys.link_to])
    if not keys.extra_from:
        joined = keys.join(referring, sides)
        # A link row relates something when both its ends exist: two semi-joins, no join.
        matched = referring.join(
            sides["from"], left_on=keys.link_from, right_on=keys.from_keys, how="semi"
        ).join(
            sides["to"].select(keys.to_keys),
            left_on=keys.link_to,
            right_on=keys.to_keys,
            how="semi",
        )
        (counts,) = _counted([sides["link"], referring, matched])
        return joined, counts
    # A term between the two ends: which link rows relate anything shows only in the join.
    numbered = referring.with_row_index("link|row")
    joined = keys.join(numbered, sides)
    matched = numbered.join(joined.select("link|row").unique(), on="link|row", how="semi")
    (counts,) = _counted([sides["link"], numbered, matched])
    return joined.drop("link|row"), counts


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
    sides = {role: _side(frames[role], role, plan) for role in plan.roles}
    if plan.link_table is None:
        keys = _direct_keys(plan)
        rows = sides["from"].join(sides["to"], left_on=keys["from"], right_on=keys["to"])
    else:
        link = _LinkKeys.of(plan)
        rows = link.join(sides["link"].drop_nulls([*link.link_from, *link.link_to]), sides)
    return _relationships(plan, rows)


def build_relationship(
    plan: RelationshipPlan, frames: Mapping[str, pl.DataFrame], out: Path
) -> RelationshipResult:
    """Join the sides of ``plan`` by its rules and write ``:START_ID,:END_ID,properties`` to
    ``out``."""
    started = time.perf_counter()
    sides = {role: _side(frames[plan.table(role).name], role, plan) for role in plan.roles}
    if plan.link_table is None:
        rows, driving, counts = _direct(plan, sides)
    else:
        rows, link = _through_link(plan, sides)
        driving, counts = "link", {"link": link}
    frame = _relationships(plan, rows).collect()
    frame.write_csv(out)
    texts = [h for _, h in plan.properties if h.endswith((":string", ":string[]"))]
    multiline = bool(texts) and bool(
        frame.select(pl.any_horizontal(pl.col(texts).str.contains("\n", literal=True).any())).item()
    )
    return RelationshipResult(
        plan,
        out,
        frame.height,
        MappingLedger.of(driving, counts[driving]),
        orphans={role: c.orphaned for role, c in counts.items()},
        seconds=time.perf_counter() - started,
        multiline=multiline,
    )
