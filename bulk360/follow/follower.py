"""A follow session: the sources' streams applied window by window, with a checkpoint after each
(the session's options, summary and per-source state in :mod:`.session`).

Per source, three stages with a checkpoint between, as pgcopydb's follow:

1. **receive** (:mod:`.stream`): the slot read over the streaming replication protocol by a
   thread of its own, into a queue; the slot is confirmed up to the last checkpoint only;
2. **transform** (:mod:`.changes`, :mod:`.transform`): the messages as changes in commit order,
   gathered into a window (at most ``max_rows`` changes, at most ``max_lag`` seconds), reduced to
   their net effect per row and turned, against the state, into a change set;
3. **apply** (:mod:`.apply`, :func:`bulk360.load.changeset.write_change_set`): the change set
   written over Bolt, then the **checkpoint**: the state's rows and the source's position in one
   store transaction, then the slot confirmed, then the position recorded in
   ``etl_follow_sources``.

What is applied is idempotent, so a follower killed at any moment applies at most one window
again and converges. ``--once`` runs the same stages up to a **marker**: a logical message the
follower writes into each source's WAL when it starts (``pg_logical_emit_message``), which the
stream delivers after every transaction committed before it. A running follower writes one a
second and, when it comes back with everything before it applied, records the source as caught
up as of the moment the marker was written (``follow status``'s lag, ``/health``).
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bulk360.control.follow import (
    follow_rows,
    register_source,
)
from bulk360.control.runlog import RunLog
from bulk360.errors import ConfigError, SourceError, StateError, ValidationFailed
from bulk360.follow.apply import Apply
from bulk360.follow.bootstrap import Bootstrap
from bulk360.follow.changes import (
    MARKER_PREFIX,
    Decoder,
    Expected,
    Marker,
    WindowBuilder,
    parse_lsn,
)
from bulk360.follow.session import (
    AGAIN,
    DROP,
    ConnectionLost,
    FollowOptions,
    FollowSummary,
    SourceSession,
    lost,
)
from bulk360.follow.source import ChangeSource, identity_columns
from bulk360.follow.store import StateStore, StoredTable
from bulk360.follow.stream import ReplicationStream, SlotLost, StreamLost
from bulk360.follow.transform import (
    Formatter,
    node_file,
    stored_tables,
)
from bulk360.load.cypher import ensure_key_constraints
from bulk360.load.target import BoltTarget
from bulk360.options import Reporter
from bulk360.plan import Plan, TablePlan, prepare_plan
from bulk360.settings import Settings

__all__ = ["Follower", "plan_fingerprint", "state_folder"]


def plan_fingerprint(plan: Plan) -> str:
    """What follow depends on in the plan: tables, their columns and types, keys, mappings."""
    import hashlib
    import json

    described = {
        "tables": [
            [t.source, t.schema, t.table, t.label, t.key_columns, [c.header for c in t.columns]]
            for t in plan.tables
        ],
        "relationships": [
            [
                r.name,
                r.from_table.name,
                r.to_table.name,
                r.link_table.name if r.link_table else None,
                *(r.from_to_keys, r.from_link_keys, r.link_to_keys, r.properties, r.filters),
            ]
            for r in plan.relationships
        ],
    }
    return hashlib.sha256(json.dumps(described, default=list).encode()).hexdigest()[:16]


def state_folder(settings: Settings, instance: str) -> Path:
    """Where follow keeps its state for one control database."""
    return settings.import_dir / "follow" / instance


class Follower:
    """One follow session of the control database ``settings`` names."""

    def __init__(
        self,
        settings: Settings,
        options: FollowOptions,
        reporter: Reporter,
        stopping: Callable[[], bool],
    ) -> None:
        self.settings = settings
        self.options = options
        self.reporter = reporter
        self.stopping = stopping
        self.plan = prepare_plan(settings)
        self.sources: list[SourceSession] = []
        self.store: StateStore | None = None
        self.tables: list[StoredTable] = []
        self.folder: Path | None = None
        self.constrained = False
        self.token = uuid.uuid4().hex[:12]

    # ---- requirements and the state -----------------------------------------------------

    def prepare(self, instance: str) -> bool:
        """Check every source's requirements (nothing is created) and open the state when it
        exists; whether it does."""
        self.folder = state_folder(self.settings, instance)
        known = StateStore.exists(self.folder)
        followed = [
            r.source for r in follow_rows(self.settings) if Path(r.state_dir) == self.folder
        ]
        if followed and not known:
            raise StateError(
                f"follow's state {StateStore.path_in(self.folder)} is missing (deleted?) while "
                f"{', '.join(followed)} are followed: {DROP}"
            )
        problems: list[str] = []
        for source in self.plan.sources:
            tables = [t for t in self.plan.tables if t.source == source.name]
            change = ChangeSource(self.settings, source, tables, instance)
            try:
                with change.connect() as conn:
                    problems += change.problems(conn, known)
                    identities = {t.name: identity_columns(conn, t) for t in tables}
                    expected = [_expected(conn, t, identities[t.name]) for t in tables]
            except SourceError as exc:
                problems.append(str(exc))
                continue
            formatters = {t.name: Formatter(t, identities[t.name]) for t in tables}
            self.sources.append(SourceSession(change, tables, identities, expected, formatters))
        if problems:
            raise ValidationFailed(problems)
        identities = {n: i for s in self.sources for n, i in s.identities.items()}
        self.tables = stored_tables(self.plan, identities)
        if known:
            self.store = StateStore.open(self.folder, plan_fingerprint(self.plan), self.tables)
        return known

    def start(self, instance: str) -> None:
        """The slots with exported snapshots, the graph and the state made from exactly those
        snapshots, so that each stream starts where its snapshot ends."""
        assert self.folder is not None
        bootstrap = Bootstrap(
            self.settings,
            self.reporter,
            [(s.change, s.tables) for s in self.sources],
            self.tables,
            self.options.workers,
            self.options.batch_size,
            self.options.retry_seconds,
            self.options.clear,
        )
        self.store = bootstrap.run(self.folder, plan_fingerprint(self.plan))
        for source in self.sources:
            register_source(
                self.settings,
                source.name,
                source.change.names.slot,
                source.change.names.publication,
                str(self.folder),
                self.store.positions[source.name].lsn,
            )

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    # ---- the streams ----------------------------------------------------------------------

    def stream(self, log: RunLog, summary: FollowSummary) -> None:
        """Apply every source's transactions, window by window, until stopped (or, with
        ``once``, until each source's marker).

        A connection lost to a source or to the control database (a restart, a network cut)
        is opened again for up to ``retry_seconds``: what was applied but not confirmed is
        applied again, which changes nothing. ``once`` stops at once instead."""
        lost_since: float | None = None
        windows_at_loss = -1
        while True:
            try:
                self._stream(log, summary)
                return
            except ConnectionLost as exc:
                now = time.monotonic()
                if windows_at_loss != summary.windows or lost_since is None:
                    lost_since = now  # a loss after progress starts the clock again
                windows_at_loss = summary.windows
                if self.options.once or now - lost_since > self.options.retry_seconds:
                    raise SourceError(f"{exc}; {AGAIN}") from None
                self.reporter.note(f"{exc}; connecting again")
                time.sleep(min(2.0, self.options.retry_seconds / 10))

    def _stream(self, log: RunLog, summary: FollowSummary) -> None:
        assert self.store is not None
        options = self.options
        bolt = BoltTarget(self.settings, options)
        with lost("the control database"):
            log.hold()
        with ExitStack() as stack:
            stack.callback(self._disconnect)
            driver = bolt.connect()
            stack.callback(driver.close)
            if not self.constrained:
                with bolt.failures(AGAIN):  # a graph admin mode built has none yet
                    keys = [(t.label, node_file(t).keys) for t in self.plan.tables if t.label]
                    ensure_key_constraints(driver, bolt.database, keys)
                self.constrained = True
            writer = bolt.driver_writer(driver)
            bolt.writer = writer
            for source in self.sources:
                with lost(f"source '{source.name}'"):
                    self._connect(source)
            apply = Apply(
                self.settings,
                self.plan,
                self.store,
                options,
                writer,
                driver,
                bolt.database,
                log,
                summary,
            )
            noted = time.monotonic()
            while not self.stopping():
                busy = False
                for source in self.sources:
                    with lost(f"source '{source.name}'"), bolt.failures(AGAIN):
                        busy |= self._turn(source, apply)
                    if self.stopping():
                        break
                if time.monotonic() - noted > 10:
                    noted = time.monotonic()
                    self.reporter.note(_progress(summary, idle=not busy))
                if options.once and all(s.done for s in self.sources):
                    self.reporter.note(_progress(summary, idle=True))
                    return
                if not busy:
                    time.sleep(0.05)
            # Stopped: what was gathered is applied, so that nothing waits for the next start.
            for source in self.sources:
                assert source.builder is not None
                if not source.builder.window.empty:
                    with lost(f"source '{source.name}'"), bolt.failures(AGAIN):
                        apply(source, source.builder.cut())

    def _connect(self, source: SourceSession) -> None:
        assert self.store is not None and self.folder is not None
        applied = parse_lsn(self.store.positions[source.name].lsn)
        source.conn = source.change.session()
        spool = self.folder / "spool" / source.name
        shutil.rmtree(spool, ignore_errors=True)
        source.decoder = Decoder(source.name, source.expected, spool, applied)
        source.builder = WindowBuilder(source.name, source.identities, applied)
        source.markers.clear()
        source.stream = ReplicationStream(
            source.name,
            source.change.source.conninfo(self.settings),
            source.change.names.slot,
            source.change.names.publication,
            applied,
        )
        try:
            source.stream.start()
        except SlotLost as exc:
            raise ConfigError(f"{exc}: {DROP}") from None
        except StreamLost as exc:
            raise ConnectionLost(str(exc)) from None
        if self.options.once and not source.done:
            source.target = f"{self.token}:once"
            self._mark(source, source.target)

    def _disconnect(self) -> None:
        for source in self.sources:  # every thread told to stop first: they end together
            if source.stream is not None:
                source.stream.stop()
        for source in self.sources:
            if source.stream is not None:
                source.stream.close()
            if source.decoder is not None:
                source.decoder.close()
            if source.conn is not None:
                source.conn.close()
            source.stream = source.decoder = source.builder = source.conn = None

    def _mark(self, source: SourceSession, content: str) -> None:
        """A marker into the source's WAL; when it was written, by the source's clock."""
        row = source.conn.execute(
            "SELECT clock_timestamp() FROM pg_logical_emit_message(false, %s, %s)",
            [MARKER_PREFIX, content],
        ).fetchone()
        source.markers[content] = row[0]
        source.marked = time.monotonic()

    def _turn(self, source: SourceSession, apply: Apply) -> bool:
        """One turn of a source: what it received gathered, ready windows applied; whether
        anything was done."""
        assert source.stream is not None and source.decoder is not None
        assert source.builder is not None
        options = self.options
        try:
            received = source.stream.get(0)
        except SlotLost as exc:
            raise ConfigError(f"{exc}: {DROP}") from None
        except StreamLost as exc:
            raise ConnectionLost(str(exc)) from None
        began = time.perf_counter()
        for message in received:
            source.decoder.take(message.message)
        busy = bool(received)
        builder = source.builder
        while not source.done and (event := source.decoder.next_event()) is not None:
            busy = True
            builder.add(event)
            ours = isinstance(event, Marker) and event.content in source.markers
            if isinstance(event, Marker) and ours and event.content == source.target:
                source.done = True
            if ours or builder.window.rows >= options.max_rows:
                apply.summary.timed("decode", began)
                apply(source, builder.cut())
                began = time.perf_counter()
        apply.summary.timed("decode", began)
        window = builder.window
        late = time.monotonic() - window.started >= options.max_lag
        if not window.empty and not options.once and late:
            apply(source, builder.cut())
            busy = True
        due = time.monotonic() - source.marked >= options.marker_seconds
        if (
            not options.once
            and due
            and (not source.markers or time.monotonic() - source.marked > 10)
        ):
            source.markers.clear()  # a marker not back in 10 s is written again
            self._mark(source, f"{self.token}:{time.monotonic_ns()}")
        return busy


def _progress(summary: FollowSummary, idle: bool) -> str:
    elapsed = time.perf_counter() - summary.began
    rate = summary.changes / elapsed if elapsed > 0 else 0.0
    lag = "caught up" if idle else f"lag {summary.lags[-1] if summary.lags else 0.0:.1f} s"
    return (
        f"{summary.changes:,} changes in {summary.transactions:,} transactions applied "
        f"({summary.windows:,} windows, {rate:,.0f} changes/s), {lag}"
    )


def _expected(
    conn: psycopg.Connection[Any], table: TablePlan, identity: tuple[str, ...]
) -> Expected:
    """The columns the stream must send of ``table`` (its kept ones and its identity), with
    their type OIDs as the catalog says now."""
    names = list(dict.fromkeys([*identity, *(c.name for c in table.columns)]))
    rows = conn.execute(
        "SELECT a.attname, a.atttypid::int FROM pg_attribute a"
        " WHERE a.attrelid = %s::regclass AND a.attname = ANY(%s) AND NOT a.attisdropped",
        [sql.Identifier(table.schema, table.table).as_string(conn), names],
    ).fetchall()
    return Expected(table.name, table.schema, table.table, dict(rows), identity)
