"""Bolt mode with the Spark engine: the executors write through the Neo4j Connector for Apache
Spark (``org.neo4j.spark.DataSource``), in batched ``UNWIND $events`` transactions.

A :class:`bulk360.package.writer.GraphWriter` that bolt mode's loader is given: everything but
the sending is bolt mode's own (the clear, the key constraints, the choice per label and per
relationship group, the counts after the load, the one-line errors). The connector runs bolt
mode's Cypher with its ``query`` option: each row's values arrive as ``event.v0``, ``event.v1``,
... and become the ``r`` list that bolt mode's queries read. So temporal values are parsed by the
server from PostgreSQL's text exactly as in bolt and admin mode (the connector's ``labels`` and
``relationship`` options would convert Spark's types, which have no time of day, no duration and
no local date-time). Numbers, booleans and arrays are typed by Spark as bolt mode types them.

Node batches of one label never share a node (keys are unique), so they are written by every
partition at once. Relationships are written in the rounds of :mod:`bulk360.load.schedule`
(groups of the start and end node ids): one Spark job per round, its rows repartitioned by
their partition, so that the connector's writers at work together never lock the same node;
not through one partition, the connector's own advice against deadlocks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from bulk360.engines.spark.joins import column_of
from bulk360.engines.spark.session import first_line
from bulk360.errors import TargetError
from bulk360.load.schedule import groups_for
from bulk360.package.files import Field, NodeFile, RelationshipFile
from bulk360.package.writer import Progress
from bulk360.plan.tables import TablePlan
from bulk360.plan.types import ARRAY_DELIMITER
from bulk360.settings import Settings

__all__ = ["ConnectorWriter"]

_DATA_SOURCE = "org.neo4j.spark.DataSource"
_NUMBERS = {"long": "long", "double": "double"}


def typed(column: Any, field: Field) -> Any:
    """The Spark value bolt mode sends for ``field``: numbers and booleans typed, an array split
    (an empty text is an empty array), every other value as its text."""
    from pyspark.sql import functions as F

    kind = field.kind.removesuffix("[]")
    if field.kind.endswith("[]"):
        parts = F.when(column == "", F.array()).otherwise(
            F.split(column, re.escape(ARRAY_DELIMITER))
        )
        if kind == "boolean":
            return F.transform(parts, lambda v: v == "true")
        element = _NUMBERS.get(kind, "string")
        return parts.cast(f"array<{element}>")
    if kind == "boolean":
        return column == "true"
    return column.cast(_NUMBERS[kind]) if kind in _NUMBERS else column


def _events(query: str, width: int) -> str:
    """Bolt mode's ``UNWIND $rows AS r ...`` query over the connector's ``event`` rows."""
    values = ", ".join(f"event.v{i}" for i in range(width))
    return f"WITH [{values}] AS r " + query.removeprefix("UNWIND $rows AS r ")


def _schedule(
    start: Any, end: Any, workers: int, rel: RelationshipFile, rows: int, batch: int
) -> list[Any]:
    """The round and partition columns of :func:`bulk360.load.schedule.rounds`, from the ids
    of each row's two nodes (ids are dense per label, so ``id mod N`` spreads them evenly)."""
    from pyspark.sql import functions as F

    monopartite = rel.start.label == rel.end.label
    groups = groups_for(workers, monopartite, rows, batch)
    s, e = F.pmod(start, F.lit(groups)), F.pmod(end, F.lit(groups))
    part = F.least(s, e) if monopartite else s
    return [F.pmod(s + e, F.lit(groups)).alias("round"), part.alias("part")]


