"""Step 4 with the Spark engine: relationship mappings as Spark joins, by the procedure of
:mod:`bulk360.engines.joins` (which the local engine runs on Polars frames).

Values are the text PostgreSQL wrote, so equal keys are equal strings on both sides (the plan
pairs join keys of one type family only); node ids are longs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bulk360.engines.joins import relate
from bulk360.engines.spark.files import write_csv
from bulk360.package.results import RelationshipResult
from bulk360.plan import RelationshipPlan, TablePlan
from bulk360.plan.rules import Role

__all__ = ["OPS", "SparkOps", "column_of", "spark_relationship"]


def column_of(table: TablePlan, header: str) -> str:
    """The Spark column that holds ``header`` of ``table``'s frame (``id``, ``c0``, ...)."""
    if header == table.id_header:
        return "id"
    names = [c.header for c in table.columns]
    return f"c{names.index(header)}"


def _name(role: Role, table: TablePlan, header: str) -> str:
    return f"{role}_{column_of(table, header)}"


class SparkOps:
    """The join procedure's frame operations (:mod:`bulk360.engines.joins`) on Spark data
    frames; a side's columns are named ``role_cN``."""

    def side(self, frame: Any, role: Role, plan: RelationshipPlan) -> Any:
        from pyspark.sql import functions as F

        table = plan.table(role)
        side = frame
        for header, values in plan.filters_of(role):
            side = side.filter(F.col(column_of(table, header)).isin(list(values)))
        return side.select(
            [
                F.col(column_of(table, h)).alias(_name(role, table, h))
                for h in plan.side_headers(role)
            ]
        )

    def column(self, plan: RelationshipPlan, role: Role, header: str) -> str:
        return _name(role, plan.table(role), header)

    def join(self, left: Any, left_on: list[str], right: Any, right_on: list[str]) -> Any:
        return left.join(right, _on(left, left_on, right, right_on), "inner")

    def semi(self, left: Any, left_on: list[str], right: Any, right_on: list[str]) -> Any:
        if left_on == right_on:  # by name: a frame and one drawn from it cannot be told apart
            return left.join(right, left_on, "left_semi")
        return left.join(right, _on(left, left_on, right, right_on), "left_semi")

    def drop_nulls(self, frame: Any, columns: list[str]) -> Any:
        return frame.dropna(subset=columns)

    def is_unique(self, frame: Any, columns: list[str]) -> bool:
        rows = frame.select(columns).dropna()
        return bool(rows.count() == rows.distinct().count())

    def numbered(self, frame: Any, column: str) -> Any:
        from pyspark.sql import functions as F

        # Kept: a number drawn again when the frame is computed again would differ.
        return frame.withColumn(column, F.monotonically_increasing_id()).persist()

    def distinct(self, frame: Any, columns: list[str]) -> Any:
        return frame.select(columns).distinct()

    def counts(self, frames: list[Any]) -> list[int]:
        return [int(frame.count()) for frame in frames]


OPS = SparkOps()


def _on(left: Any, lkeys: list[str], right: Any, rkeys: list[str]) -> list[Any]:
    return [left[a] == right[b] for a, b in zip(lkeys, rkeys, strict=True)]


def spark_relationship(
    plan: RelationshipPlan, frames: Mapping[str, Any], out: Path
) -> tuple[RelationshipResult, Any]:
    """Join the sides of ``plan`` by its rules and write ``:START_ID,:END_ID,properties`` to
    ``out``; the rows (``start``, ``end``, ``p2``...) stay cached for a Bolt load (the caller
    unpersists)."""
    from pyspark.sql import functions as F

    started = time.perf_counter()
    related = relate(OPS, plan, {role: frames[plan.table(role).name] for role in plan.roles})
    ft, tt = plan.from_table, plan.to_table
    columns = [
        F.col(_name("from", ft, ft.id_header)).alias("start"),
        F.col(_name("to", tt, tt.id_header)).alias("end"),
    ]
    for role, header in plan.properties:
        columns.append(F.col(_name(role, plan.table(role), header)).alias(f"p{len(columns)}"))
    frame = related.rows.select(columns).persist()
    rows = frame.count()
    written = write_csv(frame, plan.file_headers(), out, rows)
    result = RelationshipResult(
        plan,
        out,
        rows,
        related.ledger,
        orphans=related.orphans,
        seconds=time.perf_counter() - started,
        multiline=written.multiline,
        sha256=written.sha256,
    )
    return result, frame
