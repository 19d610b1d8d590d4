"""PostgreSQL's ``pgoutput`` logical replication messages (protocol version 1), parsed.

Each message is one row of ``pg_logical_slot_peek_binary_changes``: a type byte and its fields,
integers in network order, strings NUL-terminated (PostgreSQL's "Logical Replication Message
Formats"). Column values come as text (the type's output function), ``None`` for NULL, and
:data:`UNCHANGED` for a TOASTed value an update did not change (its value is not sent).
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
    "Message",
    "ProtocolError",
    "Relation",
    "Truncate",
    "Update",
    "parse",
]

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class _Unchanged:
    """A TOASTed value an update left as it was (pgoutput does not send it)."""

    def __repr__(self) -> str:
        return "UNCHANGED"


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


@dataclass(frozen=True)
class Insert:
    relation: int
    new: tuple[Value, ...]


@dataclass(frozen=True)
class Update:
    relation: int
    new: tuple[Value, ...]
    old: tuple[Value, ...] | None
    """The old row's key columns (``K``, when the key changed) or all its columns (``O``,
    replica identity full); None when the key did not change."""
    old_is_key: bool = False


@dataclass(frozen=True)
class Delete:
    relation: int
    old: tuple[Value, ...]
    old_is_key: bool
    """Whether ``old`` holds only the key columns (the others None)."""


@dataclass(frozen=True)
class Truncate:
    relations: tuple[int, ...]
    cascade: bool
    restart_identity: bool


@dataclass(frozen=True)
class Other:
    """A message follow does not act on (Origin, Type, a logical decoding Message)."""

    kind: str


Message = Begin | Commit | Relation | Insert | Update | Delete | Truncate | Other


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


def parse(data: bytes) -> Message:
    """One pgoutput message."""
    reader = _Reader(bytes(data))
    kind = reader.byte()
    if kind == "B":
        return Begin(reader.take("!Q"), reader.time(), reader.take("!I"))
    if kind == "C":
        reader.take("!b")  # flags, unused
        return Commit(reader.take("!Q"), reader.take("!Q"), reader.time())
    if kind == "R":
        oid, schema, name = reader.take("!I"), reader.string(), reader.string()
        identity = reader.byte()
        columns = []
        for _ in range(reader.take("!h")):
            flags = reader.take("!b")
            columns.append(
                Column(reader.string(), reader.take("!I"), reader.take("!i"), bool(flags & 1))
            )
        return Relation(oid, schema, name, identity, tuple(columns))
    if kind == "I":
        relation = reader.take("!I")
        if reader.byte() != "N":
            raise ProtocolError("an insert without its new tuple")
        return Insert(relation, reader.tuple())
    if kind == "U":
        relation = reader.take("!I")
        marker = reader.byte()
        old = None
        if marker in ("K", "O"):
            old = reader.tuple()
            reader.byte()  # 'N'
        return Update(relation, reader.tuple(), old, marker == "K")
    if kind == "D":
        relation = reader.take("!I")
        marker = reader.byte()
        return Delete(relation, reader.tuple(), marker == "K")
    if kind == "T":
        count, options = reader.take("!i"), reader.take("!b")
        oids = tuple(reader.take("!I") for _ in range(count))
        return Truncate(oids, bool(options & 1), bool(options & 2))
    if kind in ("O", "Y", "M"):
        return Other(kind)
    raise ProtocolError(f"message type {kind!r}")
