"""Step 4 with the Spark engine: relationship mappings as Spark joins, by the rules of
:mod:`bulk360.plan.rules` (the local engine executes the same rules with Polars).

Values are the text PostgreSQL wrote, so equal keys are equal strings on both sides (the plan
pairs join keys of one type family only); node ids are longs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bulk360.engines.spark.files import write_csv
from bulk360.package.results import RelationshipResult
from bulk360.plan import RelationshipPlan, TablePlan
from bulk360.plan.rules import MappingLedger, Role, SideCounts, counted_sides, driving_side

__all__ = ["column_of", "spark_relationship"]


def column_of(table: TablePlan, header: str) -> str:
    """The Spark column that holds ``header`` of ``table``'s frame (``id``, ``c0``, ...)."""
    if header == table.id_header:
        return "id"
    names = [c.header for c in table.columns]
    return f"c{names.index(header)}"


def _name(role: Role, table: TablePlan, header: str) -> str:
    return f"{role}_{column_of(table, header)}"


def _side(frame: Any, role: Role, plan: RelationshipPlan) -> Any:
    """One side's rows that its filters keep (rule 1), its columns renamed ``role_cN``."""
    from pyspark.sql import functions as F

    table = plan.table(role)
    side = frame
    for header, values in plan.filters_of(role):
        side = side.filter(F.col(column_of(table, header)).isin(list(values)))
    return side.select(
        [F.col(column_of(table, h)).alias(_name(role, table, h)) for h in plan.side_headers(role)]
    )


def _on(left: Any, lkeys: list[str], right: Any, rkeys: list[str]) -> list[Any]:
    return [left[a] == right[b] for a, b in zip(lkeys, rkeys, strict=True)]


def _is_unique(side: Any, keys: list[str]) -> bool:
    rows = side.select(keys).dropna()
    return bool(rows.count() == rows.distinct().count())


def _keys(
    plan: RelationshipPlan, role: Role, pairs: tuple[tuple[str, str], ...], i: int
) -> list[str]:
    return [_name(role, plan.table(role), pair[i]) for pair in pairs]


def _direct(
    plan: RelationshipPlan, sides: Mapping[Role, Any]
) -> tuple[Any, Role, dict[Role, SideCounts]]:
    """A direct mapping: the joined rows, the driving side and the counted sides' counts."""
    keys: dict[Role, list[str]] = {
        "from": _keys(plan, "from", plan.from_to_keys, 0),
        "to": _keys(plan, "to", plan.from_to_keys, 1),
    }
    source, target = sides["from"], sides["to"]
    joined = source.join(target, _on(source, keys["from"], target, keys["to"]), "inner")
    from_unique, to_unique = _is_unique(source, keys["from"]), _is_unique(target, keys["to"])
    counts: dict[Role, SideCounts] = {}
    for role in counted_sides(from_unique, to_unique):
        other: Role = "to" if role == "from" else "from"
        side = sides[role]
        referring = side.dropna(subset=keys[role])
        matched = referring.join(
            sides[other], _on(referring, keys[role], sides[other], keys[other]), "left_semi"
        )
        counts[role] = SideCounts(side.count(), referring.count(), matched.count())
    return joined, driving_side(from_unique, to_unique), counts


def _through_link(plan: RelationshipPlan, sides: Mapping[Role, Any]) -> tuple[Any, SideCounts]:
    """A mapping through a link table: the joined rows and the link side's counts."""
    from pyspark.sql import functions as F

    source, target, link = sides["from"], sides["to"], sides["link"]
    from_keys = _keys(plan, "from", plan.from_link_keys, 0)
    link_from = _keys(plan, "link", plan.from_link_keys, 1)
    link_to = _keys(plan, "link", plan.link_to_keys, 0)
    to_keys = _keys(plan, "to", plan.link_to_keys, 1)
    extra_from = _keys(plan, "from", plan.from_to_keys, 0)
    extra_to = _keys(plan, "to", plan.from_to_keys, 1)
    referring = link.dropna(subset=[*link_from, *link_to])
    if extra_from:
        referring = referring.withColumn("link_row", F.monotonically_increasing_id()).persist()
    first = referring.join(source, _on(referring, link_from, source, from_keys), "inner")
    joined = first.join(
        target, _on(first, [*link_to, *extra_from], target, [*to_keys, *extra_to]), "inner"
    )
    if extra_from:
        related = joined.select("link_row").distinct()
        matched = referring.join(related, "link_row", "left_semi").count()
    else:
        with_from = referring.join(
            source, _on(referring, link_from, source, from_keys), "left_semi"
        )
        matched = with_from.join(
            target, _on(with_from, link_to, target, to_keys), "left_semi"
        ).count()
    return joined, SideCounts(link.count(), referring.count(), matched)


def spark_relationship(
    plan: RelationshipPlan, frames: Mapping[str, Any], out: Path
) -> tuple[RelationshipResult, Any]:
    """Join the sides of ``plan`` by its rules and write ``:START_ID,:END_ID,properties`` to
    ``out``; the rows (``start``, ``end``, ``p2``...) stay cached for a Bolt load (the caller
    unpersists)."""
    from pyspark.sql import functions as F

    started = time.perf_counter()
    sides = {role: _side(frames[plan.table(role).name], role, plan) for role in plan.roles}
    if plan.link_table is None:
        joined, driving, counts = _direct(plan, sides)
    else:
        joined, link = _through_link(plan, sides)
        driving, counts = "link", {"link": link}
    ft, tt = plan.from_table, plan.to_table
    columns = [
        F.col(_name("from", ft, ft.id_header)).alias("start"),
        F.col(_name("to", tt, tt.id_header)).alias("end"),
    ]
    for role, header in plan.properties:
        columns.append(F.col(_name(role, plan.table(role), header)).alias(f"p{len(columns)}"))
    frame = joined.select(columns).persist()
    rows = frame.count()
    written = write_csv(frame, plan.file_headers(), out, rows)
    result = RelationshipResult(
        plan,
        out,
        rows,
        MappingLedger.of(driving, counts[driving]),
        orphans={role: c.orphaned for role, c in counts.items()},
        seconds=time.perf_counter() - started,
        multiline=written.multiline,
        sha256=written.sha256,
    )
    return result, frame
