"""The Python driver's writer: batches of rows as ``UNWIND $rows`` parameters, one managed
transaction each, on ``workers`` threads.

The driver retries a transaction the server aborts (a deadlock, a leader switch, a dropped
connection) for up to the driver's ``max_transaction_retry_time``. Files are parsed by Polars
with the types of their headers; a relationship file's node ids are joined to the node files'
keys, so the server matches nodes on their key properties, never on ids.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import polars as pl
from neo4j import Driver, ManagedTransaction

from bulk360.package.files import NodeFile, RelationshipFile, keys_by_id, node_rows, scan
from bulk360.package.writer import Progress

__all__ = ["Batch", "DriverWriter", "batches", "relationship_rows"]


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
    """Writes batches through ``driver`` into ``database`` on ``workers`` threads, at most two
    per thread in flight; every committed batch is counted and advances its bar."""

    def __init__(
        self, driver: Driver, database: str, batch_size: int, workers: int, bookmarks: Any
    ) -> None:
        self.driver = driver
        self.database = database
        self.batch_size = batch_size
        self.workers = max(1, workers)
        self.bookmarks = bookmarks
        """Each batch's session reads what the earlier ones wrote (a cluster's followers)."""
        self._nodes: dict[str, int] = {}
        self._relationships: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def nodes_written(self) -> Mapping[str, int]:
        return dict(self._nodes)

    @property
    def relationships_written(self) -> Mapping[str, int]:
        return dict(self._relationships)

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
        for rel, _ in jobs:
            self._relationships.setdefault(rel.name, 0)

        def parsed(rel: RelationshipFile, query: str) -> Iterator[Batch]:
            frame = relationship_rows(rel)
            yield from batches(frame, self.batch_size, "relationship", rel.name, query, task)

        self.write_batches([parsed(rel, query) for rel, query in jobs], progress)

    @staticmethod
    def _work(tx: ManagedTransaction, batch: Batch) -> None:
        tx.run(batch.query, rows=batch.rows).consume()

    def write_batches(self, sources: Iterable[Iterator[Batch]], progress: Progress) -> None:
        """Run the batches of all sources on the writer threads, a bounded number in flight."""
        in_flight: set[Future[None]] = set()

        def write(batch: Batch) -> None:
            with self.driver.session(
                database=self.database, bookmark_manager=self.bookmarks
            ) as session:
                session.execute_write(self._work, batch)
            with self._lock:
                counts = self._nodes if batch.kind == "node" else self._relationships
                counts[batch.name] = counts.get(batch.name, 0) + len(batch.rows)
            progress(batch.progress_task, len(batch.rows))

        with ThreadPoolExecutor(self.workers) as pool:
            try:
                for source in sources:
                    for batch in source:
                        if len(in_flight) >= 2 * self.workers:
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
