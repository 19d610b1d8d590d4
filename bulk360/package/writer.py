"""What writes a package's rows into Neo4j over Bolt: the seam between a loader, which decides
the Cypher, and whoever sends the rows (the Python driver's writer threads,
:mod:`bulk360.load.writer`, or an engine's own, such as the Spark connector,
:mod:`bulk360.engines.spark.writer`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from bulk360.package.files import NodeFile, RelationshipFile

__all__ = ["GraphWriter", "Progress"]

Progress = Callable[[str, int], None]
"""``advance(task, rows)``: rows committed for a progress bar."""


class GraphWriter(Protocol):
    """Sends the rows of node and relationship files with a loader's queries.

    Each query starts ``UNWIND $rows AS r`` and reads ``r`` as a list: a node file's typed values
    in the order of its fields; a relationship file's start key values, end key values, then its
    typed properties. Node rows of one label never share a node; the writer may send them in
    parallel.
    """

    @property
    def nodes_written(self) -> Mapping[str, int]:
        """Nodes committed so far, per label."""
        ...

    @property
    def relationships_written(self) -> Mapping[str, int]:
        """Relationships committed so far, per mapping name."""
        ...

    def write_nodes(self, jobs: Sequence[tuple[NodeFile, str]], progress: Progress) -> None:
        """Every row of each file with its query; a task per label."""

    def write_relationships(
        self, jobs: Sequence[tuple[RelationshipFile, str]], progress: Progress
    ) -> None:
        """Every row of each file with its query (its nodes are written); a task per mapping."""
