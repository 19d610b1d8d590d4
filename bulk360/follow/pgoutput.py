"""PostgreSQL's ``pgoutput`` logical replication messages (protocol versions 1 and 2), parsed.

Each message is the payload of one ``XLogData`` message of the replication stream (or one row of
``pg_logical_slot_peek_binary_changes``): a type byte and its fields, integers in network order,
strings NUL-terminated (PostgreSQL's "Logical Replication Message Formats"). Column values come as
text (the type's output function), ``None`` for NULL, and :data:`UNCHANGED` for a TOASTed value an
update did not change (its value is not sent).

Version 2 with ``streaming on`` sends a transaction larger than ``logical_decoding_work_mem``
before it commits, in blocks between :class:`StreamStart` and :class:`StreamStop`, then
:class:`StreamCommit` (or :class:`StreamAbort`, of it or of one of its subtransactions). Inside a
block every message carries the xid of its (sub)transaction: :func:`parse` is told whether the
message is inside one. :class:`LogicalMessage` is what ``pg_logical_emit_message`` wrote (with
the ``messages`` option).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = [
    "UNCHANGED",
    "Begin",
    "Column",
    "Commit",
    "Delete",
    "Insert",
    "LogicalMessage",
    "Message",
    "ProtocolError",
    "Relation",
    "StreamAbort",
    "StreamCommit",
    "StreamStart",
    "StreamStop",
    "Truncate",
    "Update",
    "parse",
]

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class _Unchanged:
    """A TOASTed value an update left as it was (pgoutput does not send it)."""

    def __repr__(self) -> str:
        return "UNCHANGED"

    def __reduce__(self) -> str:
        return "UNCHANGED"  # unpickled as the one instance (follow spools changes to disk)


UNCHANGED = _Unchanged()
Value = str | None | _Unchanged


class ProtocolError(ValueError):
    """Raised for a message this parser does not understand."""


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    commit_time: datetime
    xid: int


@dataclass(frozen=True)
class Commit:
    commit_lsn: int
    end_lsn: int
    commit_time: datetime


@dataclass(frozen=True)
class Column:
    name: str
    type_oid: int
    type_modifier: int
    key: bool
    """Part of the replica identity."""


@dataclass(frozen=True)
class Relation:
    """A table's columns as the stream sends them (sent before its first change, and again
    after its columns change)."""

    oid: int
    schema: str
    name: str
    replica_identity: str
    """``d`` default (the primary key), ``n`` nothing, ``f`` full, ``i`` an index."""
    columns: tuple[Column, ...]
    xid: int | None = None
    """Inside a streamed block: the (sub)transaction it belongs to."""


@dataclass(frozen=True)
class Insert:
    relation: int
    new: tuple[Value, ...]
    xid: int | None = None


@dataclass(frozen=True)
class Update:
    relation: int
    new: tuple[Value, ...]
    old: tuple[Value, ...] | None
    """The old row's key columns (``K``, when the key changed) or all its columns (``O``,
    replica identity full); None when the key did not change."""
    old_is_key: bool = False
    xid: int | None = None


@dataclass(frozen=True)
class Delete:
    relation: int
    old: tuple[Value, ...]
    old_is_key: bool
    """Whether ``old`` holds only the key columns (the others None)."""
    xid: int | None = None


@dataclass(frozen=True)
class Truncate:
    relations: tuple[int, ...]
    cascade: bool
    restart_identity: bool
    xid: int | None = None


@dataclass(frozen=True)
class LogicalMessage:
    """What ``pg_logical_emit_message`` wrote (sent with the ``messages`` option)."""

    transactional: bool
    lsn: int
    prefix: str
    content: bytes
    xid: int | None = None


@dataclass(frozen=True)
class StreamStart:
    """A block of a transaction still in progress begins (protocol version 2)."""

    xid: int
    first: bool
    """The transaction's first block."""


@dataclass(frozen=True)
class StreamStop:
    """The block ends."""


@dataclass(frozen=True)
class StreamCommit:
    """A streamed transaction committed: every block of it holds its changes."""

    xid: int
    commit_lsn: int
    end_lsn: int
    commit_time: datetime


