"""Stage 1: parallel ``COPY (SELECT ...) TO STDOUT`` readers, one consistent snapshot per source.

For each source a coordinator transaction exports a snapshot (``pg_export_snapshot``) and stays
open while that source's tables are read; every reader joins it with ``SET TRANSACTION
SNAPSHOT``, so all tables of a source are read as of one instant even though they are read in
parallel by a pool of ``workers`` connections. The COPY stream goes to its CSV file as it
arrives: memory stays bounded whatever the size of the table, and PostgreSQL has already
formatted every value for Neo4j (see :mod:`bulk360.types`), so no value is parsed here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import IsolationLevel, sql

from bulk360.errors import SourceError
from bulk360.plan import Plan, TablePlan
from bulk360.settings import Settings
from bulk360.types import SESSION_SETTINGS

__all__ = ["ExtractResult", "Extractor"]

# Sent as libpq `options`, so every reader's session formats values the same way.
_SESSION_OPTIONS = " ".join(f"-c {name}={value}" for name, value in SESSION_SETTINGS.items())
_WRITE_BUFFER = 1 << 20
_PROGRESS_EVERY = 4 << 20


@dataclass(frozen=True)
class ExtractResult:
    """What one reader wrote."""

    table: TablePlan
    path: Path
    rows: int
    rows_null_key: int
    bytes: int
    seconds: float


class _Cancelled(Exception):
    """Another reader failed; this one stops early."""


class Extractor:
    """Reads every table of a plan into its CSV file, ``workers`` tables at a time."""

    def __init__(
        self,
        settings: Settings,
        plan: Plan,
        path_of: Callable[[TablePlan], Path],
        workers: int,
        on_progress: Callable[[TablePlan, int], None] | None = None,
    ) -> None:
        self._settings = settings
        self._plan = plan
        self._path_of = path_of
        self._workers = max(1, workers)
        self._on_progress = on_progress or (lambda table, nbytes: None)
        self._failed = threading.Event()

    def _connect(self, source_name: str) -> psycopg.Connection[Any]:
        source = self._plan.source(source_name)
        conn = source.connect(self._settings, options=_SESSION_OPTIONS)
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        return conn

    @contextmanager
    def _snapshots(self) -> Iterator[dict[str, str]]:
        """Export one snapshot per source, held open until every reader is done."""
        with ExitStack() as stack:
            snapshots: dict[str, str] = {}
            for source in {t.source for t in self._plan.tables}:
                conn = stack.enter_context(self._connect(source))
                row = conn.execute("SELECT pg_export_snapshot()").fetchone()
                assert row is not None
                snapshots[source] = row[0]
            yield snapshots

    def _read(self, table: TablePlan, snapshot: str) -> ExtractResult:
        started = time.perf_counter()
        path = self._path_of(table)
        where = f"source '{table.source}', table {table.schema}.{table.table}"
        try:
            with self._connect(table.source) as conn, conn.cursor() as cur:
                cur.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
                null_keys = 0
                count_sql = table.null_key_count_sql()
                if count_sql is not None:
                    row = cur.execute(count_sql).fetchone()
                    null_keys = int(row[0]) if row else 0
                written = 0
                pending = 0
                with path.open("wb", buffering=_WRITE_BUFFER) as out:
                    out.write((",".join(table.headers()) + "\n").encode())
                    with cur.copy(table.copy_sql()) as copy:
                        for chunk in copy:
                            out.write(chunk)
                            pending += len(chunk)
                            if pending >= _PROGRESS_EVERY:
                                if self._failed.is_set():
                                    raise _Cancelled
                                self._on_progress(table, pending)
                                written += pending
                                pending = 0
                    rows = cur.rowcount
                self._on_progress(table, pending)
                written += pending
        except psycopg.Error as exc:
            detail = exc.diag.message_primary or type(exc).__name__
            raise SourceError(f"{where}: reading failed: {detail}") from None
        return ExtractResult(table, path, rows, null_keys, written, time.perf_counter() - started)

    def run(self) -> list[ExtractResult]:
        """Read all tables, biggest first; the first failure stops the others."""
        tables = sorted(self._plan.tables, key=lambda t: t.size_bytes, reverse=True)
        with self._snapshots() as snapshots, ThreadPoolExecutor(self._workers) as pool:
            futures = [pool.submit(self._read, t, snapshots[t.source]) for t in tables]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            if any(f.exception() for f in done):
                self._failed.set()
                for future in futures:
                    future.cancel()
                wait(futures)
            errors = [
                f.exception()
                for f in futures
                if not f.cancelled()
                and f.exception() is not None
                and not isinstance(f.exception(), _Cancelled)
            ]
            if errors:
                raise errors[0]  # type: ignore[misc]
            return [f.result() for f in futures]
