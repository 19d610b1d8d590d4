"""Dense global node ids, and the one id Neo4j reserves."""

from __future__ import annotations

import pytest

from bulk360.plan.ids import RESERVED_ID, IdRange, assign_ranges


def test_ranges_follow_each_other_densely() -> None:
    ranges = assign_ranges([("Plan", 4), ("Tag", 0), ("Account", 400), ("PlayEvent", None)])
    assert ranges == {
        "Plan": IdRange(0, 4),
        "Tag": IdRange(4, 0),
        "Account": IdRange(4, 400),
        "PlayEvent": IdRange(404, None),
    }
    assert ranges["Plan"].expression().as_string(None) == "0 + row_number() OVER () - 1"
    assert ranges["Account"].holds(4, 403, 400) and not ranges["Account"].holds(4, 404, 400)
    assert not ranges["Account"].holds(4, 402, 399)  # a row missing
    assert ranges["PlayEvent"].holds(404, 9_466, 9_063)


def test_the_reserved_id_is_skipped() -> None:
    ranges = assign_ranges([("Big", RESERVED_ID + 10), ("After", 5), ("Last", None)])
    big = ranges["Big"]
    assert big.id_at(RESERVED_ID - 1) == RESERVED_ID - 1
    assert big.id_at(RESERVED_ID) == RESERVED_ID + 1  # the reserved id is never given
    assert big.end == RESERVED_ID + 11 == ranges["After"].offset
    assert "CASE WHEN" in big.expression().as_string(None)
    assert "CASE" not in ranges["After"].expression().as_string(None)
    assert big.holds(0, RESERVED_ID + 10, RESERVED_ID + 10)
    # An open range that starts below the reserved id may reach it.
    open_range = assign_ranges([("Small", 3), ("Huge", None)])["Huge"]
    assert "CASE WHEN" in open_range.expression().as_string(None)


def test_only_the_last_label_may_be_uncounted() -> None:
    with pytest.raises(ValueError, match="only the last label"):
        assign_ranges([("A", None), ("B", 3)])
