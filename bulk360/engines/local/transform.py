"""Stage 2: node checks and relationship joins, as Polars joins on key columns only.

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

from bulk360.engines.results import NodeCheck, RelationshipResult
from bulk360.errors import IntegrityError
from bulk360.ids import IdRange
from bulk360.plan import Plan, RelationshipPlan, TablePlan

__all__ = [
    "build_relationship",
    "check_nodes",
    "needed_columns",
    "read_text",
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


def read_text(path: Path, columns: list[str] | None = None) -> pl.DataFrame:
    """A file written by the readers, every column as text (``columns``: only those)."""
    return pl.read_csv(path, columns=columns, infer_schema=False, quote_char='"', has_header=True)


def needed_columns(plan: Plan) -> dict[str, list[str]]:
    """Per table, the columns an id check, a join key or a relationship property reads."""
    needed: dict[str, list[str]] = {}

    def need(table: TablePlan, *columns: str) -> None:
        needed.setdefault(table.name, []).extend(columns)

    for table in plan.tables:
        if table.label:
            need(table, table.id_header)
            if not table.key_unique:
                need(table, *[table.header_of(k) for k in table.key_columns])
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


def _count(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.select(pl.len().cast(pl.Int64))


def _is_unique(side: pl.LazyFrame, keys: list[str]) -> bool:
    frame = side.select(keys).drop_nulls()
    key = pl.col(keys[0]) if len(keys) == 1 else pl.struct(keys)
    counts = frame.select(total=pl.len(), distinct=key.n_unique())
    row = counts.collect().row(0)
    return bool(row[0] == row[1])


def _counts(frames: list[pl.LazyFrame]) -> list[int]:
    """Row counts of several lazy frames, collected together (common parts computed once)."""
    return [int(f.item()) for f in pl.collect_all([_count(f) for f in frames])]


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
        # The side whose keys repeat refers to the other: it drives the mapping, and its
        # unmatched rows are the orphans (both sides' when neither or both are unique).
        from_unique, to_unique = _is_unique(source, left), _is_unique(target, right)
        driving = "to" if from_unique and not to_unique else "from"
        sides = {"from": (source, left, target, right), "to": (target, right, source, left)}
        counted = [r for r in ("from", "to") if r == driving or from_unique == to_unique]
        queries: list[pl.LazyFrame] = []
        for role in counted:
            side, side_keys, other, other_keys = sides[role]
            queries.append(
                side.drop_nulls(side_keys).join(
                    other, left_on=side_keys, right_on=other_keys, how="anti"
                )
            )
        side, side_keys, other, other_keys = sides[driving]
        referring = side.drop_nulls(side_keys)
        queries += [
            side,
            referring,
            referring.join(other, left_on=side_keys, right_on=other_keys, how="semi"),
        ]
        *unmatched, read, non_null, matched = _counts(queries)
        orphans = dict(zip(counted, unmatched, strict=True))
        orphaned = orphans[driving]
    else:
        driving = "link"
        link_cols = [k for _, k in plan.from_link_keys] + [k for k, _ in plan.link_to_keys]
        link = _side(frames[plan.link_table.name], "link", [*link_cols, *props["link"]], plan)
        from_keys, link_from = (
            keys("from", plan.from_link_keys, 0),
            keys("link", plan.from_link_keys, 1),
        )
        link_to, to_keys = keys("link", plan.link_to_keys, 0), keys("to", plan.link_to_keys, 1)
        extra_from, extra_to = keys("from", plan.from_to_keys, 0), keys("to", plan.from_to_keys, 1)
        referring = link.drop_nulls([*link_from, *link_to])
        if extra_from:
            # A term between the two ends: which link rows relate anything shows in the join.
            referring = referring.with_row_index("link|row")
        joined = referring.join(source, left_on=link_from, right_on=from_keys, how="inner").join(
            target, left_on=[*link_to, *extra_from], right_on=[*to_keys, *extra_to], how="inner"
        )
        if extra_from:
            related = joined.select("link|row").unique()
            found = referring.join(related, on="link|row", how="semi")
            missing = referring.join(related, on="link|row", how="anti")
        else:
            to_side = target.select(to_keys)
            found = referring.join(source, left_on=link_from, right_on=from_keys, how="semi").join(
                to_side, left_on=link_to, right_on=to_keys, how="semi"
            )
            missing = pl.concat(
                [
                    referring.join(source, left_on=link_from, right_on=from_keys, how="anti"),
                    referring.join(source, left_on=link_from, right_on=from_keys, how="semi").join(
                        to_side, left_on=link_to, right_on=to_keys, how="anti"
                    ),
                ],
                how="vertical",
            )
        read, non_null, matched, orphaned = _counts([link, referring, found, missing])
        orphans["link"] = orphaned

    columns = [
        pl.col(f"from|{plan.from_table.id_header}").alias(":START_ID"),
        pl.col(f"to|{plan.to_table.id_header}").alias(":END_ID"),
        *[pl.col(f"{role}|{header}").alias(header) for role, header in plan.properties],
    ]
    frame = joined.select(columns).collect()
    frame.write_csv(out)
    texts = [h for _, h in plan.properties if h.endswith((":string", ":string[]"))]
    multiline = bool(texts) and bool(
        frame.select(pl.any_horizontal(pl.col(texts).str.contains("\n", literal=True).any())).item()
    )
    return RelationshipResult(
        plan,
        out,
        frame.height,
        orphans,
        time.perf_counter() - started,
        multiline=multiline,
        driving=driving,
        read=read,
        rejected=read - non_null,
        orphaned=orphaned,
        matched=matched,
    )
