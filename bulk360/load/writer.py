"""The Python driver's writer: batches of rows as ``UNWIND $rows`` parameters, one managed
transaction each, on ``workers`` threads.

Node batches run in any order (each node is in one row). Relationship rows run in the rounds of
:mod:`bulk360.load.schedule`, so that batches in flight together never lock the same node: a
round's partitions at once, each on one thread, the rounds one after another. While a file is
written the next one is read and joined to its nodes' keys.

The driver retries a transaction the server aborts (a deadlock, a leader switch, a dropped
connection) for up to the driver's ``max_transaction_retry_time``; every retry is counted
(:attr:`DriverWriter.retries`, the run row's ``transaction_retries``). Files are parsed by
Polars with the types of their headers; a relationship file's node ids are joined to the node
files' keys, so the server matches nodes on their key properties, never on ids.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import polars as pl
from neo4j import Driver, ManagedTransaction
from neo4j.exceptions import Neo4jError

from bulk360.load.schedule import rounds
from bulk360.package.files import NodeFile, RelationshipFile, keys_by_id, node_rows, scan
from bulk360.package.writer import Progress

__all__ = ["MAX_TOUCHED", "Batch", "DriverWriter", "batches", "relationship_rows"]

MAX_TOUCHED = 10_000
"""Keys of one label remembered as touched; beyond, the whole label is."""


@dataclass(frozen=True)
class Batch:
    """One transaction: a query, its rows, what they count as, and the bar they advance."""

    kind: str
    """``node`` (counted as nodes of ``name``) or anything else (relationships of ``name``)."""
    name: str
    query: str
    rows: list[tuple[Any, ...]]
    task: str = ""
    """The progress bar it advances (default: ``name``)."""

    @property
    def progress_task(self) -> str:
        return self.task or self.name


def batches(
    frame: pl.DataFrame, size: int, kind: str, name: str, query: str, task: str = ""
) -> Iterator[Batch]:
    """``frame``'s rows in batches of ``size``, each a transaction of ``query``."""
    for offset in range(0, frame.height, size):
        yield Batch(kind, name, query, frame.slice(offset, size).rows(), task)


def relationship_rows(rel: RelationshipFile) -> pl.DataFrame:
    """A relationship file's rows as its queries read them: the start node's typed key values,
    the end node's, then the typed properties (every end is a node of the run: the joins wrote
    no other)."""
    n_start, n_end = len(rel.start.keys), len(rel.end.keys)
    fields = rel.fields
    return (
        scan(rel.path)
        .select(
            pl.col(rel.headers[0]).cast(pl.Int64).alias("s|id"),
            pl.col(rel.headers[1]).cast(pl.Int64).alias("e|id"),
            *[f.parse(pl.col(f.column)).alias(f.name) for f in fields],
        )
        .join(keys_by_id(rel.start, "s"), on="s|id", how="inner", maintain_order="left")
        .join(keys_by_id(rel.end, "e"), on="e|id", how="inner", maintain_order="left")
        .select(
            *[f"s{i}" for i in range(n_start)],
            *[f"e{i}" for i in range(n_end)],
            *[f.name for f in fields],
        )
        .collect()
    )


