"""Following the sources: PostgreSQL's change stream applied to Neo4j as it happens, joins
included, no Kafka (``bulk360 follow``).

Per source a publication over exactly the mapped tables and the columns the plan reads, and a
``pgoutput`` slot (:mod:`.source`); then three stages with a checkpoint between (:mod:`.follower`):

1. **receive** (:mod:`.stream`, :mod:`.pgoutput`): the slot over the streaming replication
   protocol, read by a thread of its own;
2. **transform** (:mod:`.changes`, :mod:`.transform`): windows of changes in commit order, bounded
   in rows and time, reduced to their net effect per row and turned into a change set against
   follow's state (:mod:`.store`: the key and join columns of every followed table, indexed by
   key, on disk);
3. **apply**: the change set written over Bolt by the writer sync uses too
   (:mod:`bulk360.load.changeset`), then the checkpoint (the state and the position in one store
   transaction), then the slot confirmed.

What is applied is idempotent, so a follower killed at any moment replays at most one window and
converges. The first start (:mod:`.bootstrap`) creates the slots with exported snapshots, makes
the graph from exactly those snapshots (bolt mode, or sync's comparison when a run built the
graph) and fills the state from them, so that each stream starts where its snapshot ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bulk360.control.config import load_config
from bulk360.control.database import connect_control
from bulk360.control.follow import follow_rows, forget_sources
from bulk360.control.runlog import RUN_LOCK, RunLog
from bulk360.errors import Bulk360Error, ConfigError, Interrupted, TargetError
from bulk360.follow.follower import Follower, state_folder
from bulk360.follow.session import FollowOptions, FollowSummary
from bulk360.follow.source import ChangeSource, SlotStatus, slot_status
from bulk360.follow.store import StateStore, remove_state
from bulk360.options import Reporter, SilentReporter
from bulk360.plan import prepare_plan
from bulk360.settings import Settings
from bulk360.version import __version__

__all__ = [
    "FollowOptions",
    "FollowStatus",
    "FollowSummary",
    "follow",
    "follow_status",
    "stop_following",
]


def _instance(settings: Settings) -> str:
    """This control database's identity; a one-line error when its schema predates follow."""
    with connect_control(settings) as conn:
        row = conn.execute("SELECT instance_id::text FROM control_instance").fetchone()
        migrated = conn.execute(
            "SELECT 1 FROM schema_migrations WHERE version = '006_follow'"
        ).fetchone()
    if migrated is None:
        raise ConfigError(
            f"the control database {settings.etl_db_name} has a schema older than this bulk360: "
            "run `bulk360 init` (it migrates the schema)"
        )
    assert row is not None
    return str(row[0])


def follow(
    settings: Settings,
    options: FollowOptions,
    reporter: Reporter | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> FollowSummary:
    """Follow every active source until ``stopping()`` says so (or, with ``options.once``,
    until each reached its position at the start); a row in ``etl_run_logs`` (mode ``follow``)
    with what it changed per label and mapping. Every requirement of every source is checked
    before anything is created."""
    reporter = reporter or SilentReporter()
    started = time.perf_counter()
    instance = _instance(settings)
    running = _follower(settings)
    if running is not None:
        raise ConfigError(
            f"follow session {running['run_id']} is running (pid {running.get('pid')} on "
            f"{running.get('host')}): one follower per control database; bulk360 follow stop "
            "stops it"
        )
    if options.clear:
        for line in _drop(settings, instance):
            reporter.note(f"--clear: {line}")
    follower = Follower(settings, options, reporter, stopping)
    try:
        return _session(settings, options, reporter, follower, instance, started)
    finally:
        follower.close()


def _session(
    settings: Settings,
    options: FollowOptions,
    reporter: Reporter,
    follower: Follower,
    instance: str,
    started: float,
) -> FollowSummary:
    known = follower.prepare(instance)
    recorded = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "once": options.once,
        "max_lag": options.max_lag,
        "max_rows": options.max_rows,
        "workers": options.workers,
        "batch_size": options.batch_size,
        "neo4j_database": settings.neo4j_database,
    }
    log = RunLog(settings, "follow", recorded, __version__)
    summary = FollowSummary(log.run_id, "state" if known else "snapshot")
    try:
        if not known:
            reporter.note("creating the publications and slots, exporting their snapshots")
            follower.start(instance)
        follower.stream(log, summary)
        summary.seconds = round(time.perf_counter() - started, 3)
        mappings = {r.name: r for r in follower.plan.relationships}
        for name, counts in summary.applied.counts().items():
            rel = mappings.get(name)
            where = (
                {"label": name}
                if rel is None
                else {
                    "relationship_type": rel.relationship_type,
                    "mapping_id": rel.mapping.mapping_id,
                    "label": f"{rel.from_table.label}->{rel.to_table.label}",
                }
            )
            log.table(
                object_kind="node" if rel is None else "relationship",
                **where,
                status="succeeded",
                rows_processed=sum(counts.values()),
                rows_written=counts["inserted"] + counts["updated"],
                rows_inserted=counts["inserted"],
                rows_updated=counts["updated"],
                rows_deleted=counts["deleted"],
            )
        log.finish("succeeded", rows_read=summary.changes)
    except (Bulk360Error, Interrupted, KeyboardInterrupt) as exc:
        text = (
            str(exc)
            if isinstance(exc, Bulk360Error)
            else f"interrupted ({exc.args[0] if exc.args else 'SIGINT'})"
        )
        log.finish("failed", error=text, rows_read=summary.changes)
        raise
    finally:
        log.close()
    return summary


