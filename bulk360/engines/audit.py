"""The audit scan both engines run per table, in the run's snapshot: how many rows, how many
rejected for a NULL or repeated key, and which values Neo4j cannot hold as they are
(:meth:`bulk360.plan.TablePlan.audit_sql`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from bulk360.errors import IntegrityError
from bulk360.plan import TablePlan

__all__ = ["Audit", "audit_table"]


@dataclass(frozen=True)
class Audit:
    """What one audit scan of a table counted, in the run's snapshot."""

    rows: int
    null_key: int = 0
    duplicate: int = 0
    values: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def nodes(self) -> int:
        """The rows that become nodes."""
        return self.rows - self.null_key - self.duplicate

    def check_read(self, table: TablePlan, rows: int) -> None:
        """A node table's reader must have read the nodes this scan counted."""
        if table.label and rows != self.nodes:
            raise IntegrityError(
                f"source '{table.source}', table {table.schema}.{table.table}: {rows:,} rows "
                f"were read for {self.nodes:,} nodes counted in the same snapshot"
            )


def audit_table(conn: psycopg.Connection[Any], table: TablePlan, snapshot: str) -> Audit:
    """Count ``table``'s rows, rejected keys and changing values as of ``snapshot``."""
    query, names = table.audit_sql()
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
        row = cur.execute(query).fetchone()
    assert row is not None
    counts: dict[str, int] = {}
    values: dict[str, dict[str, int]] = {}
    for (column, kind), count in zip(names, row, strict=True):
        if not column:
            counts[kind] = int(count)
        elif count:
            values.setdefault(column, {})[kind] = int(count)
    null_key = counts.get("null_key", 0)
    keys = counts.get("keys")
    duplicate = counts["rows"] - null_key - keys if keys is not None else 0
    return Audit(counts["rows"], null_key, duplicate, values)
