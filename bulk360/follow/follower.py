"""A follow session: the first start (slots, the graph and the state from the slots' snapshots),
or the pick-up of a stopped follower, then each source's transactions applied window by window
with a checkpoint after each."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
from psycopg import sql

from bulk360.control.follow import record_caught_up, record_position, register_source
from bulk360.control.history import graph_run
from bulk360.control.notify import announce
from bulk360.control.runlog import RunLog
from bulk360.errors import (
    ConfigError,
    IntegrityError,
    SchemaDrift,
    SourceError,
    ValidationFailed,
)
from bulk360.follow.apply import (
    Applied,
    Formatter,
    apply_window,
    identity_header,
    node_file,
    state_schema,
)
from bulk360.follow.changes import Decoder, Expected, Transaction, format_lsn, net, parse_lsn
from bulk360.follow.source import ChangeSource, identity_columns
from bulk360.follow.state import COMPACT_EVERY, FollowState, Position, delta
from bulk360.load import LoadContext
from bulk360.load.bolt import BoltLoader
from bulk360.load.cypher import create_key_constraint
from bulk360.options import Mode, Reporter, RunOptions
from bulk360.plan import Plan, TablePlan, prepare_plan
from bulk360.settings import Settings

__all__ = ["FollowOptions", "FollowSummary", "Follower", "plan_fingerprint", "state_folder"]


@dataclass(frozen=True)
class FollowOptions:
    """How a follower runs."""

    once: bool = False
    """Apply everything up to the sources' current positions, then stop (for cron)."""
    max_lag: float = 1.0
    """Seconds a window may gather changes before it is applied."""
    max_rows: int = 20_000
    """Changed rows a window holds at most (whole transactions: one may hold more)."""
    batch_size: int = 5_000
    workers: int = 4
    retry_seconds: float = 30.0
    clear: bool = False
    """The first start clears the graph and builds it anew (else, when a run built the graph,
    it compares with it: a sync)."""
    poll_seconds: float = 0.2
    """How long an idle follower waits before it asks its sources again."""


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


def plan_fingerprint(plan: Plan) -> str:
    """What follow depends on in the plan: tables, their columns and types, keys, mappings."""
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


def read_headers(plan: Plan, table: TablePlan) -> list[str]:
    """The headers the plan's mappings read of ``table``."""
    headers: list[str] = []
    for rel in plan.relationships:
        for role in rel.roles:
            if rel.table(role).name == table.name:
                headers += rel.read_headers(role)
    return list(dict.fromkeys(headers))


