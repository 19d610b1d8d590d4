"""pgoutput messages (built by hand, byte by byte, as PostgreSQL's protocol documentation gives
them), versions 1 and 2: transactions in commit order, streamed ones spooled until their commit,
markers in their place, and windows reduced to their net effect per row."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bulk360.errors import SchemaDrift
from bulk360.follow.changes import (
    MARKER_PREFIX,
    Change,
    Committed,
    Decoder,
    Event,
    Expected,
    Marker,
    Window,
    WindowBuilder,
    format_lsn,
    parse_lsn,
)
from bulk360.follow.pgoutput import (
    UNCHANGED,
    Begin,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    ProtocolError,
    Relation,
    Truncate,
    Update,
    parse,
)

_EPOCH_2000 = 946684800_000000  # µs from 1970 to 2000-01-01


def micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000) - _EPOCH_2000


def string(text: str) -> bytes:
    return text.encode() + b"\0"


def tuple_data(*values: str | object | None) -> bytes:
    out = struct.pack("!h", len(values))
    for value in values:
        if value is None:
            out += b"n"
        elif value is UNCHANGED:
            out += b"u"
        else:
            raw = str(value).encode()
            out += b"t" + struct.pack("!i", len(raw)) + raw
    return out


MOMENT = datetime(2025, 11, 3, 12, 0, tzinfo=UTC)
BEGIN = b"B" + struct.pack("!QqI", 0x16B374D848, micros(MOMENT), 7)
COMMIT = b"C" + struct.pack("!bQQq", 0, 0x16B374D848, 0x16B374D878, micros(MOMENT))
RELATION = (
    b"R"
    + struct.pack("!I", 16385)
    + string("public")
    + string("accounts")
    + b"d"
    + struct.pack("!h", 2)
    + struct.pack("!b", 1)
    + string("account_id")
    + struct.pack("!Ii", 23, -1)
    + struct.pack("!b", 0)
    + string("email")
    + struct.pack("!Ii", 25, -1)
)


def test_every_message_parses() -> None:
    begin = parse(BEGIN)
    assert begin == Begin(0x16B374D848, MOMENT, 7)
    commit = parse(COMMIT)
    assert isinstance(commit, Commit) and commit.end_lsn == 0x16B374D878
    relation = parse(RELATION)
    assert isinstance(relation, Relation)
    assert (relation.schema, relation.name, relation.replica_identity) == (
        "public",
        "accounts",
        "d",
    )
    assert [(c.name, c.type_oid, c.key) for c in relation.columns] == [
        ("account_id", 23, True),
        ("email", 25, False),
    ]
    insert = parse(b"I" + struct.pack("!I", 16385) + b"N" + tuple_data("1", "a@x.org"))
    assert insert == Insert(16385, ("1", "a@x.org"))
    update = parse(
        b"U"
        + struct.pack("!I", 16385)
        + b"K"
        + tuple_data("1", None)
        + b"N"
        + tuple_data("2", UNCHANGED)
    )
    assert update == Update(16385, ("2", UNCHANGED), ("1", None), True)
    plain = parse(b"U" + struct.pack("!I", 16385) + b"N" + tuple_data("2", None))
    assert plain == Update(16385, ("2", None), None, False)
    delete = parse(b"D" + struct.pack("!I", 16385) + b"K" + tuple_data("3", None))
    assert delete == Delete(16385, ("3", None), True)
    truncate = parse(b"T" + struct.pack("!ib", 2, 1) + struct.pack("!II", 16385, 16390))
    assert truncate == Truncate((16385, 16390), cascade=True, restart_identity=False)
    with pytest.raises(ProtocolError):
        parse(b"Z")


def test_lsns_print_as_postgresql_prints_them() -> None:
    assert parse_lsn("16/B374D848") == 0x16B374D848
    assert format_lsn(0x16B374D848) == "16/B374D848"
    assert format_lsn(parse_lsn("0/0")) == "0/0"


def expected() -> Expected:
    return Expected(
        "Account", "public", "accounts", {"account_id": 23, "email": 25}, ("account_id",)
    )


def decoder(tmp_path: Path, applied: int = 0) -> Decoder:
    return Decoder("profiles", [expected()], tmp_path / "spool", applied)


def events(decoder: Decoder, *messages: bytes) -> list[Event]:
    for message in messages:
        decoder.feed(message)
    found = []
    while (event := decoder.next_event()) is not None:
        found.append(event)
    return found


def window_of(found: list[Event], max_rows: int = 1_000) -> list[Window]:
    builder = WindowBuilder("profiles", {"Account": ("account_id",)}, 0)
    windows = []
    for event in found:
        builder.add(event)
        if builder.window.rows >= max_rows:
            windows.append(builder.cut())
    windows.append(builder.cut())
    return windows


INSERT = b"I" + struct.pack("!I", 16385) + b"N"
UPDATE = b"U" + struct.pack("!I", 16385)
DELETE = b"D" + struct.pack("!I", 16385) + b"K"


def test_a_window_reduces_to_the_last_state_of_each_row(tmp_path: Path) -> None:
    found = events(
        decoder(tmp_path),
        BEGIN,
        RELATION,
        INSERT + tuple_data("1", "a@x.org"),
        INSERT + tuple_data("2", "b@x.org"),
        UPDATE + b"N" + tuple_data("1", "a2@x.org"),
        COMMIT,
        BEGIN,
        DELETE + tuple_data("2", None),
        # The key changes: row 3 becomes row 4.
        INSERT + tuple_data("3", "c@x.org"),
        UPDATE + b"K" + tuple_data("3", None) + b"N" + tuple_data("4", UNCHANGED),
        INSERT + tuple_data("2", "b2@x.org"),  # deleted and inserted again
        COMMIT,
    )
    assert sum(isinstance(e, Committed) for e in found) == 2
    (window,) = window_of(found)
    changes = window.changes["Account"]
    assert changes.upserts == {
        ("1",): {"account_id": "1", "email": "a2@x.org"},
        ("2",): {"account_id": "2", "email": "b2@x.org"},
        # The value TOAST did not send is the window's earlier one.
        ("4",): {"account_id": "4", "email": "c@x.org"},
    }
    assert changes.deletes == {("3",)}
    assert changes.changes == 7
    assert (window.rows, window.transactions, window.partial) == (7, 2, False)
    assert window.end is not None and window.end.end_lsn == 0x16B374D878


def test_a_transaction_larger_than_a_window_is_applied_in_parts(tmp_path: Path) -> None:
    rows = [INSERT + tuple_data(str(i), f"{i}@x.org") for i in range(5)]
    windows = window_of(events(decoder(tmp_path), BEGIN, RELATION, *rows, COMMIT), max_rows=2)
    # Two parts without a position of their own, then the rest with the commit's.
    assert [(w.rows, w.partial, w.end is None) for w in windows] == [
        (2, True, True),
        (2, True, True),
        (1, False, False),
    ]
    assert windows[1].from_lsn == windows[0].from_lsn == 0


def test_a_transaction_the_state_holds_is_skipped(tmp_path: Path) -> None:
    # Applied up to the end of this very transaction: the server sent it again.
    again = events(
        decoder(tmp_path, applied=0x16B374D878),
        BEGIN,
        RELATION,
        INSERT + tuple_data("1", "a"),
        COMMIT,
    )
    assert again == []
    fresh = events(decoder(tmp_path, applied=0x16B374D848 - 1), BEGIN, RELATION, COMMIT)
    assert [type(e) for e in fresh] == [Committed]


def streamed(kind: bytes, xid: int, body: bytes) -> bytes:
    return kind + struct.pack("!I", xid) + body


def test_a_streamed_transaction_waits_on_disk_for_its_commit(tmp_path: Path) -> None:
    source = decoder(tmp_path)
    start = b"S" + struct.pack("!Ib", 700, 1)
    relation = b"R" + struct.pack("!I", 700) + RELATION[1:]
    found = events(
        source,
        start,
        relation,
        streamed(b"I", 700, struct.pack("!I", 16385) + b"N" + tuple_data("1", "a")),
        # A subtransaction's change, rolled back below.
        streamed(b"I", 701, struct.pack("!I", 16385) + b"N" + tuple_data("2", "b")),
        b"E",
        # A small transaction commits in between, whole.
        BEGIN,
        INSERT + tuple_data("9", "z"),
        COMMIT,
        b"S" + struct.pack("!Ib", 700, 0),
        streamed(b"U", 700, struct.pack("!I", 16385) + b"N" + tuple_data("1", UNCHANGED)),
        b"E",
        b"A" + struct.pack("!II", 700, 701),
    )
    # Nothing of the streamed transaction before its commit: it is in the spool.
    assert [type(e) for e in found] == [Change, Committed]
    assert list((tmp_path / "spool").glob("*.spool"))
    commit = b"c" + struct.pack("!IbQQq", 700, 0, 0x20, 0x28, micros(MOMENT))
    found = events(source, commit)
    assert [(type(e), getattr(e, "kind", None)) for e in found] == [
        (Change, "insert"),
        (Change, "update"),
        (Committed, None),
    ]
    assert found[1].new == {"account_id": "1", "email": UNCHANGED}  # type: ignore[union-attr]
    assert not list((tmp_path / "spool").glob("*.spool"))
    # A streamed transaction rolled back leaves nothing.
    events(source, b"S" + struct.pack("!Ib", 800, 1), b"E", b"A" + struct.pack("!II", 800, 800))
    assert not list((tmp_path / "spool").glob("*.spool"))


def test_markers_come_in_their_place_and_others_messages_do_not(tmp_path: Path) -> None:
    def message(prefix: str, content: bytes, flags: int = 0) -> bytes:
        return (
            b"M" + struct.pack("!bQ", flags, 0x30) + string(prefix)
            + struct.pack("!i", len(content)) + content
        )  # fmt: skip

    found = events(
        decoder(tmp_path),
        BEGIN,
        RELATION,
        INSERT + tuple_data("1", "a"),
        COMMIT,
        message(MARKER_PREFIX, b"abc:1"),
        message("someone.else", b"x"),
        message(MARKER_PREFIX, b"transactional", flags=1),
    )
    assert found[-1] == Marker("abc:1") and len(found) == 3
    assert parse(message("p", b"\x00\x01")) == LogicalMessage(False, 0x30, "p", b"\x00\x01")


def test_a_truncate_removes_what_came_before_it(tmp_path: Path) -> None:
    truncate = b"T" + struct.pack("!ib", 1, 0) + struct.pack("!I", 16385)
    found = events(
        decoder(tmp_path),
        BEGIN,
        RELATION,
        INSERT + tuple_data("1", "a"),
        truncate,
        INSERT + tuple_data("5", "e"),
        COMMIT,
    )
    changes = window_of(found)[0].changes["Account"]
    assert changes.truncated and list(changes.upserts) == [("5",)] and not changes.deletes


def test_a_column_changed_in_the_stream_stops_it_in_one_line_per_column(tmp_path: Path) -> None:
    changed = Expected(
        "Account", "public", "accounts", {"account_id": 20, "name": 25}, ("account_id",)
    )
    source = Decoder("profiles", [changed], tmp_path, 0)
    with pytest.raises(SchemaDrift) as caught:
        events(source, BEGIN, RELATION)
    problems = caught.value.problems
    assert "column 'account_id' changed type (type oid 20 → 23)" in problems[0]
    assert "column 'name' is no longer sent" in problems[1]
    assert "column 'email' is sent but was not" in problems[2]
    assert "bulk360 follow --clear" in problems[-1]
