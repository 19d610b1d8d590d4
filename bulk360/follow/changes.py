"""A source's stream as changes in commit order (:class:`Decoder`), and windows of them reduced to
their net effect per row (:class:`WindowBuilder`).

The stream names tables by OID (a Relation message before a table's first change, and again
after its columns change): the decoder keeps them, checks that each followed table still has the
columns and types follow was started with, and hands on, in commit order, each committed
transaction's changes and then its commit. A transaction the state already holds (its commit
before the position applied) is skipped: the server may send again what it sent before the last
confirmation. A transaction streamed before its commit (protocol version 2) is spooled to a file
until its Stream Commit, then handed on from the file (a rolled-back subtransaction's changes
left out), so memory holds no large transaction. bulk360's markers (non-transactional logical
messages, ``pg_logical_emit_message``) come through in their place in the stream: everything
committed before a marker was written comes before it.

A window gathers changes per table by replica identity: upserted with its last values, or
deleted; a ``TRUNCATE`` deletes every row the table held before it. It may end inside a
transaction (one larger than ``--max-rows``): its position is then the last transaction it holds
whole, and the next window goes on with the rest.
"""

from __future__ import annotations

import pickle
import struct
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from bulk360.errors import SchemaDrift
from bulk360.follow.pgoutput import (
    UNCHANGED,
    Begin,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    Message,
    Relation,
    StreamAbort,
    StreamCommit,
    StreamStart,
    StreamStop,
    Truncate,
    Update,
    Value,
    parse,
)

__all__ = [
    "MARKER_PREFIX",
    "Change",
    "Committed",
    "Decoder",
    "Event",
    "Expected",
    "Marker",
    "TableChanges",
    "Window",
    "WindowBuilder",
    "format_lsn",
    "parse_lsn",
]

MARKER_PREFIX = "bulk360.follow"
"""The prefix of bulk360's logical messages (markers) in a source's stream."""

Row = dict[str, Value]


def parse_lsn(text: str) -> int:
    """``16/B374D848`` → its 64-bit position."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def format_lsn(position: int) -> str:
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


@dataclass(frozen=True)
class Expected:
    """A followed table as follow was started with it: its published columns and their types."""

    name: str
    """The table's name in the plan (its label, or ``source.table``)."""
    schema: str
    table: str
    columns: Mapping[str, int]
    """Column → type OID."""
    identity: tuple[str, ...]


@dataclass(frozen=True)
class Change:
    table: str
    kind: str
    """``insert``, ``update``, ``delete`` or ``truncate``."""
    new: Row | None = None
    old: Row | None = None


@dataclass(frozen=True)
class Committed:
    """The end of a committed transaction whose changes came before."""

    end_lsn: int
    commit_time: datetime


@dataclass(frozen=True)
class Marker:
    """A marker of bulk360's (its content), in its place in the stream."""

    content: str


Event = Change | Committed | Marker


