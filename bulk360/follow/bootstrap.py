"""The first start of following: per source a publication and a slot with an exported snapshot,
the graph made equal to exactly those snapshots (bolt mode, or sync's comparison when a run
built the graph), and follow's state filled from the same snapshots, so that each stream starts
where its snapshot ends (no change lost, none applied twice).

The state is read table by table with ``COPY (SELECT <identity>, <the columns the joins read>)``
in the snapshot, in blocks of whole rows parsed by Polars and written into a new store
(:meth:`bulk360.follow.store.StateStore.create`): memory holds a block, whatever the tables'
size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from typing import Any

import polars as pl
import psycopg
from psycopg import sql

from bulk360.control.history import graph_run
from bulk360.errors import IntegrityError
from bulk360.follow.source import ChangeSource
from bulk360.follow.store import Position, StateStore, StoredTable
from bulk360.options import Mode, Reporter, RunOptions
from bulk360.plan import TablePlan
from bulk360.settings import Settings

__all__ = ["BLOCK_BYTES", "Bootstrap"]

BLOCK_BYTES = 8 << 20
"""Bytes of a table's rows parsed and stored at a time."""


class Bootstrap:
    """Slots, graph and state from the same snapshots."""

    def __init__(
        self,
        settings: Settings,
        reporter: Reporter,
        sources: Sequence[tuple[ChangeSource, Sequence[TablePlan]]],
        tables: Sequence[StoredTable],
        workers: int,
        batch_size: int,
        retry_seconds: float,
        clear: bool,
    ) -> None:
        self.settings = settings
        self.reporter = reporter
        self.sources = sources
        self.tables = {t.name: t for t in tables}
        self.workers = workers
        self.batch_size = batch_size
        self.retry_seconds = retry_seconds
        self.clear = clear

    def run(self, store_folder: Any, plan_fingerprint: str) -> StateStore:
        """Create the publications and slots, build the graph, fill the state; on any failure
        the slots and publications made are dropped again."""
        created: list[ChangeSource] = []
        try:
            with ExitStack() as stack:
                points: dict[str, str] = {}
                snapshots: dict[str, str] = {}
                for change, _ in self.sources:
                    with change.connect() as conn:
                        change.create(conn)
                    created.append(change)
                    point, snapshot = stack.enter_context(change.new_slot())
                    points[change.source.name] = point
                    snapshots[change.source.name] = snapshot
                self._build_graph(snapshots)
                with StateStore.create(
                    store_folder, plan_fingerprint, list(self.tables.values())
                ) as store:
                    for change, tables in self.sources:
                        name = change.source.name
                        self.reporter.note(f"reading follow's state of source '{name}'")
                        counts = self._fill(store, change, tables, snapshots[name])
                        store.positions[name] = Position(points[name])
                        for table in tables:
                            if table.label:
                                store.next_ids[table.label] = counts[table.name]
            return store
        except BaseException:
            for change in created:
                with change.connect() as conn:
                    change.drop(conn)
            raise

    def _build_graph(self, snapshots: dict[str, str]) -> None:
        """Bolt mode from the snapshots, or sync's comparison when a run built the graph."""
        from bulk360.pipeline import run  # the pipeline, for the graph's first build

        built = graph_run(self.settings)
        mode: Mode = "sync" if built is not None and not self.clear else "bolt"
        options = RunOptions(
            mode=mode,
            clear=self.clear and mode == "bolt",
            workers=self.workers,
            batch_size=self.batch_size,
            retry_seconds=self.retry_seconds,
        )
        self.reporter.note(
            f"building the graph from the slots' snapshots ({mode} mode, run row of its own)"
        )
        summary = run(self.settings, options, self.reporter, snapshots)
        if summary.status != "succeeded":
            raise IntegrityError(f"the graph's build from the snapshots ended {summary.status}")

    def _fill(
        self,
        store: StateStore,
        change: ChangeSource,
        tables: Sequence[TablePlan],
        snapshot: str,
    ) -> dict[str, int]:
        """Each table's state as of ``snapshot``, into ``store``; the rows of each."""
        counts = {}
        with change.connect() as conn:
            conn.autocommit = False
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
            for table in tables:
                stored = self.tables[table.name]
                counts[table.name] = store.fill(table.name, _blocks(conn, table, stored))
            conn.rollback()
        return counts


def _blocks(
    conn: psycopg.Connection[Any], table: TablePlan, stored: StoredTable
) -> Iterator[pl.DataFrame]:
    """The state's rows of ``table`` in blocks of about :data:`BLOCK_BYTES`, a node table's
    follow ids numbering its rows in the order PostgreSQL sends them."""
    identity = [h.removeprefix("@") for h in stored.identity]
    by_header = {c.header: c for c in table.columns}
    columns = [h for h in stored.schema if h not in stored.identity and h != table.id_header]
    selects = [
        sql.SQL("CASE WHEN {c} IS NULL THEN NULL ELSE concat({c}) END").format(c=sql.Identifier(c))
        for c in identity
    ] + [by_header[h].select for h in columns]
    query = sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT (FORMAT csv)").format(
        sql.SQL(", ").join(selects), sql.Identifier(table.schema, table.table)
    )
    headers = [*stored.identity, *columns]
    numbered = 0

    def parsed(data: bytes) -> pl.DataFrame:
        nonlocal numbered
        frame = pl.read_csv(
            data, has_header=False, new_columns=headers, infer_schema=False, quote_char='"'
        )
        if table.label:
            frame = frame.with_row_index(table.id_header, offset=numbered)
            numbered += frame.height
        return frame.select([pl.col(c).cast(t) for c, t in stored.schema.items()])

    block = bytearray()
    with conn.cursor().copy(query) as copy:
        for row in copy:  # libpq hands COPY's output over a row at a time
            block += row
            if len(block) >= BLOCK_BYTES:
                yield parsed(bytes(block))
                block.clear()
    if block:
        yield parsed(bytes(block))