class DriverWriter:
    """Writes batches through ``driver`` into ``database`` on ``workers`` threads; every
    committed batch is counted and advances its bar.

    ``scheduled=False`` writes relationship batches in file order on every thread, as bulk360
    did before the rounds (kept for the benchmark's comparison of deadlock retries)."""

    def __init__(
        self,
        driver: Driver,
        database: str,
        batch_size: int,
        workers: int,
        bookmarks: Any,
        scheduled: bool = True,
    ) -> None:
        self.driver = driver
        self.database = database
        self.batch_size = batch_size
        self.workers = max(1, workers)
        self.bookmarks = bookmarks
        """Each batch's session reads what the earlier ones wrote (a cluster's followers)."""
        self.scheduled = scheduled
        self._nodes: dict[str, int] = {}
        self._relationships: dict[str, int] = {}
        self._retries = 0
        self._causes: dict[str, int] = {}
        self._touched: dict[str, set[str] | None] = {}
        self._lock = threading.Lock()

    @property
    def retries(self) -> int:
        """Transactions the server aborted and the driver ran again (deadlocks among them)."""
        return self._retries

    @property
    def retry_causes(self) -> Mapping[str, int]:
        """Why transactions were run again: the server's error code (``Neo.TransientError.
        Transaction.DeadlockDetected``, ...), or ``connection`` when the transaction was lost
        with its connection or at its commit."""
        return dict(self._causes)

    @property
    def nodes_written(self) -> Mapping[str, int]:
        return dict(self._nodes)

    @property
    def relationships_written(self) -> Mapping[str, int]:
        return dict(self._relationships)

    def touch(self, label: str, keys: pl.DataFrame | None = None) -> None:
        """Remember that nodes of ``label`` changed: those of ``keys`` (one key column), or
        any (``None``, or a key of several columns)."""
        with self._lock:
            known = self._touched.setdefault(label, set())
            if known is None:
                return
            if keys is None or keys.width != 1 or len(known) + keys.height > MAX_TOUCHED:
                self._touched[label] = None
            else:
                known.update(str(v) for v in keys.to_series() if v is not None)

    def take_touched(self) -> dict[str, frozenset[str] | None]:
        """What :meth:`touch` remembered since the last call (see
        :data:`bulk360.control.notify.Touched`)."""
        with self._lock:
            taken, self._touched = self._touched, {}
        return {label: None if keys is None else frozenset(keys) for label, keys in taken.items()}

    def write_nodes(self, jobs: Sequence[tuple[NodeFile, str]], progress: Progress) -> None:
        for node, _ in jobs:
            self._nodes.setdefault(node.label, 0)

        def parsed(node: NodeFile, query: str) -> Iterator[Batch]:
            # Parsed when its batches are due, so that one file's rows are in memory at a time.
            frame = node_rows(node, scan(node.path))
            yield from batches(frame, self.batch_size, "node", node.label, query)

        self.write_batches([parsed(node, query) for node, query in jobs], progress)

    def write_relationships(
        self, jobs: Sequence[tuple[RelationshipFile, str]], progress: Progress, task: str = ""
    ) -> None:
        """Each file's rows in rounds that share no node (the next file read meanwhile)."""
        for rel, _ in jobs:
            self._relationships.setdefault(rel.name, 0)
        if not self.scheduled:

            def parsed(rel: RelationshipFile, query: str) -> Iterator[Batch]:
                frame = relationship_rows(rel)
                yield from batches(frame, self.batch_size, "relationship", rel.name, query, task)

            self.write_batches([parsed(rel, query) for rel, query in jobs], progress)
            return
        with ThreadPoolExecutor(1) as reader:
            upcoming = [reader.submit(relationship_rows, rel) for rel, _ in jobs[:1]]
            for index, (rel, query) in enumerate(jobs):
                frame = upcoming.pop().result()
                if index + 1 < len(jobs):
                    upcoming.append(reader.submit(relationship_rows, jobs[index + 1][0]))
                self.write_pairs(frame, rel, "relationship", query, progress, task)

    def write_pairs(
        self,
        frame: pl.DataFrame,
        rel: RelationshipFile,
        kind: str,
        query: str,
        progress: Progress,
        task: str = "",
    ) -> None:
        """Write ``frame``'s rows of ``rel`` (the start node's key values, the end node's, then
        the rest) with ``query``, in rounds whose partitions share no node."""
        n_start, n_end = len(rel.start.keys), len(rel.end.keys)
        columns = frame.columns
        schedule = rounds(
            frame,
            columns[:n_start],
            columns[n_start : n_start + n_end],
            self.workers,
            rel.start.label == rel.end.label,
            self.batch_size,
        )
        with self._lock:
            self._relationships.setdefault(rel.name, 0)
        self.touch(rel.start.label, frame.select(columns[:n_start]))
        self.touch(rel.end.label, frame.select(columns[n_start : n_start + n_end]))

        def partition(rows: pl.DataFrame) -> None:
            for batch in batches(rows, self.batch_size, kind, rel.name, query, task):
                self._write(batch, progress)

        with ThreadPoolExecutor(self.workers) as pool:
            for partitions in schedule:
                _all_done([pool.submit(partition, rows) for rows in partitions])

    def _write(self, batch: Batch, progress: Progress) -> None:
        """One batch in one managed transaction; counted, and its retries counted."""
        if batch.kind == "deleted":  # nodes gone, with their relationships
            self.touch(batch.name)
        attempts = 0
        causes: list[str] = []

        def work(tx: ManagedTransaction) -> None:
            nonlocal attempts
            attempts += 1
            try:
                tx.run(batch.query, rows=batch.rows).consume()
            except Neo4jError as exc:
                causes.append(exc.code or type(exc).__name__)
                raise

        with self.driver.session(
            database=self.database, bookmark_manager=self.bookmarks
        ) as session:
            session.execute_write(work)
        with self._lock:
            self._retries += attempts - 1
            # A retry without a server error in the work: the connection or the commit failed.
            causes += ["connection"] * (attempts - 1 - len(causes))
            for cause in causes[: attempts - 1]:
                self._causes[cause] = self._causes.get(cause, 0) + 1
            counts = self._nodes if batch.kind == "node" else self._relationships
            counts[batch.name] = counts.get(batch.name, 0) + len(batch.rows)
        progress(batch.progress_task, len(batch.rows))

    def write_batches(
        self, sources: Iterable[Iterator[Batch]], progress: Progress, workers: int | None = None
    ) -> None:
        """Run the batches of all sources on the writer threads (``workers``, default all), at
        most two per thread in flight, in any order (node batches: each node is in one row of
        one batch)."""
        in_flight: set[Future[None]] = set()
        threads = workers or self.workers

        def write(batch: Batch) -> None:
            self._write(batch, progress)

        with ThreadPoolExecutor(threads) as pool:
            try:
                for source in sources:
                    for batch in source:
                        if len(in_flight) >= 2 * threads:
                            done, in_flight = wait(in_flight, return_when=FIRST_EXCEPTION)
                            for future in done:
                                future.result()
                        in_flight.add(pool.submit(write, batch))
                for future in in_flight:
                    future.result()
            except BaseException:
                for future in in_flight:
                    future.cancel()
                raise


def _all_done(futures: Sequence[Future[None]]) -> None:
    """Wait for every future; the first failure is raised, the others cancelled."""
    _, pending = wait(futures, return_when=FIRST_EXCEPTION)
    for future in pending:
        future.cancel()
    wait(pending)
    for future in futures:
        if not future.cancelled():
            future.result()
