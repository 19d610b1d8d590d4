"""pgoutput messages (built by hand, byte by byte, as PostgreSQL's protocol documentation gives
them), a window reduced to its net effect per row, and follow's state on disk."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from bulk360.errors import SchemaDrift
from bulk360.follow.changes import (
    Decoder,
    Expected,
    format_lsn,
    net,
    parse_lsn,
)
from bulk360.follow.pgoutput import (
    UNCHANGED,
    Begin,
    Commit,
    Delete,
    Insert,
    ProtocolError,
    Relation,
    Truncate,
    Update,
    parse,
)
from bulk360.follow.state import FollowState, Position, delta

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


def feed(decoder: Decoder, *messages: bytes) -> list[object]:
    return [found for m in messages if (found := decoder.feed(m)) is not None]


def test_a_window_reduces_to_the_last_state_of_each_row() -> None:
    decoder = Decoder("profiles", [expected()])
    insert = b"I" + struct.pack("!I", 16385) + b"N"
    update = b"U" + struct.pack("!I", 16385)
    delete = b"D" + struct.pack("!I", 16385) + b"K"
    transactions = feed(
        decoder,
        BEGIN,
        RELATION,
        insert + tuple_data("1", "a@x.org"),
        insert + tuple_data("2", "b@x.org"),
        update + b"N" + tuple_data("1", "a2@x.org"),
        COMMIT,
        BEGIN,
        delete + tuple_data("2", None),
        # The key changes: row 3 becomes row 4.
        insert + tuple_data("3", "c@x.org"),
        update + b"K" + tuple_data("3", None) + b"N" + tuple_data("4", UNCHANGED),
        insert + tuple_data("2", "b2@x.org"),  # deleted and inserted again
        COMMIT,
    )
    assert len(transactions) == 2
    changes = net(transactions, {"Account": ("account_id",)})["Account"]  # type: ignore[arg-type]
    assert changes.upserts == {
        ("1",): {"account_id": "1", "email": "a2@x.org"},
        ("2",): {"account_id": "2", "email": "b2@x.org"},
        # The value TOAST did not send is the window's earlier one.
        ("4",): {"account_id": "4", "email": "c@x.org"},
    }
    assert changes.deletes == {("3",)}
    assert changes.changes == 7


def test_a_truncate_removes_what_came_before_it() -> None:
    decoder = Decoder("profiles", [expected()])
    insert = b"I" + struct.pack("!I", 16385) + b"N"
    truncate = b"T" + struct.pack("!ib", 1, 0) + struct.pack("!I", 16385)
    transactions = feed(
        decoder,
        BEGIN,
        RELATION,
        insert + tuple_data("1", "a"),
        truncate,
        insert + tuple_data("5", "e"),
        COMMIT,
    )
    changes = net(transactions, {"Account": ("account_id",)})["Account"]  # type: ignore[arg-type]
    assert changes.truncated and list(changes.upserts) == [("5",)] and not changes.deletes


def test_a_column_changed_in_the_stream_stops_it_in_one_line_per_column() -> None:
    changed = Expected(
        "Account", "public", "accounts", {"account_id": 20, "name": 25}, ("account_id",)
    )
    decoder = Decoder("profiles", [changed])
    with pytest.raises(SchemaDrift) as caught:
        feed(decoder, BEGIN, RELATION)
    problems = caught.value.problems
    assert "column 'account_id' changed type (type oid 20 → 23)" in problems[0]
    assert "column 'name' is no longer sent" in problems[1]
    assert "column 'email' is sent but was not" in problems[2]
    assert "bulk360 follow stop --drop" in problems[-1]


def test_the_state_survives_a_restart_checkpoint_by_checkpoint(tmp_path: Path) -> None:
    identity = ["@id"]
    first = pl.DataFrame({"@id": ["1", "2", "3"], "name:string": ["a", "b", "c"]})
    state = FollowState(tmp_path, "plan-1", {"src": Position("0/10")}, {"T": first})
    state.compact()
    # Checkpoint 1: row 2 changed, row 3 removed, row 4 added.
    changed = pl.DataFrame({"@id": ["2", "4"], "name:string": ["B", "d"]})
    state.tables["T"] = pl.DataFrame({"@id": ["1", "2", "4"], "name:string": ["a", "B", "d"]})
    state.positions["src"] = Position("0/20", "2025-11-03T12:00:00+00:00")
    state.save({"T": delta(changed, pl.DataFrame({"@id": ["3"]}))})
    # Checkpoint 2: row 2 changed again, row 4 removed, row 3 back.
    changed = pl.DataFrame({"@id": ["2", "3"], "name:string": ["BB", "c2"]})
    state.tables["T"] = pl.DataFrame({"@id": ["1", "2", "3"], "name:string": ["a", "BB", "c2"]})
    state.positions["src"] = Position("0/30", "2025-11-03T12:01:00+00:00")
    state.save({"T": delta(changed, pl.DataFrame({"@id": ["4"]}))})
    # A checkpoint that wrote its delta but not state.json does not count.
    (tmp_path / "tables" / "T.3.parquet").write_bytes(b"half written")
    again = FollowState.load(tmp_path, {"T": identity})
    assert again.positions["src"] == Position("0/30", "2025-11-03T12:01:00+00:00")
    assert again.tables["T"].sort("@id").rows() == [("1", "a"), ("2", "BB"), ("3", "c2")]
    again.compact()
    assert not list((tmp_path / "tables").glob("T.1.parquet"))
    assert FollowState.load(tmp_path, {"T": identity}).tables["T"].height == 3
