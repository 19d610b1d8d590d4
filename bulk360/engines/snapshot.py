"""What both engines do in PostgreSQL from bulk360's own process: one exported snapshot per
source, held by a coordinator transaction while the tables are read (every reader, a COPY
session or a JDBC one, joins it with ``SET TRANSACTION SNAPSHOT``), and the audit scan of a
table in that snapshot: how many rows, how many rejected for a NULL or repeated key, and which
values Neo4j cannot hold as they are (:meth:`bulk360.plan.TablePlan.audit_sql`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import IsolationLevel, sql

from bulk360.control import Source
from bulk360.errors import IntegrityError
from bulk360.plan import TablePlan
from bulk360.settings import Settings

__all__ = ["Audit", "audit_table", "exported_snapshots", "snapshot_connection"]


def snapshot_connection(
    settings: Settings, source: Source, **options: Any
) -> psycopg.Connection[Any]:
    """A read-only REPEATABLE READ session of ``source``, able to take or join a snapshot."""
    conn = source.connect(settings, **options)
    conn.isolation_level = IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    return conn


@contextmanager
def exported_snapshots(
    settings: Settings, sources: Iterable[Source], given: Mapping[str, str] | None = None
) -> Iterator[dict[str, str]]:
    """One exported snapshot per source (by name), held open until the block ends; ``given``:
    the snapshots to use instead (held by their exporter, e.g. a replication slot's session)."""
    if given is not None:
        yield {source.name: given[source.name] for source in sources}
        return
    with ExitStack() as stack:
        snapshots: dict[str, str] = {}
        for source in sources:
            conn = stack.enter_context(snapshot_connection(settings, source))
            row = conn.execute("SELECT pg_export_snapshot()").fetchone()
            assert row is not None
            snapshots[source.name] = row[0]
        yield snapshots


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