class _Spool:
    """The changes of one transaction streamed before its commit, in a file until it commits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: BinaryIO = path.open("wb")
        self.aborted: set[int] = set()

    def write(self, subxid: int, change: Change) -> None:
        data = pickle.dumps((subxid, change), protocol=pickle.HIGHEST_PROTOCOL)
        self.handle.write(struct.pack("!I", len(data)) + data)

    def replay(self, done: Committed) -> Iterator[Event]:
        """The transaction's changes, a rolled-back subtransaction's left out, then its commit;
        the file is removed once read."""
        self.handle.close()
        try:
            with self.path.open("rb") as handle:
                while header := handle.read(4):
                    subxid, change = pickle.loads(handle.read(struct.unpack("!I", header)[0]))
                    if subxid not in self.aborted:
                        yield change
        finally:
            self.path.unlink(missing_ok=True)
        yield done

    def discard(self) -> None:
        self.handle.close()
        self.path.unlink(missing_ok=True)


class Decoder:
    """Turns one source's messages into the events of its committed transactions, in order."""

    def __init__(
        self, source: str, expected: Sequence[Expected], spool: Path, applied: int
    ) -> None:
        self.source = source
        self.expected = {(e.schema, e.table): e for e in expected}
        self.relations: dict[int, tuple[Expected, tuple[str, ...]]] = {}
        self.spool = spool
        self.applied = applied
        """The position the state holds: transactions committed before it are skipped."""
        self._skipping = False
        self._stream: int | None = None
        """The xid of the streamed block under way."""
        self._spools: dict[int, _Spool] = {}
        self._events: deque[Event | Iterator[Event]] = deque()

    def _relation(self, message: Relation) -> None:
        expected = self.expected.get((message.schema, message.name))
        if expected is None:
            return  # not followed (the publication sends only followed tables)
        where = f"source '{self.source}', table {message.schema}.{message.name}"
        now = {c.name: c.type_oid for c in message.columns}
        lines = []
        for name, oid in expected.columns.items():
            if name not in now:
                lines.append(f"{where}: column '{name}' is no longer sent (dropped or renamed)")
            elif now[name] != oid:
                lines.append(
                    f"{where}: column '{name}' changed type (type oid {oid} → {now[name]})"
                )
        lines += [
            f"{where}: column '{name}' is sent but was not"
            for name in now.keys() - expected.columns.keys()
        ]
        if lines:
            raise SchemaDrift(
                [
                    *lines,
                    "the stream stopped before this change; run bulk360 run --mode sync (the "
                    "schema-drift gate says what to do), then bulk360 follow --clear to start "
                    "again",
                ]
            )
        self.relations[message.oid] = (expected, tuple(c.name for c in message.columns))

    def _row(self, relation: int, values: tuple[Value, ...]) -> tuple[str, Row]:
        expected, columns = self.relations[relation]
        return expected.name, dict(zip(columns, values, strict=True))

    def _change(self, message: object) -> Change | list[Change] | None:
        if isinstance(message, Insert) and message.relation in self.relations:
            table, new = self._row(message.relation, message.new)
            return Change(table, "insert", new=new)
        if isinstance(message, Update) and message.relation in self.relations:
            table, new = self._row(message.relation, message.new)
            old = self._row(message.relation, message.old)[1] if message.old else None
            return Change(table, "update", new=new, old=old)
        if isinstance(message, Delete) and message.relation in self.relations:
            table, old = self._row(message.relation, message.old)
            return Change(table, "delete", old=old)
        if isinstance(message, Truncate):
            return [
                Change(self.relations[oid][0].name, "truncate")
                for oid in message.relations
                if oid in self.relations
            ]
        return None

    def feed(self, data: bytes) -> None:
        """One message of the stream, as it came."""
        self.take(parse(data, streamed=self._stream is not None))

    def take(self, message: Message) -> None:
        """One message of the stream, parsed (the receiving thread parses them)."""
        if isinstance(message, Relation):
            self._relation(message)
        elif isinstance(message, Begin):
            self._skipping = message.final_lsn < self.applied
        elif isinstance(message, Commit):
            if not self._skipping:
                self._events.append(Committed(message.end_lsn, message.commit_time))
            self._skipping = False
        elif isinstance(message, StreamStart):
            self._stream = message.xid
            if message.xid not in self._spools:
                self.spool.mkdir(parents=True, exist_ok=True)
                self._spools[message.xid] = _Spool(self.spool / f"{message.xid}.spool")
        elif isinstance(message, StreamStop):
            self._stream = None
        elif isinstance(message, StreamAbort):
            spool = self._spools.get(message.xid)
            if spool is not None and message.subxid == message.xid:
                self._spools.pop(message.xid).discard()
            elif spool is not None:
                spool.aborted.add(message.subxid)
        elif isinstance(message, StreamCommit):
            spool = self._spools.pop(message.xid, None)
            if spool is not None and message.end_lsn <= self.applied:
                spool.discard()
            elif spool is not None:
                self._events.append(spool.replay(Committed(message.end_lsn, message.commit_time)))
        elif isinstance(message, LogicalMessage):
            if not message.transactional and message.prefix == MARKER_PREFIX:
                self._events.append(Marker(message.content.decode("utf-8", "replace")))
        else:
            found = self._change(message)
            if found is None:
                return
            changes = found if isinstance(found, list) else [found]
            if self._stream is not None:
                spool = self._spools[self._stream]
                subxid = getattr(message, "xid", None) or self._stream
                for change in changes:
                    spool.write(subxid, change)
            elif not self._skipping:
                self._events.extend(changes)

    def next_event(self) -> Event | None:
        """The next event in commit order, or None when there is none yet."""
        while self._events:
            head = self._events[0]
            if not isinstance(head, Iterator):
                self._events.popleft()
                return head
            event = next(head, None)
            if event is not None:
                return event
            self._events.popleft()
        return None

    @property
    def pending(self) -> bool:
        return bool(self._events)

    def close(self) -> None:
        """Forget every spooled transaction (a new session receives them again)."""
        for spool in self._spools.values():
            spool.discard()
        self._spools.clear()
        self._events.clear()