@dataclass(frozen=True)
class FollowStatus:
    """One followed source as ``bulk360 follow status`` shows it."""

    slot: SlotStatus
    applied_commit_at: datetime | None
    lag_seconds: float | None
    """How long the source has had changes the graph may not hold: since the follower last
    found nothing left to apply (None: never)."""
    running: bool


def follow_status(settings: Settings) -> list[FollowStatus]:
    """Per followed source: its slot's position, lag and retained WAL (the control rows and one
    query per source: cheap enough for every ``/health``)."""
    rows = follow_rows(settings)
    if not rows:
        return []
    config = load_config(settings)
    running = _follower_running(settings)
    now = datetime.now(UTC)
    found = []
    for row in rows:
        source = config.source(row.source)
        if source is None:  # made inactive since: its slot still keeps WAL
            slot = SlotStatus(row.source, row.slot, None, "-", None, None, "source inactive", False)
        else:
            with source.connect(settings, autocommit=True) as conn:
                slot = slot_status(conn, row.source, row.slot)
        lag = (now - row.caught_up_at).total_seconds() if row.caught_up_at else None
        found.append(FollowStatus(slot, row.applied_commit_at, lag, running))
    return found


def _follower(settings: Settings) -> dict[str, Any] | None:
    """The follow session that runs now (its run row running and its lock held): its run id and
    recorded options (``pid``, ``host``)."""
    with connect_control(settings) as conn:
        row = conn.execute(
            "SELECT r.run_id, r.options FROM etl_run_logs r WHERE r.mode = 'follow'"
            " AND r.status = 'running' AND EXISTS (SELECT FROM pg_locks l WHERE"
            " l.locktype = 'advisory' AND l.classid = %s AND l.objid = r.run_id AND l.granted)"
            " ORDER BY r.run_id DESC LIMIT 1",
            [RUN_LOCK],
        ).fetchone()
    return {"run_id": row[0], **(row[1] or {})} if row else None


def _follower_running(settings: Settings) -> bool:
    return _follower(settings) is not None


def stop_following(settings: Settings, drop: bool, wait: float = 120.0) -> list[str]:
    """``bulk360 follow stop``: the running follower (if any) is asked to stop after its
    window (SIGTERM) and waited for; with ``drop``, the slots and publications are removed (the
    sources keep no more WAL for bulk360) and follow's state is forgotten. What was done."""
    done = []
    running = _follower(settings)
    if running is not None:
        if running.get("host") != socket.gethostname() or not running.get("pid"):
            raise ConfigError(
                f"follow session {running['run_id']} runs on {running.get('host', 'another host')}: "
                "stop it there (Ctrl-C or SIGTERM)"
            )
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(running["pid"]), signal.SIGTERM)
        deadline = time.monotonic() + wait
        while _follower_running(settings):
            if time.monotonic() > deadline:
                raise TargetError(
                    f"follow session {running['run_id']} (pid {running['pid']}) did not stop "
                    f"within {wait:.0f} s"
                )
            time.sleep(0.2)
        done.append(f"follow session {running['run_id']} stopped after its last window")
    if not drop:
        return done or ["no follower was running"]
    return done + _drop(settings, _instance(settings))


def _drop(settings: Settings, instance: str) -> list[str]:
    """The slots and publications of this control database dropped, its state forgotten."""
    done = []
    plan = prepare_plan(settings)
    for source in plan.sources:
        tables = [t for t in plan.tables if t.source == source.name]
        change = ChangeSource(settings, source, tables, instance)
        with change.connect() as conn:
            done += [f"source '{source.name}': {what} dropped" for what in change.drop(conn)]
    folder = state_folder(settings, instance)
    if StateStore.exists(folder) or folder.exists():
        remove_state(folder)
        done.append(f"follow's state in {folder} removed")
    forget_sources(settings)
    return done
