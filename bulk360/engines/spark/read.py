"""Reading the mapped tables over JDBC, partitioned, all in one snapshot per source.

For each source a coordinator transaction (psycopg, in this process:
:func:`bulk360.engines.snapshot.exported_snapshots`) exports a snapshot and stays open until
the run's joins are done. Every JDBC session
Spark opens, on whichever executor, joins it before its query (``sessionInitStatement``: the
isolation level, ``SET TRANSACTION SNAPSHOT`` and the session settings the local readers use),
so all partitions of all tables of a source are read as of one instant.

A table is split into ranges of its pages (``ctid`` ranges, a TID range scan each), so every
reader gets about the same share of the table whatever its key's type or distribution. A table
whose nodes ``DISTINCT ON`` picks, a view or a foreign table is read by one reader.
"""

from __future__ import annotations

from functools import reduce
from typing import Any

from bulk360.control import Source
from bulk360.engines.spark.session import JDBC_DRIVER
from bulk360.plan import TablePlan
from bulk360.plan.types import SESSION_SETTINGS
from bulk360.settings import Settings

__all__ = ["PAGE_BYTES", "Reader", "block_ranges"]

PAGE_BYTES = 8192
_PARTITION_BYTES = 32 << 20
_MAX_PARTITIONS = 64


def block_ranges(size_bytes: int) -> list[tuple[int, int | None]]:
    """Page ranges of about 32 MiB each; the last is open (the table may have grown since its
    size was read, which the snapshot hides but its pages do not)."""
    pages = max(1, -(-size_bytes // PAGE_BYTES))
    parts = max(1, min(_MAX_PARTITIONS, -(-size_bytes // _PARTITION_BYTES)))
    step = -(-pages // parts)
    starts = list(range(0, pages, step))
    return [
        (start, starts[i + 1] if i + 1 < len(starts) else None) for i, start in enumerate(starts)
    ]


class Reader:
    """JDBC reads of one source's tables, each session in the source's snapshot."""

    def __init__(self, spark: Any, settings: Settings, source: Source, snapshot: str) -> None:
        info = source.conninfo(settings)
        self.spark = spark
        self.source = source
        self.url = f"jdbc:postgresql://{info['host']}:{info['port']}/{info['dbname']}"
        settings_sql = "; ".join(
            f"SET {name} TO '{value}'" for name, value in SESSION_SETTINGS.items()
        )
        self.properties = {
            "user": str(info["user"]),
            "password": str(info.get("password") or ""),
            "driver": JDBC_DRIVER,
            # A fetch size makes Spark read in a transaction (autocommit off), which the
            # snapshot needs, and streams the rows instead of holding a partition in memory.
            "fetchsize": "10000",
            "sessionInitStatement": (
                "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; "
                f"SET TRANSACTION SNAPSHOT '{snapshot}'; {settings_sql}"
            ),
        }

    def query(self, text: str) -> Any:
        """A one-partition DataFrame of ``text``, in the snapshot."""
        return self.spark.read.jdbc(self.url, f"({text}) AS q", properties=self.properties)

    def table(self, table: TablePlan) -> Any:
        """The table's rows as text, columns ``c0``..``cn``, one partition per page range."""
        if not table.splittable:
            return self.query(table.text_sql().as_string(None))
        frames = [
            self.query(table.text_sql(r).as_string(None)) for r in block_ranges(table.size_bytes)
        ]
        return reduce(lambda a, b: a.union(b), frames)