@dataclass
class TableChanges:
    """The net effect of a window on one table."""

    table: str
    identity: tuple[str, ...]
    upserts: dict[tuple[Value, ...], Row] = field(default_factory=dict)
    deletes: set[tuple[Value, ...]] = field(default_factory=set)
    truncated: bool = False
    """Every row the table held before the window's truncate is gone."""
    changes: int = 0

    def add(self, change: Change) -> None:
        """One more change, in commit order."""
        self.changes += 1
        if change.kind == "truncate":
            self.upserts.clear()
            self.deletes.clear()
            self.truncated = True
            return
        identity = self.identity
        old = tuple(change.old[c] for c in identity) if change.old else None
        if change.kind == "delete":
            assert old is not None
            self.upserts.pop(old, None)
            self.deletes.add(old)
            return
        assert change.new is not None
        new = tuple(change.new[c] for c in identity)
        row = dict(change.new)
        earlier = self.upserts.get(old if old is not None else new)
        if old is not None and old != new:  # the identity changed: the old row is gone
            self.upserts.pop(old, None)
            self.deletes.add(old)
        if earlier is not None:  # a value TOAST left unsent is the window's earlier one
            row = {c: earlier[c] if v is UNCHANGED else v for c, v in row.items()}
        self.deletes.discard(new)
        self.upserts[new] = row


@dataclass
class Window:
    """Changes of one source gathered to be applied together."""

    source: str
    from_lsn: int
    """The position applied before it."""
    changes: dict[str, TableChanges] = field(default_factory=dict)
    rows: int = 0
    transactions: int = 0
    end: Committed | None = None
    """Its last whole transaction's commit: the position it brings the source to."""
    partial: bool = False
    """It ends inside a transaction (the rest comes in the next window)."""
    markers: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @property
    def empty(self) -> bool:
        return self.rows == 0 and self.end is None


class WindowBuilder:
    """Gathers one source's events into windows."""

    def __init__(self, source: str, identities: Mapping[str, tuple[str, ...]], applied: int):
        self.source = source
        self.identities = identities
        self.applied = applied
        self.in_transaction = False
        self.window = Window(source, applied)

    def add(self, event: Event) -> None:
        window = self.window
        if window.empty and not window.markers:
            window.started = time.monotonic()
        if isinstance(event, Change):
            table = window.changes.get(event.table)
            if table is None:
                table = TableChanges(event.table, self.identities[event.table])
                window.changes[event.table] = table
            table.add(event)
            window.rows += 1
            self.in_transaction = True
        elif isinstance(event, Committed):
            window.end = event
            window.transactions += 1
            self.in_transaction = False
        else:
            window.markers.append(event.content)

    def cut(self) -> Window:
        """The window gathered so far; the next one starts where it ends."""
        done = self.window
        done.partial = self.in_transaction
        if done.end is not None:
            self.applied = done.end.end_lsn
        self.window = Window(self.source, self.applied)
        return done