class ConnectorWriter:
    """Writes the run's Spark frames through the Neo4j connector."""

    def __init__(
        self,
        settings: Settings,
        frames: Mapping[str, Any],
        tables: Mapping[str, TablePlan],
        relationships: Mapping[str, Any],
        batch_size: int,
        workers: int = 1,
    ) -> None:
        self._workers = max(1, workers)
        self._batch = batch_size
        self._frames = frames
        self._tables = tables
        self._relationships = relationships
        self._uri = settings.neo4j_uri
        self._options = {
            "url": settings.neo4j_uri,
            "authentication.type": "basic",
            "authentication.basic.username": settings.neo4j_username,
            "authentication.basic.password": settings.neo4j_password,
            "database": settings.neo4j_database,
            "batch.size": str(batch_size),
            "transaction.retries": "10",
        }
        self._nodes: dict[str, int] = {}
        self._written: dict[str, int] = {}

    @property
    def nodes_written(self) -> Mapping[str, int]:
        return dict(self._nodes)

    @property
    def relationships_written(self) -> Mapping[str, int]:
        return dict(self._written)

    def _save(self, frame: Any, query: str) -> int:
        rows = int(frame.count())
        if rows:
            frame.write.format(_DATA_SOURCE).mode("Overwrite").options(
                **self._options, query=query
            ).save()
        return rows

    def _node_frame(self, node: NodeFile) -> Any:
        table = self._tables[node.label]
        frame = self._frames[node.label]
        return frame.select(
            [
                typed(frame[column_of(table, f.column)], f).alias(f"v{i}")
                for i, f in enumerate(node.fields)
            ]
        )

    def write_nodes(self, jobs: Sequence[tuple[NodeFile, str]], progress: Progress) -> None:
        with self.connector_errors():
            for node, query in jobs:
                rows = self._save(self._node_frame(node), _events(query, len(node.fields)))
                self._nodes[node.label] = rows
                progress(node.label, rows)

    def _keys(self, node: NodeFile, alias: str) -> Any:
        """A label's ids with its typed key values, ``<alias>0``, ``<alias>1``..."""
        table = self._tables[node.label]
        frame = self._frames[node.label]
        return frame.select(
            frame[column_of(table, table.id_header)].alias(f"{alias}_id"),
            *[
                typed(frame[column_of(table, k.column)], k).alias(f"{alias}{i}")
                for i, k in enumerate(node.key_fields())
            ],
        )

    def write_relationships(
        self, jobs: Sequence[tuple[RelationshipFile, str]], progress: Progress
    ) -> None:
        with self.connector_errors():
            for rel, query in jobs:
                frame = self._relationships[rel.name]
                start, end = self._keys(rel.start, "s"), self._keys(rel.end, "e")
                n_start, n_end = len(rel.start.key_fields()), len(rel.end.key_fields())
                joined = frame.join(start, frame["start"] == start["s_id"]).join(
                    end, frame["end"] == end["e_id"]
                )
                props = [c for c in frame.columns if c.startswith("p")]
                values = [
                    *[joined[f"s{i}"] for i in range(n_start)],
                    *[joined[f"e{i}"] for i in range(n_end)],
                    *[typed(joined[p], f) for p, f in zip(props, rel.fields, strict=True)],
                ]
                count = int(frame.count())
                schedule = _schedule(
                    joined["start"], joined["end"], self._workers, rel, count, self._batch
                )
                rows = joined.select(*[v.alias(f"v{i}") for i, v in enumerate(values)], *schedule)
                self._written[rel.name] = 0
                for round_rows in self._rounds(rows):
                    written = self._save(round_rows, _events(query, len(values)))
                    self._written[rel.name] += written
                    progress(rel.name, written)

    def _rounds(self, rows: Any) -> Iterator[Any]:
        """Each round's rows, one Spark partition per partition of the round."""
        from pyspark.sql import functions as F

        rows = rows.cache()
        try:
            present = sorted(r[0] for r in rows.select("round").distinct().collect())
            parts = self._workers
            for round_ in present:
                chosen = rows.filter(F.col("round") == round_)
                yield chosen.repartition(parts, "part").drop("round", "part")
        finally:
            rows.unpersist()

    @contextmanager
    def connector_errors(self) -> Iterator[None]:
        """A failed write is bolt mode's one line (the connector's message, no stack trace)."""
        try:
            yield
        except Exception as exc:
            if not type(exc).__module__.startswith(("pyspark", "py4j")):
                raise
            nodes = sum(self._nodes.values())
            relationships = sum(self._written.values())
            raise TargetError(
                f"writing to Neo4j at {self._uri} through the Spark connector failed after "
                f"{nodes:,} nodes and {relationships:,} relationships: {first_line(exc)}; the "
                "graph is incomplete, run again to complete it (bolt mode is idempotent)"
            ) from None
