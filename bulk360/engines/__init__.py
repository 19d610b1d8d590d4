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

from collections.abc import Mapping

from bulk360.engines.base import Engine, Progress, SparkOptions, id_order
from bulk360.package.results import Joined
from bulk360.settings import Settings

__all__ = ["ENGINES", "Engine", "Joined", "Progress", "SparkOptions", "id_order", "start_engine"]

ENGINES = ("local", "spark")


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