@dataclass(frozen=True)
class StreamAbort:
    """A streamed transaction (``subxid == xid``) or one of its subtransactions rolled back."""

    xid: int
    subxid: int


@dataclass(frozen=True)
class Other:
    """A message follow does not act on (Origin, Type, a logical decoding Message)."""

    kind: str


Message = (
    Begin
    | Commit
    | Relation
    | Insert
    | Update
    | Delete
    | Truncate
    | LogicalMessage
    | StreamStart
    | StreamStop
    | StreamCommit
    | StreamAbort
    | Other
)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return int(value)

    def byte(self) -> str:
        value = self.data[self.at : self.at + 1].decode("ascii")
        self.at += 1
        return value

    def string(self) -> str:
        end = self.data.index(b"\0", self.at)
        value = self.data[self.at : end].decode("utf-8")
        self.at = end + 1
        return value

    def time(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self.take("!q"))

    def tuple(self) -> tuple[Value, ...]:
        values: list[Value] = []
        for _ in range(self.take("!h")):
            kind = self.byte()
            if kind == "n":
                values.append(None)
            elif kind == "u":
                values.append(UNCHANGED)
            elif kind == "t":
                length = self.take("!i")
                values.append(self.data[self.at : self.at + length].decode("utf-8"))
                self.at += length
            else:  # 'b' needs the binary option, which follow never asks for
                raise ProtocolError(f"tuple value of kind {kind!r}")
        return tuple(values)


def parse(data: bytes, streamed: bool = False) -> Message:
    """One pgoutput message; ``streamed``: it is inside a :class:`StreamStart` block, so its
    change messages carry an xid first."""
    reader = _Reader(bytes(data))
    kind = reader.byte()
    if kind == "B":
        return Begin(reader.take("!Q"), reader.time(), reader.take("!I"))
    if kind == "C":
        reader.take("!b")  # flags, unused
        return Commit(reader.take("!Q"), reader.take("!Q"), reader.time())
    if kind == "S":
        return StreamStart(reader.take("!I"), reader.take("!b") == 1)
    if kind == "E":
        return StreamStop()
    if kind == "c":
        streamed_xid = reader.take("!I")
        reader.take("!b")  # flags, unused
        return StreamCommit(streamed_xid, reader.take("!Q"), reader.take("!Q"), reader.time())
    if kind == "A":
        return StreamAbort(reader.take("!I"), reader.take("!I"))
    xid = reader.take("!I") if streamed and kind in "RIUDTMY" else None
    if kind == "R":
        oid, schema, name = reader.take("!I"), reader.string(), reader.string()
        identity = reader.byte()
        columns = []
        for _ in range(reader.take("!h")):
            flags = reader.take("!b")
            columns.append(
                Column(reader.string(), reader.take("!I"), reader.take("!i"), bool(flags & 1))
            )
        return Relation(oid, schema, name, identity, tuple(columns), xid)
    if kind == "I":
        relation = reader.take("!I")
        if reader.byte() != "N":
            raise ProtocolError("an insert without its new tuple")
        return Insert(relation, reader.tuple(), xid)
    if kind == "U":
        relation = reader.take("!I")
        marker = reader.byte()
        old = None
        if marker in ("K", "O"):
            old = reader.tuple()
            reader.byte()  # 'N'
        return Update(relation, reader.tuple(), old, marker == "K", xid)
    if kind == "D":
        relation = reader.take("!I")
        marker = reader.byte()
        return Delete(relation, reader.tuple(), marker == "K", xid)
    if kind == "T":
        count, options = reader.take("!i"), reader.take("!b")
        oids = tuple(reader.take("!I") for _ in range(count))
        return Truncate(oids, bool(options & 1), bool(options & 2), xid)
    if kind == "M":
        transactional = reader.take("!b") & 1 == 1
        lsn, prefix = reader.take("!Q"), reader.string()
        length = reader.take("!i")
        return LogicalMessage(
            transactional, lsn, prefix, reader.data[reader.at : reader.at + length], xid
        )
    if kind in ("O", "Y"):
        return Other(kind)
    raise ProtocolError(f"message type {kind!r}")