@dataclass
class _Source:
    """One source while it is followed."""

    change: ChangeSource
    tables: list[TablePlan]
    identities: dict[str, tuple[str, ...]]
    expected: list[Expected]
    formatters: dict[str, Formatter]
    caught_up: bool = False


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
        if self.plan.blocking_changes:
            raise SchemaDrift([c.text for c in self.plan.blocking_changes])
        self.sources: list[_Source] = []
        self.state: FollowState | None = None
        self.constrained = False
        self.targets: dict[str, str] = {}
        """With ``once``: each source's position when the stream began (where it stops)."""
        """The key constraints that every MATCH of a window relies on exist (a graph that
        admin mode built has none)."""

    # ---- requirements and start ----------------------------------------------------------

    def prepare(self, instance: str) -> bool:
        """Check every source (nothing is created); whether follow has state already."""
        folder = state_folder(self.settings, instance)
        known = FollowState.exists(folder)
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
            self.sources.append(_Source(change, tables, identities, expected, formatters))
        if problems:
            raise ValidationFailed(problems)
        if known:
            by_table = {
                name: [identity_header(c) for c in columns]
                for source in self.sources
                for name, columns in source.identities.items()
            }
            self.state = FollowState.load(folder, by_table)
            if self.state.plan != plan_fingerprint(self.plan):
                raise ValidationFailed(
                    [
                        "the control rows changed since following began (tables, columns, "
                        "mappings): bulk360 follow stop --drop, then bulk360 follow to start "
                        "again from the sources as they are (a sync makes the graph equal)"
                    ]
                )
        return known

    def start(self, instance: str) -> None:
        """The slots with exported snapshots, the graph and the state made from exactly those
        snapshots, so that each stream starts where its snapshot ends."""
        folder = state_folder(self.settings, instance)
        created: list[_Source] = []
        try:
            with ExitStack() as stack:
                points: dict[str, str] = {}
                snapshots: dict[str, str] = {}
                for source in self.sources:
                    with source.change.connect() as conn:
                        source.change.create(conn)
                    created.append(source)
                    point, snapshot = stack.enter_context(source.change.new_slot())
                    points[source.change.source.name] = point
                    snapshots[source.change.source.name] = snapshot
                self._build_graph(snapshots)
                state = FollowState(folder, plan_fingerprint(self.plan))
                for source in self.sources:
                    name = source.change.source.name
                    state.tables |= self._read_state(source, snapshots[name])
                    state.positions[name] = Position(points[name])
                for table in self.plan.tables:
                    if table.label:
                        state.next_ids[table.label] = state.tables[table.name].height
                state.compact()
                self.state = state
        except BaseException:
            for source in created:
                with source.change.connect() as conn:
                    source.change.drop(conn)
            raise
        for source in self.sources:
            register_source(
                self.settings,
                source.change.source.name,
                source.change.names.slot,
                source.change.names.publication,
                str(folder),
                points[source.change.source.name],
            )

    def _build_graph(self, snapshots: dict[str, str]) -> None:
        """Bolt mode from the snapshots, or sync's comparison when a run built the graph."""
        from bulk360.pipeline import run  # the pipeline, for the graph's first build

        built = graph_run(self.settings)
        mode: Mode = "sync" if built is not None and not self.options.clear else "bolt"
        options = RunOptions(
            mode=mode,
            clear=self.options.clear and mode == "bolt",
            workers=self.options.workers,
            batch_size=self.options.batch_size,
            retry_seconds=self.options.retry_seconds,
        )
        self.reporter.note(
            f"building the graph from the slots' snapshots ({mode} mode, run row of its own)"
        )
        summary = run(self.settings, options, self.reporter, snapshots)
        if summary.status != "succeeded":
            raise IntegrityError(f"the graph's build from the snapshots ended {summary.status}")

    def _read_state(self, source: _Source, snapshot: str) -> dict[str, pl.DataFrame]:
        """Each table's state as of ``snapshot``: its identity as text and the columns the
        plan reads, formatted by the readers' SELECT expressions."""
        found = {}
        with source.change.connect() as conn:
            conn.autocommit = False
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
            for table in source.tables:
                found[table.name] = self._read_table(conn, table, source.identities[table.name])
            conn.rollback()
        return found

    def _read_table(
        self, conn: psycopg.Connection[Any], table: TablePlan, identity: tuple[str, ...]
    ) -> pl.DataFrame:
        schema = state_schema(table, identity, read_headers(self.plan, table))
        columns = [c for c in table.columns if c.header in schema]
        selects = [
            sql.SQL("CASE WHEN {c} IS NULL THEN NULL ELSE concat({c}) END").format(
                c=sql.Identifier(c)
            )
            for c in identity
        ] + [c.select for c in columns]
        query = sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT (FORMAT csv)").format(
            sql.SQL(", ").join(selects), sql.Identifier(table.schema, table.table)
        )
        headers = [identity_header(c) for c in identity] + [c.header for c in columns]
        with conn.cursor().copy(query) as copy:
            data = b"".join(bytes(block) for block in copy)
        frame = (
            pl.read_csv(
                data, has_header=False, new_columns=headers, infer_schema=False, quote_char='"'
            )
            if data
            else pl.DataFrame(schema=dict.fromkeys(headers, pl.String))
        )
        if table.label:
            frame = frame.with_row_index(table.id_header).with_columns(
                pl.col(table.id_header).cast(pl.Int64)
            )
        return frame.select([pl.col(c).cast(t) for c, t in schema.items()])

    # ---- the stream -----------------------------------------------------------------------

    def stream(self, log: RunLog, summary: FollowSummary) -> None:
        """Apply every source's transactions, window by window, until stopped (or, with
        ``once``, until each source reached its position at the start).

        A connection lost to a source or to the control database (a restart, a network cut)
        is opened again for up to ``retry_seconds``: what was applied but not confirmed is
        applied again, which changes nothing. ``once`` stops at once instead."""
        lost_since: float | None = None
        windows_at_loss = -1
        while True:
            try:
                self._stream(log, summary)
                return
            except _ConnectionLost as exc:
                now = time.monotonic()
                if windows_at_loss != summary.windows or lost_since is None:
                    lost_since = now  # a loss after progress starts the clock again
                windows_at_loss = summary.windows
                if self.options.once or now - lost_since > self.options.retry_seconds:
                    raise SourceError(f"{exc}; {_AGAIN}") from None
                self.reporter.note(f"{exc}; connecting again")
                time.sleep(min(2.0, self.options.retry_seconds / 10))

    def _stream(self, log: RunLog, summary: FollowSummary) -> None:
        assert self.state is not None
        options = self.options
        bolt = BoltLoader(
            LoadContext(
                self.settings,
                RunOptions(
                    mode="bolt",
                    batch_size=options.batch_size,
                    workers=options.workers,
                    retry_seconds=options.retry_seconds,
                ),
                self.reporter,
                self.reporter.note,
            )
        )
        with _lost("the control database"):
            log.hold()
        with ExitStack() as stack:
            conns = {}
            for s in self.sources:
                with _lost(f"source '{s.change.source.name}'"):
                    conns[s.change.source.name] = stack.enter_context(s.change.connect())
            if not self.targets:
                with _lost("a source"):
                    self.targets = {name: _flushed(c) for name, c in conns.items()}
            driver = bolt.connect()
            stack.callback(driver.close)
            if not self.constrained:
                with bolt.failures(_AGAIN):
                    for table in self.plan.tables:  # a graph admin mode built has none yet
                        if table.label:
                            keys = node_file(table).keys
                            create_key_constraint(driver, bolt.database, table.label, keys)
                self.constrained = True
            writer = bolt.driver_writer(driver)
            bolt.writer = writer
            noted = time.monotonic()
            recorded = 0.0
            while not self.stopping():
                busy = False
                for source in self.sources:
                    name = source.change.source.name
                    with _lost(f"source '{name}'"), bolt.failures(_AGAIN):
                        conn = conns[name]
                        upto = self.targets[name] if options.once else self._current(conn)
                        window = self._window(source, conn, upto)
                        source.caught_up = not window
                        if window:
                            busy = True
                            self._apply(source, conn, window, writer, log, summary)
                    if self.stopping():
                        break
                caught_up = [s.change.source.name for s in self.sources if s.caught_up]
                # Idle, a follower polls five times a second; the control database hears of it
                # once a second (each record is a connection of its own).
                if caught_up and (busy or time.monotonic() - recorded >= 1.0):
                    with _lost("the control database"):
                        record_caught_up(self.settings, caught_up)
                    recorded = time.monotonic()
                if time.monotonic() - noted > 10 or (options.once and not busy):
                    noted = time.monotonic()
                    self.reporter.note(_progress(summary, idle=not busy))
                if options.once and not busy:
                    return
                if not busy:
                    time.sleep(options.poll_seconds)

    @staticmethod
    def _current(conn: psycopg.Connection[Any]) -> str:
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        return str(row[0])

    def _window(
        self, source: _Source, conn: psycopg.Connection[Any], upto: str
    ) -> list[Transaction]:
        """The source's next transactions not yet applied, up to ``upto``: about
        ``max_rows`` changes, gathered for at most ``max_lag`` seconds."""
        assert self.state is not None
        applied = parse_lsn(self.state.positions[source.change.source.name].lsn)
        started = time.monotonic()
        while True:
            decoder = Decoder(source.change.source.name, source.expected)
            found = []
            for _, data in source.change.peek(conn, upto, self.options.max_rows):
                done = decoder.feed(data)
                if done is not None and done.end_lsn > applied:
                    found.append(done)
            rows = sum(len(t.changes) for t in found)
            waited = time.monotonic() - started
            if (
                not found
                or self.options.once
                or rows >= self.options.max_rows
                or waited + self.options.poll_seconds > self.options.max_lag
                or self.stopping()
            ):
                return found
            time.sleep(self.options.poll_seconds)
            upto = self._current(conn)

    def _apply(
        self,
        source: _Source,
        conn: psycopg.Connection[Any],
        window: list[Transaction],
        writer: Any,
        log: RunLog,
        summary: FollowSummary,
    ) -> None:
        """A window into the graph, then the checkpoint, then the slot advanced."""
        assert self.state is not None
        state = self.state
        changes = net(window, {t.name: source.identities[t.name] for t in source.tables})
        formatted = {
            name: source.formatters[name].format(conn, list(change.upserts.values()))
            for name, change in changes.items()
        }
        tables, applied = apply_window(
            self.plan, state.tables, state.next_ids, changes, formatted, writer, _nothing
        )
        deltas = {name: delta(u.new, u.removed) for name, u in tables.items()}
        state.tables.update({name: u.after for name, u in tables.items()})
        last = window[-1]
        lsn = format_lsn(last.end_lsn)
        name = source.change.source.name
        state.positions[name] = Position(lsn, last.commit_time.isoformat())
        state.save(deltas)
        source.change.advance(conn, lsn)
        with _lost("the control database"):
            record_position(self.settings, name, lsn, last.commit_time, log.run_id)
            touched = writer.take_touched()
            if touched:
                announce(self.settings, "graph", touched)
        summary.windows += 1
        summary.transactions += len(window)
        summary.changes += sum(len(t.changes) for t in window)
        summary.applied.add(applied)
        summary.positions[name] = lsn
        summary.lags.append((datetime.now(UTC) - last.commit_time).total_seconds())
        if state.checkpoint % COMPACT_EVERY == 0:
            state.compact()


