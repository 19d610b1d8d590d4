"""The Spark engine (``bulk360 run --engine spark``): the local engine's work on a Spark cluster.

* :mod:`.session` — the Spark session, its jars (local files) and the user's ``--spark-conf``;
* :mod:`.read` — JDBC reads split by page ranges, every session in its source's snapshot;
* :mod:`.joins` — relationship mappings as Spark joins, with the local engine's ledger;
* :mod:`.files` — part files written by the executors, joined into the import folder's files;
* :mod:`.writer` — bolt mode's writes through the Neo4j Spark connector.

Node ids are the local engine's: dense global integers, label by label in the same order
(:func:`bulk360.engines.id_order`), numbered from each partition's count, so every id is
assigned once and none is skipped but Neo4j's reserved one. The rows a node table rejects
(NULL or repeated keys) and the values Neo4j cannot hold are counted by the same audit scan, in
the same snapshot, as the local engine's.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from contextlib import ExitStack
from typing import Any

import psycopg

from bulk360.control import Source
from bulk360.engines.base import Progress, SparkOptions, id_order
from bulk360.engines.snapshot import Audit, audit_table, exported_snapshots, snapshot_connection
from bulk360.engines.spark.files import write_csv
from bulk360.engines.spark.joins import column_of, spark_relationship
from bulk360.engines.spark.read import Reader
from bulk360.engines.spark.session import first_line, parse_conf, spark_session
from bulk360.engines.spark.writer import ConnectorWriter
from bulk360.errors import IntegrityError, SourceError, one_line
from bulk360.package.paths import RunPaths
from bulk360.package.results import ExtractResult, Joined, NodeCheck
from bulk360.package.writer import GraphWriter
from bulk360.plan import Plan, TablePlan
from bulk360.plan.ids import RESERVED_ID, IdRange, assign_ranges
from bulk360.settings import Settings

__all__ = ["SparkEngine"]

_ROW_BITS = 33  # monotonically_increasing_id(): partition index << 33 | row in the partition


class SparkEngine:
    def __init__(
        self, settings: Settings, options: SparkOptions, snapshots: Mapping[str, str] | None = None
    ) -> None:
        self.settings = settings
        self.snapshots = snapshots
        self.spark = spark_session(settings, options.master, parse_conf(options.conf))
        self._stack = ExitStack()
        self._tables: dict[str, TablePlan] = {}
        self._relationships: dict[str, Any] = {}
        """Per mapping (``TYPE.mapping_id``): its rows, ``start``, ``end``, ``p2``..."""
        self._frames: dict[str, Any] = {}
        """Per table: its rows (``c0``..), node tables with their ``id``; cached until close."""

    # ---- step 3 ------------------------------------------------------------------------------

    def extract(self, plan: Plan, paths: RunPaths, progress: Progress) -> list[ExtractResult]:
        sources = [plan.source(name) for name in dict.fromkeys(t.source for t in plan.tables)]
        found = self._stack.enter_context(
            exported_snapshots(self.settings, sources, self.snapshots)
        )
        readers = {s.name: Reader(self.spark, self.settings, s, found[s.name]) for s in sources}
        for source in sources:
            self.probe(readers[source.name], source)
        by_name = {s.name: s for s in sources}
        audits = {
            t.name: self._audit(t, by_name[t.source], found[t.source])
            for t in plan.tables
            if t.needs_audit
        }
        from pyspark.sql import functions as F

        seconds: dict[str, float] = {}
        rows: dict[str, Any] = {}
        counts: dict[str, int] = {}
        for table in plan.tables:
            started = time.perf_counter()
            frame = readers[table.source].table(table)
            if table.label:  # numbered from the partitions' counts, which need stable partitions
                frame = frame.withColumn("part", F.spark_partition_id()).withColumn(
                    "row", F.monotonically_increasing_id().bitwiseAND((1 << _ROW_BITS) - 1)
                )
            rows[table.name] = frame.persist()
            counts[table.name] = self._count(table, rows[table.name])
            seconds[table.name] = time.perf_counter() - started
        ranges = assign_ranges([(t.name, counts[t.name]) for t in id_order(plan)])
        self._tables = {t.label: t for t in plan.tables if t.label}
        results = []
        for table in plan.tables:
            audit = audits.get(table.name)
            if audit is not None:
                audit.check_read(table, counts[table.name])
            result = self._write(
                table, rows[table.name], counts[table.name], paths, audit, ranges.get(table.name)
            )
            results.append(
                dataclasses.replace(result, seconds=seconds[table.name] + result.seconds)
            )
            progress(table, result.bytes)
        return results

    def probe(self, reader: Reader, source: Source) -> None:
        """One JDBC round trip per source before anything is written: reachable, driver found."""
        try:
            reader.query("SELECT 1 AS ok").collect()
        except Exception as exc:
            raise SourceError(
                f"source '{source.name}': Spark cannot read it over JDBC ({reader.url}): "
                f"{first_line(exc)}"
            ) from None

    def _audit(self, table: TablePlan, source: Source, snapshot: str) -> Audit:
        """The local engine's audit scan, in the snapshot (a psycopg session of this process)."""
        try:
            with snapshot_connection(self.settings, source) as conn:
                return audit_table(conn, table, snapshot)
        except psycopg.Error as exc:
            raise _reading_failed(table, exc) from None

    def _count(self, table: TablePlan, frame: Any) -> int:
        try:
            return int(frame.count())
        except Exception as exc:
            raise _reading_failed(table, exc) from None

    def _numbered(self, frame: Any, ids: IdRange) -> Any:
        """Each row's dense id: the range's offset, the rows of earlier partitions, its row."""
        from pyspark.sql import functions as F

        sizes = sorted(
            (int(r["part"]), int(r["count"])) for r in frame.groupBy("part").count().collect()
        )
        starts: list[Any] = []
        total = 0
        for part, size in sizes:
            starts += [F.lit(part), F.lit(total)]
            total += size
        number = (
            F.lit(ids.offset)
            + (F.create_map(*starts)[F.col("part")] if starts else F.lit(0))
            + F.col("row")
        )
        if ids.offset <= RESERVED_ID:
            number = F.when(number >= RESERVED_ID, number + 1).otherwise(number)
        columns = [c for c in frame.columns if c.startswith("c")]
        return frame.select(number.cast("long").alias("id"), *columns)

    def _write(
        self,
        table: TablePlan,
        frame: Any,
        count: int,
        paths: RunPaths,
        audit: Audit | None,
        ids: IdRange | None,
    ) -> ExtractResult:
        """A node table numbered and written to its file; ``seconds``: this step's."""
        started = time.perf_counter()
        path = paths.file_of(table)
        size, digest, multiline = 0, "", False  # a table read for the joins only: no file
        if table.label:
            assert ids is not None
            numbered = self._numbered(frame, ids).persist()
            frame.unpersist()
            frame = numbered
            columns = [column_of(table, h) for h in table.headers()]
            written = write_csv(frame.select(columns), table.headers(), path, count)
            size, digest, multiline = written.bytes, written.sha256, written.multiline
        self._frames[table.name] = frame
        return ExtractResult.of(
            table,
            path,
            count,
            audit,
            bytes=size,
            seconds=time.perf_counter() - started,
            sha256=digest,
            multiline=multiline,
            ids=IdRange(ids.offset, count) if ids else None,
        )

    # ---- step 4 ------------------------------------------------------------------------------

    def transform(self, plan: Plan, extracted: list[ExtractResult], paths: RunPaths) -> Joined:
        checks = {r.table.name: self._check(r) for r in extracted if r.table.label and r.ids}
        relationships = []
        for rel in plan.relationships:
            result, frame = spark_relationship(rel, self._frames, paths.relationship_file(rel.name))
            relationships.append(result)
            self._relationships[rel.name] = frame
        return Joined(checks, relationships)

    def graph_writer(self, batch_size: int, workers: int) -> GraphWriter | None:
        """Bolt mode's writes through the Neo4j connector, from this run's frames (a resumed
        run, which extracted nothing, writes with the Python driver: None)."""
        if not self._frames:
            return None
        return ConnectorWriter(
            self.settings, self._frames, self._tables, self._relationships, batch_size, workers
        )

    def _check(self, result: ExtractResult) -> NodeCheck:
        """The label's ids are exactly its range and its keys unique (neo4j-admin checks
        nothing of actual ids)."""
        from pyspark.sql import functions as F

        table, ids = result.table, result.ids
        assert table.label is not None and ids is not None
        frame = self._frames[table.name]
        keys = [column_of(table, table.header_of(k)) for k in table.key_columns]
        row = frame.agg(
            F.min("id").alias("first"),
            F.max("id").alias("last"),
            F.count_distinct("id").alias("ids"),
            F.count_distinct(*keys).alias("keys"),
        ).collect()[0]
        where = f":{table.label} ({table.source}.{table.table})"
        first, last = row["first"], row["last"]
        if row["ids"] != result.rows or not ids.holds(first or 0, last or 0, result.rows):
            raise IntegrityError(
                f"{where}: node ids {first}..{last} of {result.rows:,} rows are not the label's "
                f"range from {ids.offset}; nothing was imported"
            )
        if row["keys"] != result.rows:
            raise IntegrityError(
                f"{where}: {result.rows - row['keys']:,} rows repeat a key; nothing was imported"
            )
        return NodeCheck(table.label, first, last)

    def close(self) -> None:
        for frame in [*self._frames.values(), *self._relationships.values()]:
            frame.unpersist()
        self._frames.clear()
        self._relationships.clear()
        self._stack.close()


def _reading_failed(table: TablePlan, exc: BaseException) -> SourceError:
    where = f"source '{table.source}', table {table.schema}.{table.table}"
    return SourceError(f"{where}: reading failed: {first_line(exc) or one_line(exc)}")
