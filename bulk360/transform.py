"""Stage 2: node checks and relationship joins, as Polars joins on key columns only.

The readers parse each table while they write it, and only the columns that a join, an id check
or a relationship property needs (:func:`needed_columns`, see :mod:`bulk360.extract`); every
mapping then joins those frames in memory. Integer columns (``:long``) are integers, which join
and hash about twice as fast as text and are written back exactly as PostgreSQL wrote them;
every other column is text (PostgreSQL wrote equal values of compatible types as equal text).
The plan only pairs join keys of one type family, so both sides of a key have one type. Nothing
here looks at the other property columns.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from bulk360.plan import Plan, RelationshipPlan, TablePlan

__all__ = [
    "NodeCheck",
    "RelationshipResult",
    "build_relationship",
    "check_nodes",
    "needed_columns",
    "read_text",
]


@dataclass(frozen=True)
class NodeCheck:
    """Duplicate ids found in a node file (they are rejected: the first row wins)."""

    label: str
    duplicates: int


def check_nodes(table: TablePlan, frame: pl.DataFrame | None) -> NodeCheck:
    """Count duplicate ids when no unique index guarantees the key is unique."""
    assert table.label is not None
    if table.key_unique or frame is None:
        return NodeCheck(table.label, 0)
    ids = frame.get_column(table.id_header)
    return NodeCheck(table.label, ids.len() - ids.n_unique())


def read_text(path: Path, columns: list[str] | None = None) -> pl.DataFrame:
    """A file written by the readers, every column as text (``columns``: only those)."""
    return pl.read_csv(path, columns=columns, infer_schema=False, quote_char='"', has_header=True)


def needed_columns(plan: Plan) -> dict[str, list[str]]:
    """Per table, the columns an id check, a join key or a relationship property reads."""
    needed: dict[str, list[str]] = {}

    def need(table: TablePlan, *columns: str) -> None:
        needed.setdefault(table.name, []).extend(columns)

    for table in plan.tables:
        if table.label and not table.key_unique:
            need(table, table.id_header)
    for rel in plan.relationships:
        props = {r: [h for role, h in rel.properties if role == r] for r in ("from", "to", "link")}
        filters = {r: [h for role, h, _ in rel.filters if role == r] for r in props}
        need(rel.from_table, rel.from_table.id_header, *props["from"], *filters["from"])
        need(rel.from_table, *[f for f, _ in rel.from_to_keys], *[f for f, _ in rel.from_link_keys])
        need(rel.to_table, rel.to_table.id_header, *props["to"], *filters["to"])
        need(rel.to_table, *[t for _, t in rel.from_to_keys], *[t for _, t in rel.link_to_keys])
        if rel.link_table is not None:
            need(rel.link_table, *[k for _, k in rel.from_link_keys], *props["link"])
            need(rel.link_table, *[k for k, _ in rel.link_to_keys], *filters["link"])
    return {name: list(dict.fromkeys(columns)) for name, columns in needed.items()}


@dataclass(frozen=True)
class RelationshipResult:
    """The file of one relationship mapping and what its join found."""

    plan: RelationshipPlan
    path: Path
    rows: int
    orphans: dict[str, int] = field(default_factory=dict)
    """Rows per side ('from', 'to', 'link') whose keys matched nothing."""
    seconds: float = 0.0

    @property
    def orphaned(self) -> int:
        return sum(self.orphans.values())


def _side(
    frame: pl.DataFrame, role: str, columns: list[str], plan: RelationshipPlan
) -> pl.LazyFrame:
    """The needed columns of one side, renamed ``role|header`` so sides cannot clash.

    Rows that the mapping's filters on this side leave out are gone before any join: they are
    neither related nor counted as orphans.
    """
    side = frame.lazy()
    for role_of, header, values in plan.filters:
        if role_of == role:
            wanted = pl.Series(values, dtype=pl.String).cast(frame.schema[header])
            side = side.filter(pl.col(header).is_in(wanted.implode()))
    unique = list(dict.fromkeys(columns))
    return side.select([pl.col(c).alias(f"{role}|{c}") for c in unique])


def _unmatched(
    side: pl.LazyFrame, keys: list[str], other: pl.LazyFrame, other_keys: list[str]
) -> int:
    # A NULL key refers to nothing (a top-level category's parent): it is not an orphan.
    referring = side.drop_nulls(keys)
    frame = referring.join(other, left_on=keys, right_on=other_keys, how="anti").select(pl.len())
    return int(frame.collect().item())


def _is_unique(side: pl.LazyFrame, keys: list[str]) -> bool:
    frame = side.select(keys).drop_nulls()
    key = pl.col(keys[0]) if len(keys) == 1 else pl.struct(keys)
    counts = frame.select(total=pl.len(), distinct=key.n_unique())
    row = counts.collect().row(0)
    return bool(row[0] == row[1])


def build_relationship(
    plan: RelationshipPlan, frames: Mapping[str, pl.DataFrame], out: Path
) -> RelationshipResult:
    """Join the sides of ``plan`` and write ``:START_ID,:END_ID,properties`` to ``out``."""
    started = time.perf_counter()
    props = {role: [h for r, h in plan.properties if r == role] for role in ("from", "to", "link")}
    from_cols = [f for f, _ in plan.from_to_keys] + [f for f, _ in plan.from_link_keys]
    to_cols = [t for _, t in plan.from_to_keys] + [t for _, t in plan.link_to_keys]
    source = _side(
        frames[plan.from_table.name],
        "from",
        [plan.from_table.id_header, *from_cols, *props["from"]],
        plan,
    )
    target = _side(
        frames[plan.to_table.name],
        "to",
        [plan.to_table.id_header, *to_cols, *props["to"]],
        plan,
    )

    def keys(role: str, pairs: tuple[tuple[str, str], ...], index: int) -> list[str]:
        return [f"{role}|{pair[index]}" for pair in pairs]

    orphans: dict[str, int] = {}
    if plan.link_table is None:
        left, right = keys("from", plan.from_to_keys, 0), keys("to", plan.from_to_keys, 1)
        joined = source.join(target, left_on=left, right_on=right, how="inner")
        # The side whose keys repeat refers to the other: its unmatched rows are the orphans.
        from_unique, to_unique = _is_unique(source, left), _is_unique(target, right)
        if not (from_unique and not to_unique):
            orphans["from"] = _unmatched(source, left, target, right)
        if not (to_unique and not from_unique):
            orphans["to"] = _unmatched(target, right, source, left)
    else:
        link_cols = [k for _, k in plan.from_link_keys] + [k for k, _ in plan.link_to_keys]
        link = _side(frames[plan.link_table.name], "link", [*link_cols, *props["link"]], plan)
        from_keys, link_from = (
            keys("from", plan.from_link_keys, 0),
            keys("link", plan.from_link_keys, 1),
        )
        link_to, to_keys = keys("link", plan.link_to_keys, 0), keys("to", plan.link_to_keys, 1)
        extra_from, extra_to = keys("from", plan.from_to_keys, 0), keys("to", plan.from_to_keys, 1)
        joined = source.join(link, left_on=from_keys, right_on=link_from, how="inner").join(
            target, left_on=[*link_to, *extra_from], right_on=[*to_keys, *extra_to], how="inner"
        )
        matched = link.join(source, left_on=link_from, right_on=from_keys, how="semi").join(
            target, left_on=link_to, right_on=to_keys, how="semi"
        )
        totals = pl.concat(
            [link.select(n=pl.len()), matched.select(n=pl.len())], how="vertical"
        ).collect()
        orphans["link"] = int(totals["n"][0]) - int(totals["n"][1])

    columns = [
        pl.col(f"from|{plan.from_table.id_header}").alias(f":START_ID({plan.from_table.label})"),
        pl.col(f"to|{plan.to_table.id_header}").alias(f":END_ID({plan.to_table.label})"),
        *[pl.col(f"{role}|{header}").alias(header) for role, header in plan.properties],
    ]
    frame = joined.select(columns).collect()
    frame.write_csv(out)
    return RelationshipResult(plan, out, frame.height, orphans, time.perf_counter() - started)
