"""What every engine implements (:class:`Engine`) and what the engines share, below
:mod:`bulk360.engines` (which starts one by name)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bulk360.package.paths import RunPaths
from bulk360.package.results import ExtractResult, Joined
from bulk360.package.writer import GraphWriter
from bulk360.plan import Plan, TablePlan

__all__ = ["Engine", "Progress", "SparkOptions", "id_order"]

Progress = Callable[[TablePlan, int], None]
"""``advance(table, nbytes)``: how much of a table has been read."""


class Engine(Protocol):
    """Reads, checks, joins and writes for one run; :meth:`close` ends what it started."""

    def extract(self, plan: Plan, paths: RunPaths, progress: Progress) -> list[ExtractResult]:
        """Every table of ``plan`` into its file of ``paths`` (node tables with their ids)."""
        ...

    def transform(self, plan: Plan, extracted: list[ExtractResult], paths: RunPaths) -> Joined:
        """The node id checks and every relationship mapping's file."""
        ...

    def graph_writer(self, batch_size: int, workers: int) -> GraphWriter | None:
        """The engine's own Bolt writer for bolt mode (None: the Python driver's); relationship
        batches by the rounds of :mod:`bulk360.load.schedule` for ``workers`` writers."""
        ...

    def close(self) -> None: ...


def id_order(plan: Plan) -> list[TablePlan]:
    """Node tables in the order their ids are given: smallest first, so the largest is last
    (only it need not be counted before it is read; see :mod:`bulk360.plan.ids`)."""
    nodes = [t for t in plan.tables if t.label]
    return sorted(nodes, key=lambda t: (t.size_bytes, t.name))


@dataclass(frozen=True)
class SparkOptions:
    """Where the Spark engine runs: ``master`` (``local[*]``, ``spark://host:7077``, ...) and
    extra ``spark.*`` settings given as ``key=value``."""

    master: str = "local[*]"
    conf: tuple[str, ...] = ()
