"""Follow's state store on disk: lookups by key and join columns, checkpoints that survive a
restart, and a store that cannot be used named in one line with its fix."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from bulk360.errors import StateError
from bulk360.follow.store import Checkpoint, Position, StateStore, StoredTable, TableWrite

TABLE = StoredTable(
    "T",
    0,
    {
        "@id": pl.String,
        ":ID": pl.Int64,
        "id:long": pl.Int64,
        "a:long": pl.Int64,
        "b:string": pl.String,
    },
    ("@id",),
    ((":ID",), ("a:long", "b:string")),
)


def filled(folder: Path) -> StateStore:
    rows = pl.DataFrame(
        {
            "@id": ["1", "2", "3"],
            ":ID": [0, 1, 2],
            "id:long": [1, 2, 3],
            "a:long": [10, 10, None],
            "b:string": ["x", "y", "x"],
        }
    )
    with StateStore.create(folder, "plan-1", [TABLE]) as store:
        store.fill("T", [rows.head(2), rows.tail(1)])
        store.positions["src"] = Position("0/10")
        store.next_ids["T"] = 3
        assert not StateStore.path_in(folder).exists()  # only once it is complete
    return store


def test_rows_are_found_by_identity_and_by_join_columns(tmp_path: Path) -> None:
    store = filled(tmp_path)
    found = store.rows("T", ["@id"], pl.DataFrame({"@id": ["2", "3", "9", None]}))
    assert sorted(found["id:long"]) == [2, 3]
    pairs = pl.DataFrame({"a:long": [10, None], "b:string": ["x", "x"]})
    assert store.rows("T", ["a:long", "b:string"], pairs)["id:long"].to_list() == [1]
    assert store.rows("T", [":ID"], pl.DataFrame({":ID": [2]}))["@id"].to_list() == ["3"]
    assert (
        store.rows("T", ["@id"], pl.DataFrame({"@id": []}, schema={"@id": pl.String})).height == 0
    )


def test_a_checkpoint_survives_a_restart_and_a_partial_one_keeps_the_position(
    tmp_path: Path,
) -> None:
    store = filled(tmp_path)
    written = pl.DataFrame(
        {
            "@id": ["2", "4"],
            ":ID": [1, 3],
            "id:long": [2, 4],
            "a:long": [11, 12],
            "b:string": ["y", None],
        }
    )
    removed = pl.DataFrame({"@id": ["3"]})
    store.checkpoint(
        {"T": TableWrite(written, removed)},
        {"T": 4},
        Checkpoint("src", "0/10", "0/20", 2, 3),
        Position("0/20", "2025-11-03T12:00:00+00:00"),
    )
    store.checkpoint({}, {}, Checkpoint("src", "0/20", "0/20", 0, 5, partial=True), None)
    store.close()
    again = StateStore.open(tmp_path, "plan-1", [TABLE])
    assert again.positions["src"] == Position("0/20", "2025-11-03T12:00:00+00:00")
    assert again.next_ids == {"T": 4}
    rows = again.all_rows("T").sort("@id")
    assert rows.select("@id", "a:long").rows() == [("1", 10), ("2", 11), ("4", 12)]
    assert [c.partial for c in again.checkpoints("src")] == [False, True]
    cleared = TableWrite(written.head(1), removed.head(0), cleared=True)
    again.checkpoint({"T": cleared}, {}, Checkpoint("src", "0/20", "0/30", 1, 1), Position("0/30"))
    assert again.all_rows("T")["@id"].to_list() == ["2"]


def test_a_store_that_cannot_be_used_is_one_line_with_its_fix(tmp_path: Path) -> None:
    filled(tmp_path / "ok").close()
    with pytest.raises(StateError, match=r"other control rows.*follow --clear"):
        StateStore.open(tmp_path / "ok", "plan-2", [TABLE])
    with pytest.raises(StateError, match=r"is missing.*follow --clear"):
        StateStore.open(tmp_path / "none", "plan-1", [TABLE])
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    StateStore.path_in(damaged).write_bytes(b"not a database at all" * 100)
    with pytest.raises(StateError, match=r"is damaged.*follow --clear"):
        StateStore.open(damaged, "plan-1", [TABLE])
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "state.json").write_text("{}")
    assert StateStore.exists(earlier)
    with pytest.raises(StateError, match=r"earlier bulk360.*follow --clear"):
        StateStore.open(earlier, "plan-1", [TABLE])


def test_a_failed_fill_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), StateStore.create(tmp_path, "plan-1", [TABLE]):
        raise RuntimeError("the source went away")
    assert not StateStore.exists(tmp_path)
    assert not list(tmp_path.glob("state.sqlite*"))
