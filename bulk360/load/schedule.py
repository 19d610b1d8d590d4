"""Relationship batches that cannot deadlock: the rows of a relationship file in rounds.

Creating or deleting a relationship locks its two nodes. Two transactions that lock the same
nodes in opposite orders deadlock, and the server aborts one; on a sample with popular products
and plans (hub nodes), parallel batches in file order do that all the time. So the rows are
scheduled by the *mix and batch* rule:

* every start node falls in one of ``N`` groups and every end node in one of ``N`` groups
  (a hash of its key values);
* a row goes to round ``(start group + end group) mod N`` and, within the round, to the
  partition of its start group. In one round each start group meets exactly one end group, so
  no two partitions share a node; the partitions of a round are written at the same time, the
  rounds one after another;
* when the start and the end are nodes of the same label (``Customer-REFERRED->Customer``) a
  node can be at either end: the partition is the *pair* of groups ``{a, b}``, and in round
  ``k`` each group pairs with exactly one other (``k - a``), so again no two partitions of a
  round share a group. ``N`` is ``2W - 1`` for ``W`` writers: odd, so that each round has one
  group paired with itself and ``W - 1`` pairs, ``W`` partitions.

``N`` (``W``) is at most the number of writers, and small enough that a partition holds a
batch of rows or more: each round waits for its slowest partition, so a file of one batch is one round
of one partition, and a file of 20 batches for 8 writers is 4 rounds of 4 partitions.

A partition's rows stay in file order and are written in batches one after another by one
writer. Node batches need none of this: each node's key is in one row of one batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import polars as pl

__all__ = ["groups_for", "rounds"]

_ROUND, _PART = "__round", "__part"


def groups_for(writers: int, monopartite: bool, rows: int | None = None, batch: int = 1) -> int:
    """How many node groups give ``writers`` partitions per round, no more than keep each of
    the ``groups²`` partitions of ``rows`` at a ``batch`` at least (a round costs a round trip:
    a small file is written in fewer rounds, one when it fits in a batch)."""
    groups = writers
    if rows is not None:
        groups = min(groups, math.isqrt(max(1, rows // max(1, batch))))
    return max(1, groups * 2 - 1 if monopartite else groups)


def _group(columns: Sequence[str], groups: int) -> pl.Expr:
    """A node's group from its key values (the same for the same values in either role)."""
    key = pl.struct([pl.col(c).alias(f"k{i}") for i, c in enumerate(columns)])
    return (key.hash(seed=360) % groups).cast(pl.Int64)


def rounds(
    frame: pl.DataFrame,
    start: Sequence[str],
    end: Sequence[str],
    writers: int,
    monopartite: bool,
    batch: int = 1,
) -> list[list[pl.DataFrame]]:
    """``frame``'s rows in rounds of partitions that share no node; ``start`` and ``end`` name
    the key columns of each row's two nodes. One writer gets one round of one partition."""
    if frame.height == 0:
        return []
    groups = groups_for(writers, monopartite, frame.height, batch)
    if groups == 1:
        return [[frame]]
    s, e = _group(start, groups), _group(end, groups)
    part = pl.min_horizontal(s, e) if monopartite else s
    keyed = frame.with_columns(((s + e) % groups).alias(_ROUND), part.alias(_PART))
    by_round: dict[int, list[pl.DataFrame]] = {}
    for (round_, _), rows in sorted(
        keyed.partition_by(_ROUND, _PART, maintain_order=True, as_dict=True).items()
    ):
        by_round.setdefault(int(round_), []).append(rows.drop(_ROUND, _PART))
    return list(by_round.values())
