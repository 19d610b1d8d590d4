"""Relationship mappings as Spark joins, with the local engine's semantics and ledger.

The same rules as :func:`bulk360.engines.local.transform.build_relationship`: each side keeps
the rows its filters allow, a NULL key relates nothing (rejected), the side whose keys repeat
drives the mapping and its unmatched rows are the orphans (both sides' when neither or both are
unique), a link table drives its mapping, and ``read = matched + rejected + orphaned``. Values
are the text PostgreSQL wrote, so equal keys are equal strings on both sides (the plan pairs
join keys of one type family only); node ids are longs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bulk360.engines.results import RelationshipResult
from bulk360.engines.spark.files import write_csv
from bulk360.plan import RelationshipPlan, TablePlan

__all__ = ["column_of", "spark_relationship"]


def column_of(table: TablePlan, header: str) -> str:
    """The Spark column that holds ``header`` of ``table``'s frame (``id``, ``c0``, ...)."""
    if header == table.id_header:
        return "id"
    names = [c.header for c in table.columns]
    return f"c{names.index(header)}"


def _side(
    frame: Any, table: TablePlan, role: str, headers: list[str], plan: RelationshipPlan
) -> Any:
    """The needed columns of one side, renamed ``role_n`` after the header's position."""
    from pyspark.sql import functions as F

    side = frame
    for role_of, header, values in plan.filters:
        if role_of == role:
            side = side.filter(F.col(column_of(table, header)).isin(list(values)))
    unique = list(dict.fromkeys(headers))
    return side.select([F.col(column_of(table, h)).alias(_name(role, table, h)) for h in unique])


def _name(role: str, table: TablePlan, header: str) -> str:
    return f"{role}_{column_of(table, header)}"


def _on(left: Any, lkeys: list[str], right: Any, rkeys: list[str]) -> list[Any]:
    return [left[a] == right[b] for a, b in zip(lkeys, rkeys, strict=True)]


def _is_unique(side: Any, keys: list[str]) -> bool:
    rows = side.select(keys).dropna()
    return bool(rows.count() == rows.distinct().count())


def spark_relationship(
    plan: RelationshipPlan, frames: Mapping[str, Any], out: Path
) -> tuple[RelationshipResult, Any]:
    """Join the sides of ``plan`` and write ``:START_ID,:END_ID,properties`` to ``out``; the
    rows (``start``, ``end``, ``p2``...) stay cached for a Bolt load (the caller unpersists)."""
    from pyspark.sql import functions as F

    started = time.perf_counter()
    ft, tt = plan.from_table, plan.to_table
    props = {role: [h for r, h in plan.properties if r == role] for role in ("from", "to", "link")}
    from_cols = [f for f, _ in plan.from_to_keys] + [f for f, _ in plan.from_link_keys]
    to_cols = [t for _, t in plan.from_to_keys] + [t for _, t in plan.link_to_keys]
    source = _side(frames[ft.name], ft, "from", [ft.id_header, *from_cols, *props["from"]], plan)
    target = _side(frames[tt.name], tt, "to", [tt.id_header, *to_cols, *props["to"]], plan)

    def keys(role: str, table: TablePlan, pairs: tuple[tuple[str, str], ...], i: int) -> list[str]:
        return [_name(role, table, pair[i]) for pair in pairs]

    orphans: dict[str, int] = {}
    if plan.link_table is None:
        left, right = keys("from", ft, plan.from_to_keys, 0), keys("to", tt, plan.from_to_keys, 1)
        joined = source.join(target, _on(source, left, target, right), "inner")
        from_unique, to_unique = _is_unique(source, left), _is_unique(target, right)
        driving = "to" if from_unique and not to_unique else "from"
        sides = {"from": (source, left, target, right), "to": (target, right, source, left)}
        for role in ("from", "to"):
            if role == driving or from_unique == to_unique:
                side, side_keys, other, other_keys = sides[role]
                orphans[role] = (
                    side.dropna(subset=side_keys)
                    .join(other, _on(side, side_keys, other, other_keys), "left_anti")
                    .count()
                )
        side, side_keys, other, other_keys = sides[driving]
        referring = side.dropna(subset=side_keys)
        read, non_null = side.count(), referring.count()
        matched = referring.join(
            other, _on(referring, side_keys, other, other_keys), "left_semi"
        ).count()
        orphaned = orphans[driving]
    else:
        driving = "link"
        lt = plan.link_table
        link_headers = [k for _, k in plan.from_link_keys] + [k for k, _ in plan.link_to_keys]
        link = _side(frames[lt.name], lt, "link", [*link_headers, *props["link"]], plan)
        from_keys = keys("from", ft, plan.from_link_keys, 0)
        link_from = keys("link", lt, plan.from_link_keys, 1)
        link_to, to_keys = (
            keys("link", lt, plan.link_to_keys, 0),
            keys("to", tt, plan.link_to_keys, 1),
        )
        extra_from, extra_to = (
            keys("from", ft, plan.from_to_keys, 0),
            keys("to", tt, plan.from_to_keys, 1),
        )
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
        read, non_null = link.count(), referring.count()
        orphaned = non_null - matched
        orphans["link"] = orphaned

    columns = [
        F.col(_name("from", ft, ft.id_header)).alias("start"),
        F.col(_name("to", tt, tt.id_header)).alias("end"),
    ]
    for role, header in plan.properties:
        table = {"from": ft, "to": tt}.get(role) or plan.link_table
        assert table is not None
        columns.append(F.col(_name(role, table, header)).alias(f"p{len(columns)}"))
    frame = joined.select(columns).persist()
    rows = frame.count()
    headers = [":START_ID", ":END_ID", *[h for _, h in plan.properties]]
    written = write_csv(frame, headers, out, rows)
    result = RelationshipResult(
        plan,
        out,
        rows,
        orphans,
        time.perf_counter() - started,
        multiline=written.multiline,
        driving=driving,
        read=read,
        rejected=read - non_null,
        orphaned=orphaned,
        matched=matched,
        sha256=written.sha256,
    )
    return result, frame
