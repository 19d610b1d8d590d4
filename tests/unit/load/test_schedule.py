"""The rounds of relationship rows: partitions written together never share a node."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from bulk360.load.schedule import groups_for, rounds

pairs = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), max_size=400)


def frame_of(rows: list[tuple[int, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "s0": [s for s, _ in rows],
            "e0": [e for _, e in rows],
            "n": list(range(len(rows))),
        },
        schema={"s0": pl.Int64, "e0": pl.Int64, "n": pl.Int64},
    )


def nodes(partition: pl.DataFrame, monopartite: bool) -> set[tuple[str, int]]:
    """The nodes a partition locks; two labels' nodes are different even with equal keys."""
    start = "x" if monopartite else "start"
    end = "x" if monopartite else "end"
    return {(start, v) for v in partition["s0"]} | {(end, v) for v in partition["e0"]}


@settings(max_examples=150, deadline=None)
@given(rows=pairs, writers=st.integers(1, 9), monopartite=st.booleans(), batch=st.integers(1, 30))
def test_partitions_of_a_round_share_no_node_and_every_row_is_written_once(
    rows: list[tuple[int, int]], writers: int, monopartite: bool, batch: int
) -> None:
    schedule = rounds(frame_of(rows), ["s0"], ["e0"], writers, monopartite, batch)
    written = [n for parts in schedule for part in parts for n in part["n"]]
    assert sorted(written) == list(range(len(rows)))  # each row once
    for parts in schedule:
        assert all(part.height for part in parts)
        assert len(parts) <= writers  # no more writers at once than asked for
        seen: set[tuple[str, int]] = set()
        for part in parts:
            locked = nodes(part, monopartite)
            assert not locked & seen
            seen |= locked
        for part in parts:  # a partition keeps the file's order
            assert part["n"].to_list() == sorted(part["n"].to_list())


def test_a_small_file_is_one_round_of_one_partition() -> None:
    frame = frame_of([(i % 3, i % 5) for i in range(90)])
    assert [[p.height for p in r] for r in rounds(frame, ["s0"], ["e0"], 8, False, 100)] == [[90]]
    assert rounds(frame.clear(), ["s0"], ["e0"], 8, False, 100) == []


def test_groups_follow_the_writers_and_the_size() -> None:
    assert groups_for(8, False, 1_000_000, 5_000) == 8
    assert groups_for(8, True, 1_000_000, 5_000) == 15  # 7 pairs and 1 group alone a round
    assert groups_for(8, False, 20 * 5_000, 5_000) == 4  # 16 partitions of 6,250 rows
    assert groups_for(8, True, 5_000, 5_000) == 1
    assert groups_for(1, True, 1_000_000, 5_000) == 1


def test_keys_of_several_columns_and_of_text() -> None:
    frame = pl.DataFrame(
        {
            "s0": [f"a{i % 7}" for i in range(500)],
            "s1": [i % 2 for i in range(500)],
            "e0": [f"a{i % 11}" for i in range(500)],
            "e1": [i % 3 for i in range(500)],
        }
    )
    schedule = rounds(frame, ["s0", "s1"], ["e0", "e1"], 4, True, 10)
    assert sum(p.height for r in schedule for p in r) == 500
    for parts in schedule:
        seen: set[tuple[str, int]] = set()
        for part in parts:
            locked = set(zip(part["s0"], part["s1"], strict=True))
            locked |= set(zip(part["e0"], part["e1"], strict=True))
            assert not locked & seen
            seen |= locked
