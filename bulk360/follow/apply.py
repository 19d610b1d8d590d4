"""The third stage of a follow session: a window applied (its values formatted, its change set
computed against the state and written over Bolt), then the checkpoint: the state's rows and the
source's position in one store transaction, the slot confirmed, the position recorded."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from bulk360.control.follow import (
    record_caught_up,
    record_position,
)
from bulk360.control.notify import announce
from bulk360.control.runlog import RunLog
from bulk360.follow.changes import (
    Window,
    format_lsn,
)
from bulk360.follow.session import FollowOptions, FollowSummary, SourceSession, lost
from bulk360.follow.store import Checkpoint, Position, StateStore
from bulk360.follow.transform import (
    Applied,
    transform_window,
)
from bulk360.load.changeset import write_change_set
from bulk360.load.writer import DriverWriter
from bulk360.plan import Plan
from bulk360.settings import Settings

__all__ = ["Apply"]


class Apply:
    """Applies one source's window: transform, the writes, the checkpoint, the slot."""

    def __init__(
        self,
        settings: Settings,
        plan: Plan,
        store: StateStore,
        options: FollowOptions,
        writer: DriverWriter,
        driver: Any,
        database: str,
        log: RunLog,
        summary: FollowSummary,
    ) -> None:
        self.settings, self.plan, self.store, self.options = settings, plan, store, options
        self.writer = writer
        self.driver = driver
        self.database = database
        self.log = log
        self.summary = summary

    def __call__(self, source: SourceSession, window: Window) -> None:
        store, settings, summary = self.store, self.settings, self.summary
        assert source.stream is not None
        if window.rows or window.end is not None:
            began = time.perf_counter()
            formatted = {
                name: source.formatters[name].format(source.conn, list(change.upserts.values()))
                for name, change in window.changes.items()
            }
            began = summary.timed("format", began)
            transformed = transform_window(self.plan, store, window.changes, formatted)
            began = summary.timed("transform", began)
            write_change_set(self.writer, self.driver, self.database, transformed.changes, _nothing)
            began = summary.timed("write", began)
            end = window.end
            position = (
                Position(format_lsn(end.end_lsn), end.commit_time.isoformat())
                if end is not None
                else None
            )
            applied_to = end.end_lsn if end is not None else window.from_lsn
            done = Checkpoint(
                source.name,
                format_lsn(window.from_lsn),
                format_lsn(applied_to),
                window.transactions,
                window.rows,
                window.partial,
            )
            store.checkpoint(transformed.writes, transformed.next_ids, done, position)
            summary.timed("checkpoint", began)
            summary.windows += 1
            summary.transactions += window.transactions
            summary.changes += window.rows
            summary.applied.add(Applied.of(transformed.changes))
            if end is not None:
                source.stream.confirm(end.end_lsn)
                summary.positions[source.name] = format_lsn(end.end_lsn)
                summary.lags.append((datetime.now(UTC) - end.commit_time).total_seconds())
                with lost("the control database"):
                    record_position(
                        settings, source.name, format_lsn(end.end_lsn), end.commit_time,
                        self.log.run_id,
                    )  # fmt: skip
            touched = self.writer.take_touched()
            if touched:
                with lost("the control database"):
                    announce(settings, "graph", touched)
        # Everything before each marker of the window is applied now: caught up as of then.
        written = [source.markers.pop(m) for m in window.markers if m in source.markers]
        if written and not self.options.once:
            with lost("the control database"):
                record_caught_up(settings, [source.name], max(written))


def _nothing(task: str, rows: int) -> None:
    return None
