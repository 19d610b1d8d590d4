"""Dense global node ids: every node of a run gets an integer id, unique across all labels.

neo4j-admin then imports with ``--id-type=actual``: the ids are the node records themselves, so
it skips its own id work (hashing, sorting and checking string ids, then looking them up again
for every relationship end). It validates nothing in that mode, so bulk360 guarantees what it
would have checked: ids unique and dense, and relationships only between nodes that are written.

Each label gets a range of ids, in the order of the plan's node tables, smallest first so that
only the largest table's rows need not be counted before its COPY: PostgreSQL numbers each
table's rows in its reader's SELECT (``row_number() OVER ()``) from the start of its range. Id
4294967295 is reserved by Neo4j and skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import sql

__all__ = ["RESERVED_ID", "IdRange", "assign_ranges"]

RESERVED_ID = 4294967295
"""Neo4j reserves this id (its 32-bit 'no record' value): no node may have it."""


@dataclass(frozen=True)
class IdRange:
    """The ids of one label: ``offset`` onwards, one per row, skipping :data:`RESERVED_ID`."""

    offset: int
    count: int | None
    """How many rows; None for the last label (its count is whatever its reader reads)."""

    def id_at(self, row: int) -> int:
        """The id of the range's ``row``-th row (from 0)."""
        number = self.offset + row
        return number + 1 if self.offset <= RESERVED_ID <= number else number

    @property
    def end(self) -> int | None:
        """The first id after the range (None when open)."""
        if self.count is None:
            return None
        return self.id_at(self.count - 1) + 1 if self.count else self.offset

    def expression(self) -> sql.Composable:
        """The SQL of a row's id, for a SELECT whose rows are numbered by ``row_number()``."""
        number = sql.SQL("{} + row_number() OVER () - 1").format(sql.Literal(self.offset))
        end = self.end
        if self.offset > RESERVED_ID or (end is not None and end <= RESERVED_ID):
            return number  # the range cannot reach the reserved id
        return sql.SQL("(CASE WHEN {n} >= {r} THEN {n} + 1 ELSE {n} END)").format(
            n=number, r=sql.Literal(RESERVED_ID)
        )

    def holds(self, first: int, last: int, rows: int) -> bool:
        """Whether ``rows`` ids from ``first`` to ``last`` are exactly the range's."""
        if self.count is not None and rows != self.count:
            return False
        if rows == 0:
            return True
        return first == self.id_at(0) and last == self.id_at(rows - 1)


def assign_ranges(counts: Sequence[tuple[str, int | None]]) -> dict[str, IdRange]:
    """Consecutive ranges, in the order given; only the last label's count may be None."""
    ranges: dict[str, IdRange] = {}
    offset = 0
    for index, (label, count) in enumerate(counts):
        if count is None and index != len(counts) - 1:
            raise ValueError(f"only the last label may have no count, not {label}")
        ranges[label] = IdRange(offset, count)
        end = ranges[label].end
        offset = end if end is not None else offset
    return ranges