_AGAIN = "run bulk360 follow again: it picks up where it stopped"


_CONTROL_LOST = ("cannot connect to the control database", "writing to the control database")


class _ConnectionLost(Exception):
    """A connection to a source or to the control database broke mid-stream."""


@contextmanager
def _lost(what: str) -> Iterator[None]:
    """A connection lost mid-stream (a restart, a network cut) as :class:`_ConnectionLost`."""
    try:
        yield
    except (psycopg.OperationalError, SourceError, ConfigError) as exc:
        if isinstance(exc, ConfigError) and not str(exc).startswith(_CONTROL_LOST):
            raise
        lines = str(exc).strip().splitlines()
        reason = lines[-1].strip() if lines else type(exc).__name__
        raise _ConnectionLost(f"{what}: the connection was lost ({reason})") from None


def _flushed(conn: psycopg.Connection[Any], seconds: float = 10.0) -> str:
    """The source's current WAL position once it is on disk: decoding reads flushed WAL only,
    and with ``synchronous_commit = off`` a commit reaches the disk a moment after it returns."""
    target = Follower._current(conn)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        row = conn.execute("SELECT pg_current_wal_flush_lsn() >= %s::pg_lsn", [target]).fetchone()
        if row and row[0]:
            break
        time.sleep(0.05)
    return target


def _nothing(task: str, rows: int) -> None:
    return None


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
