"""Bolt mode with the Spark engine: the executors write through the Neo4j Connector for Apache
Spark (``org.neo4j.spark.DataSource``), in batched ``UNWIND $events`` transactions.

Everything but the writing is bolt mode's own (:class:`bulk360.load.bolt.BoltLoader`): the
clear, the key constraints, the choice per label (``CREATE`` into an empty label, else
``MERGE`` on the key) and per relationship group (create, merge, or delete and create again),
the counts after the load, the one-line errors. The connector runs bolt mode's Cypher, with
the connector's ``query`` option: each row's values arrive as ``event.v0``, ``event.v1``, ...
and become the ``r`` list that bolt mode's queries read. So temporal values are parsed by the
server from PostgreSQL's text exactly as in bolt and admin mode (the connector's ``labels`` and
``relationship`` options would convert Spark's types, which have no time of day, no duration and
no local date-time). Numbers, booleans and arrays are typed by Spark as bolt mode types them.

Node batches of one label never share a node (keys are unique), so they are written by every
partition at once; relationships go through one partition, as the connector advises, because
two batches that lock the same node deadlock.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from neo4j import Driver

from bulk360.engines.spark.joins import column_of
from bulk360.engines.spark.session import first_line
from bulk360.errors import TargetError
from bulk360.load.bolt import (
    BoltLoader,
    Field,
    NodeSpec,
    RelationshipSpec,
    node_query,
    relationship_query,
)
from bulk360.plan import TablePlan
from bulk360.types import ARRAY_DELIMITER

__all__ = ["ConnectorLoader"]

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


class ConnectorLoader(BoltLoader):
    """Bolt mode whose writes run on the Spark executors through the Neo4j connector."""

    def __init__(
        self,
        frames: Mapping[str, Any],
        tables: Mapping[str, TablePlan],
        relationships: Mapping[str, Any],
        uri: str,
        auth: tuple[str, str],
        database: str,
        batch_size: int,
        retry_seconds: float,
    ) -> None:
        super().__init__(uri, auth, database, batch_size, 1, retry_seconds)
        self._frames = frames
        self._tables = tables
        self._relationships = relationships
        self._options = {
            "url": uri,
            "authentication.type": "basic",
            "authentication.basic.username": auth[0],
            "authentication.basic.password": auth[1],
            "database": database,
            "batch.size": str(batch_size),
            "transaction.retries": "10",
        }

    def _save(self, frame: Any, query: str) -> int:
        rows = int(frame.count())
        if rows:
            frame.write.format(_DATA_SOURCE).mode("Overwrite").options(
                **self._options, query=query
            ).save()
        return rows

    def _node_frame(self, spec: NodeSpec) -> Any:
        table = self._tables[spec.label]
        frame = self._frames[spec.label]
        return frame.select(
            [
                typed(frame[column_of(table, f.column)], f).alias(f"v{i}")
                for i, f in enumerate(spec.fields)
            ]
        )

    def write_nodes(
        self, driver: Driver, bookmarks: Any, nodes: Sequence[NodeSpec], modes: dict[str, str]
    ) -> None:
        with self.connector_errors():
            for spec in nodes:
                rows = self._save(
                    self._node_frame(spec),
                    _events(node_query(spec, modes[spec.label]), len(spec.fields)),
                )
                self.load.nodes[spec.label] = rows
                self.progress(spec.label, rows)

    def _keys(self, node: NodeSpec, alias: str) -> Any:
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
        self,
        driver: Driver,
        bookmarks: Any,
        relationships: Sequence[RelationshipSpec],
        modes: dict[tuple[str, str, str], str],
    ) -> None:
        with self.connector_errors():
            for spec in relationships:
                frame = self._relationships[spec.name]
                start, end = self._keys(spec.start, "s"), self._keys(spec.end, "e")
                n_start, n_end = len(spec.start.key_fields()), len(spec.end.key_fields())
                joined = frame.join(start, frame["start"] == start["s_id"]).join(
                    end, frame["end"] == end["e_id"]
                )
                props = [c for c in frame.columns if c.startswith("p")]
                values = [
                    *[joined[f"s{i}"] for i in range(n_start)],
                    *[joined[f"e{i}"] for i in range(n_end)],
                    *[typed(joined[p], f) for p, f in zip(props, spec.fields, strict=True)],
                ]
                rows = self._save(
                    joined.select([v.alias(f"v{i}") for i, v in enumerate(values)]).coalesce(1),
                    _events(relationship_query(spec, modes[spec.group]), len(values)),
                )
                self.load.relationships[spec.name] = rows
                self.progress(spec.name, rows)

    @contextmanager
    def connector_errors(self) -> Iterator[None]:
        """A failed write is bolt mode's one line (the connector's message, no stack trace)."""
        try:
            yield
        except Exception as exc:
            if not type(exc).__module__.startswith(("pyspark", "py4j")):
                raise
            nodes = sum(self.load.nodes.values())
            relationships = sum(self.load.relationships.values())
            raise TargetError(
                f"writing to Neo4j at {self.uri} through the Spark connector failed after "
                f"{nodes:,} nodes and {relationships:,} relationships: {first_line(exc)}; the "
                "graph is incomplete, run again to complete it (bolt mode is idempotent)"
            ) from None
