"""A source's stream as transactions, and a window of transactions as its net effect per row.

The stream names tables by OID (a Relation message before a table's first change, and again
after its columns change): :class:`Decoder` keeps them, checks that each followed table still has
the columns and types follow was started with, and hands back whole transactions. :func:`net`
reduces a window of them to what each row (by replica identity) ends as: upserted with its last
values, or deleted; a ``TRUNCATE`` deletes every row the table held before it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bulk360.errors import SchemaDrift
from bulk360.follow.pgoutput import (
    UNCHANGED,
    Begin,
    Commit,
    Delete,
    Insert,
    Relation,
    Truncate,
    Update,
    Value,
    parse,
)

__all__ = [
    "Change",
    "Decoder",
    "Expected",
    "TableChanges",
    "Transaction",
    "format_lsn",
    "net",
    "parse_lsn",
]

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
class Transaction:
    end_lsn: int
    commit_time: datetime
    changes: tuple[Change, ...]


class Decoder:
    """Turns one source's messages into whole transactions."""

    def __init__(self, source: str, expected: Sequence[Expected]) -> None:
        self.source = source
        self.expected = {(e.schema, e.table): e for e in expected}
        self.relations: dict[int, tuple[Expected, tuple[str, ...]]] = {}
        self._changes: list[Change] = []
        self._begun: Begin | None = None

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
                    "schema-drift gate says what to do), then bulk360 follow stop --drop and "
                    "bulk360 follow to start again",
                ]
            )
        self.relations[message.oid] = (expected, tuple(c.name for c in message.columns))

    def _row(self, relation: int, values: tuple[Value, ...]) -> tuple[str, Row]:
        expected, columns = self.relations[relation]
        return expected.name, dict(zip(columns, values, strict=True))

    def feed(self, data: bytes) -> Transaction | None:
        """One message; a transaction when it is the commit of one."""
        message = parse(data)
        if isinstance(message, Begin):
            self._begun, self._changes = message, []
        elif isinstance(message, Relation):
            self._relation(message)
        elif isinstance(message, Insert) and message.relation in self.relations:
            table, new = self._row(message.relation, message.new)
            self._changes.append(Change(table, "insert", new=new))
        elif isinstance(message, Update) and message.relation in self.relations:
            table, new = self._row(message.relation, message.new)
            old = self._row(message.relation, message.old)[1] if message.old else None
            self._changes.append(Change(table, "update", new=new, old=old))
        elif isinstance(message, Delete) and message.relation in self.relations:
            table, old = self._row(message.relation, message.old)
            self._changes.append(Change(table, "delete", old=old))
        elif isinstance(message, Truncate):
            for oid in message.relations:
                if oid in self.relations:
                    self._changes.append(Change(self.relations[oid][0].name, "truncate"))
        elif isinstance(message, Commit):
            done = Transaction(message.end_lsn, message.commit_time, tuple(self._changes))
            self._changes, self._begun = [], None
            return done
        return None


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


def net(
    transactions: Sequence[Transaction], identities: Mapping[str, tuple[str, ...]]
) -> dict[str, TableChanges]:
    """What ``transactions`` (in commit order) leave of each row they touch."""
    found: dict[str, TableChanges] = {}
    for transaction in transactions:
        for change in transaction.changes:
            identity = identities[change.table]
            table = found.setdefault(change.table, TableChanges(change.table, identity))
            table.changes += 1
            if change.kind == "truncate":
                table.upserts.clear()
                table.deletes.clear()
                table.truncated = True
                continue
            old = tuple(change.old[c] for c in identity) if change.old else None
            if change.kind == "delete":
                assert old is not None
                table.upserts.pop(old, None)
                table.deletes.add(old)
                continue
            assert change.new is not None
            new = tuple(change.new[c] for c in identity)
            row = dict(change.new)
            earlier = table.upserts.get(old if old is not None else new)
            if old is not None and old != new:  # the identity changed: the old row is gone
                table.upserts.pop(old, None)
                table.deletes.add(old)
            if earlier is not None:  # a value TOAST left unsent is the window's earlier one
                row = {c: earlier[c] if v is UNCHANGED else v for c, v in row.items()}
            table.deletes.discard(new)
            table.upserts[new] = row
    return found
