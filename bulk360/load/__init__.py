"""Steps 6 and 7: an import package into Neo4j, behind one :class:`Loader` interface.

One module per mode, each with one loader class, and :data:`LOADERS`, the registry the pipeline
asks (:func:`loader_for`):

* :mod:`.admin`: ``neo4j-admin database import full`` into a staging store, then the swap
  (the server stopped);
* :mod:`.bolt`: the files written over Bolt in ``UNWIND`` batches (the server running);
* :mod:`.sync`: only what changed since the run that built the graph, over Bolt;
* :mod:`.csv`: nothing: the run stops at its published folder.

What they share: the Bolt writer (:mod:`.writer`, or an engine's own, e.g. the Spark connector's)
and the Cypher bolt and sync both run (:mod:`.cypher`). A loader says what it needs, checks it
before anything is read (:meth:`Loader.preflight`), and reports what it wrote in one
:class:`LoadResult`, which the ledger reads. To add a mode: a module here with a loader class,
and an entry in :data:`LOADERS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from bulk360.modes import LOADERS, Registered

if TYPE_CHECKING:
    from bulk360.options import Reporter, RunOptions
    from bulk360.package import ImportPackage
    from bulk360.package.writer import GraphWriter
    from bulk360.settings import Settings

__all__ = [
    "LOADERS",
    "LoadContext",
    "LoadResult",
    "Loader",
    "Registered",
    "loader_for",
]

Server = Literal["stopped", "running"] | None


@dataclass(frozen=True)
class LoadResult:
    """What a loader wrote, and what the graph holds afterwards: the ledger's input."""

    nodes: Mapping[str, int]
    """Nodes written per label."""
    relationships: Mapping[str, int]
    """Relationships written per mapping (``TYPE.<mapping id>``)."""
    graph_nodes: Mapping[str, int] = field(default_factory=dict)
    """Nodes per label in the graph after the load (empty: not counted)."""
    graph_relationships: Mapping[str, int] = field(default_factory=dict)
    """Relationships per type in the graph after the load (empty: not counted)."""
    merged_labels: tuple[str, ...] = ()
    """Labels that held nodes before the load: the graph holds at least what was written."""
    created_types: tuple[str, ...] = ()
    """Types that held no relationship before the load: the graph holds exactly what was
    written."""
    changes: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Sync: per label and mapping, the rows inserted, updated and deleted."""
    seconds: Mapping[str, float] = field(default_factory=dict)
    """Where the load's time went (``prepare``, ``nodes``, ``relationships``, ``diff``...)."""
    details: Mapping[str, Any] = field(default_factory=dict)
    """What the mode has to say beyond that (neo4j-admin's totals, what a clear removed)."""
    notes: tuple[str, ...] = ()
    """Lines for the user."""
    diffed_against: int | None = None
    """The run whose package a sync compared the run's with."""
    retries: int = 0
    """Bolt transactions the server aborted (a deadlock, a dropped connection) and the
    driver ran again."""
    touched: Mapping[str, frozenset[str] | None] | None = None
    """What changed, told to the API's cache (:data:`bulk360.control.notify.Touched`): the
    whole graph unless a mode knows better (a sync names the keys it touched)."""


@dataclass(frozen=True)
class LoadContext:
    """What a loader is given."""

    settings: Settings
    options: RunOptions
    reporter: Reporter
    note: Callable[[str], None]
    """Tells the user something (the run's notes)."""
    writer: Callable[[], GraphWriter | None] = lambda: None
    """The engine's own Bolt writer, if it has one (the Spark connector's); None: the Python
    driver's. Asked when the load begins, after the engine ran."""


class Loader(Protocol):
    """Loads an import package into Neo4j in one mode."""

    server: ClassVar[Server]
    """What the loader needs of the Neo4j server: ``stopped``, ``running`` or nothing."""
    writes: ClassVar[bool]
    """Whether it has a load step (csv mode has none)."""
    swaps: ClassVar[bool]
    """Whether it has a swap step after the load."""

    def preflight(self) -> None:
        """Check the target before anything is read or written (raise one line)."""

    def load_title(self) -> str:
        """The load step's title, e.g. ``write over Bolt in batches of 5,000 rows``."""

    def load(self, package: ImportPackage) -> LoadResult:
        """Write ``package`` into Neo4j (or its staging store)."""

    def swap(self) -> str:
        """Put what :meth:`load` wrote in place; a line for the user."""

    def written_so_far(self) -> LoadResult | None:
        """After a failed load, what it had written (None: nothing that the ledger can say)."""

    def close(self) -> None:
        """At the run's end: stop what :meth:`preflight` started for the load (admin mode's
        waiting neo4j-admin)."""


def loader_for(mode: str, context: LoadContext) -> Loader:
    """The loader of ``mode`` (one of :data:`LOADERS`)."""
    module, _, name = LOADERS[mode].loader.partition(":")
    loader: Loader = getattr(importlib.import_module(module), name)(context)
    return loader
