"""Bolt mode: an import package written over Bolt, for servers you cannot stop (Neo4j Aura).

The files are those admin mode gives ``neo4j-admin``; batches of their rows go to the server as
``UNWIND $rows`` parameters (:mod:`bulk360.load.writer`, or an engine's own writer such as the
Spark connector's). Temporal values travel as the ISO text PostgreSQL wrote and the server
parses them (``date(r[2])``), exactly as ``neo4j-admin`` does.

Idempotent, so a second run or a rerun after a failure gives the same graph:

* nodes are merged on their key properties, backed by a uniqueness constraint per label;
  a label without nodes when the load starts is written with ``CREATE`` (same result, no lookups);
* relationships of a type that has none yet are created; otherwise they are merged between
  their two nodes when no pair of nodes repeats among the mappings of that (start label, type,
  end label) group, and when pairs repeat (two equal relationships between the same nodes, which
  neo4j-admin also creates) the group is deleted in bounded transactions and created again.

Nodes of all labels are written first, then relationships, in rounds of partitions that share
no node (:mod:`bulk360.load.schedule`), so parallel batches do not deadlock; the driver still
retries a transaction the server aborts, and the run row counts those retries.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import ClassVar

import polars as pl
from neo4j import Driver

from bulk360.load import LoadContext, LoadResult, Server
from bulk360.load.cypher import (
    clear_database,
    count_graph,
    create_key_constraint,
    delete_group_query,
    node_query,
    relationship_query,
    scalar,
)
from bulk360.load.target import BoltTarget
from bulk360.package import ImportPackage
from bulk360.package.files import NodeFile, RelationshipFile, scan

__all__ = ["BoltLoader"]


class BoltLoader(BoltTarget):
    """Writes an import package into a running Neo4j over Bolt."""

    server: ClassVar[Server] = "running"
    writes: ClassVar[bool] = True
    swaps: ClassVar[bool] = False

    def __init__(self, context: LoadContext, clear: bool | None = None) -> None:
        super().__init__(context.settings, context.options)
        self.context = context
        self.clear = context.options.clear if clear is None else clear

    # ---- the load ----------------------------------------------------------------------

    def load_title(self) -> str:
        return f"write over Bolt in batches of {self.batch_size:,} rows"

    def load(self, package: ImportPackage) -> LoadResult:
        return self.write(package.node_files(), package.relationship_files())

    def write(
        self, nodes: Sequence[NodeFile], relationships: Sequence[RelationshipFile]
    ) -> LoadResult:
        """Clear (if asked), create the constraints, write every node, then every relationship."""
        seconds: dict[str, float] = {}
        driver = self.connect()
        try:
            with self.failures():
                started = time.perf_counter()
                cleared = self._clear(driver) if self.clear else None
                for node in nodes:
                    create_key_constraint(driver, self.database, node.label, node.keys)
                before_nodes, before_types = count_graph(
                    driver, self.database, [n.label for n in nodes], [r.type for r in relationships]
                )
                merged = [n.label for n in nodes if before_nodes[n.label]]
                node_modes = {n.label: "merge" if n.label in merged else "create" for n in nodes}
                created, replaced, relationship_modes = self._relationship_modes(
                    driver, relationships, before_types
                )
                seconds["prepare"] = round(time.perf_counter() - started, 3)
                writer = self.writer = self.context.writer() or self.driver_writer(driver)
                totals: dict[str, int | None] = {n.label: n.rows for n in nodes}
                totals |= {r.name: r.rows for r in relationships}
                with self.context.reporter.rows_progress(totals) as advance:
                    started = time.perf_counter()
                    writer.write_nodes(
                        [(n, node_query(n, node_modes[n.label])) for n in nodes], advance
                    )
                    seconds["nodes"] = round(time.perf_counter() - started, 3)
                    started = time.perf_counter()
                    writer.write_relationships(
                        [
                            (r, relationship_query(r, relationship_modes[r.group]))
                            for r in relationships
                        ],
                        advance,
                    )
                    seconds["relationships"] = round(time.perf_counter() - started, 3)
                graph_nodes, graph_relationships = count_graph(
                    driver, self.database, [n.label for n in nodes], [r.type for r in relationships]
                )
        finally:
            driver.close()
        # Why transactions ran again (the Spark engine's writer does not say).
        causes = dict(getattr(writer, "retry_causes", {}))
        return LoadResult(
            nodes=writer.nodes_written,
            relationships=writer.relationships_written,
            graph_nodes=graph_nodes,
            graph_relationships=graph_relationships,
            merged_labels=tuple(merged),
            created_types=tuple(created),
            seconds=seconds,
            details={"cleared": cleared, "replaced_groups": replaced}
            | ({"retry_causes": causes} if causes else {}),
            retries=getattr(writer, "retries", 0),
        )

    def swap(self) -> str:
        raise NotImplementedError("bolt mode writes into the database itself")

    def written_so_far(self) -> LoadResult | None:
        if self.writer is None:
            return None
        return LoadResult(
            self.writer.nodes_written,
            self.writer.relationships_written,
            retries=getattr(self.writer, "retries", 0),
        )

    def _count(self, driver: Driver, query: str) -> int:
        return scalar(driver, self.database, query)

    def _clear(self, driver: Driver) -> tuple[int, int]:
        """Empty the database; returns the relationships and nodes it held."""
        counts = (
            self._count(driver, "MATCH ()-[r]->() RETURN count(r)"),
            self._count(driver, "MATCH (n) RETURN count(n)"),
        )
        clear_database(driver, self.database, self.batch_size)
        return counts

    def _relationship_modes(
        self, driver: Driver, relationships: Sequence[RelationshipFile], counts: Mapping[str, int]
    ) -> tuple[list[str], list[str], dict[tuple[str, str, str], str]]:
        """How each (start label, type, end label) group is written, and which types were
        empty and which groups were replaced.

        ``create`` when the type has no relationship yet; ``merge`` on (start, end) when no
        pair of nodes repeats in the group; otherwise the group's relationships are deleted
        first (in bounded transactions) and created again.
        """
        groups: dict[tuple[str, str, str], list[RelationshipFile]] = {}
        for rel in relationships:
            groups.setdefault(rel.group, []).append(rel)
        created: list[str] = []
        replaced: list[str] = []
        modes: dict[tuple[str, str, str], str] = {}
        for (start, kind, end), files in groups.items():
            if counts[kind] == 0:
                modes[(start, kind, end)] = "create"
                created.append(kind)
                continue
            if _pairs_unique(files):
                modes[(start, kind, end)] = "merge"
                continue
            with driver.session(database=self.database) as session:
                session.run(delete_group_query(start, kind, end), size=self.batch_size).consume()
            replaced.append(f"{start}-{kind}->{end}")
            modes[(start, kind, end)] = "create"
        return created, replaced, modes


def _pairs_unique(files: Sequence[RelationshipFile]) -> bool:
    """Whether no pair of nodes repeats among a group's files."""
    pairs = pl.concat(
        [scan(f.path).select(pl.nth(0).alias("s"), pl.nth(1).alias("e")) for f in files]
    )
    counts = pairs.select(total=pl.len(), distinct=pl.struct("s", "e").n_unique())
    total, distinct = counts.collect(engine="streaming").row(0)
    return bool(total == distinct)
