"""What a follow session holds: its options, its summary, each source's stream and window
(:class:`SourceSession`), and a connection lost mid-stream as :class:`ConnectionLost`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from bulk360.errors import ConfigError, SourceError
from bulk360.follow.changes import (
    Decoder,
    Expected,
    WindowBuilder,
)
from bulk360.follow.source import ChangeSource
from bulk360.follow.stream import ReplicationStream
from bulk360.follow.transform import (
    Applied,
    Formatter,
)
from bulk360.options import WriteOptions
from bulk360.plan import TablePlan

__all__ = [
    "AGAIN",
    "DROP",
    "ConnectionLost",
    "FollowOptions",
    "FollowSummary",
    "SourceSession",
    "lost",
]


@dataclass(frozen=True)
class FollowOptions(WriteOptions):
    """How a follower runs (and writes: :class:`~bulk360.options.WriteOptions`)."""

    once: bool = False
    """Apply everything committed up to the start, then stop (for cron)."""
    max_lag: float = 1.0
    """Seconds a window may gather changes before it is applied."""
    max_rows: int = 20_000
    """Changed rows a window holds at most (a larger transaction is applied in parts)."""
    clear: bool = False
    """Build the graph and the state anew from the sources (the first start, or a state that
    cannot be used): the graph cleared and written by bolt mode."""
    marker_seconds: float = 1.0
    """How often a running follower asks each source whether it is caught up (a marker)."""


@dataclass
class FollowSummary:
    """What a follow session did."""

    run_id: int
    started: str = "state"
    """``snapshot`` (slots created, the graph made from their snapshots) or ``state``."""
    transactions: int = 0
    changes: int = 0
    windows: int = 0
    applied: Applied = field(default_factory=Applied)
    positions: dict[str, str] = field(default_factory=dict)
    lags: list[float] = field(default_factory=list)
    """Seconds from each window's last commit to its checkpoint."""
    seconds: float = 0.0
    began: float = field(default_factory=time.perf_counter)
    stages: dict[str, float] = field(default_factory=dict)
    """Seconds spent per stage: ``decode`` (the stream's messages into windows), ``format``
    (the source formats the window's values), ``transform`` (the change set against the
    state), ``write`` (Neo4j), ``checkpoint`` (the state and the position on disk)."""

    def timed(self, stage: str, since: float) -> float:
        """Add the time since ``since`` to ``stage``; now."""
        now = time.perf_counter()
        self.stages[stage] = self.stages.get(stage, 0.0) + now - since
        return now


@dataclass
class SourceSession:
    """One source while it is followed."""

    change: ChangeSource
    tables: list[TablePlan]
    identities: dict[str, tuple[str, ...]]
    expected: list[Expected]
    formatters: dict[str, Formatter]
    conn: Any = None
    """A plain session: the formatting of a window's values, and the markers."""
    stream: ReplicationStream | None = None
    decoder: Decoder | None = None
    builder: WindowBuilder | None = None
    target: str | None = None
    """``--once``: the marker that ends the session for this source."""
    done: bool = False
    markers: dict[str, datetime] = field(default_factory=dict)
    """Markers written and not yet back, with when they were written (the source's clock)."""
    marked: float = 0.0

    @property
    def name(self) -> str:
        return self.change.source.name


AGAIN = "run bulk360 follow again: it picks up where it stopped"


DROP = "bulk360 follow --clear builds the graph and the state again from the sources (or bulk360 follow stop --drop, then bulk360 follow)"


_CONTROL_LOST = ("cannot connect to the control database", "writing to the control database")


class ConnectionLost(Exception):
    """A connection to a source or to the control database broke mid-stream."""


@contextmanager
def lost(what: str) -> Iterator[None]:
    """A connection lost mid-stream (a restart, a network cut) as :class:`ConnectionLost`."""
    try:
        yield
    except (psycopg.OperationalError, SourceError, ConfigError) as exc:
        if isinstance(exc, ConfigError) and not str(exc).startswith(_CONTROL_LOST):
            raise
        lines = str(exc).strip().splitlines()
        reason = lines[-1].strip() if lines else type(exc).__name__
        raise ConnectionLost(f"{what}: the connection was lost ({reason})") from None
