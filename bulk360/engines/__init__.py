"""Steps 3 and 4 of a run — read the mapped tables, check node ids, join relationships and write
the import package's files — behind one small interface, with two engines:

* :mod:`bulk360.engines.local` (the default): parallel ``COPY ... TO STDOUT`` readers and Polars
  joins in this process;
* :mod:`bulk360.engines.spark` (``--engine spark``): the same SELECTs over JDBC, partitioned, and
  the same joins as Spark joins, on a Spark cluster (or Spark's local mode).

Everything around them is shared and does not know which engine ran: the validation and the
plan (:mod:`bulk360.plan`, whose join rules both engines execute), the import package
(:mod:`bulk360.package`), the loaders (:mod:`bulk360.load`) and the ledger. An engine returns
:mod:`bulk360.package.results`; the files it writes have the layout and headers of
:class:`bulk360.plan.TablePlan` whichever engine wrote them. Engines and loaders meet only at
the package: an engine may offer its own Bolt writer (:meth:`Engine.graph_writer`), which bolt
mode is then given.

To add an engine: a folder here with a class of this interface, and an entry in
:data:`ENGINES`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from bulk360.package.paths import RunPaths
from bulk360.package.results import ExtractResult, Joined
from bulk360.package.writer import GraphWriter
from bulk360.plan import Plan, TablePlan
from bulk360.settings import Settings

__all__ = ["ENGINES", "Engine", "Joined", "SparkOptions", "id_order", "start_engine"]

ENGINES = ("local", "spark")

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


def start_engine(
    settings: Settings,
    name: str,
    workers: int,
    spark: SparkOptions | None = None,
    snapshots: Mapping[str, str] | None = None,
) -> Engine:
    """The engine called ``name`` (one of :data:`ENGINES`), ready to run.

    ``snapshots``: per source, an exported snapshot to read in (a replication slot's, when
    follow starts); None: the engine exports one per source itself."""
    if name == "spark":
        from bulk360.engines.spark import SparkEngine  # pyspark is an optional extra

        return SparkEngine(settings, spark or SparkOptions(), snapshots)
    from bulk360.engines.local import LocalEngine

    return LocalEngine(settings, workers, snapshots)
