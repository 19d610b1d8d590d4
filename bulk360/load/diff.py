"""Sync's comparison of two import packages, by key, as a change set
(:mod:`bulk360.load.changeset`).

* per label, nodes by key: **inserted** (a new key), **updated** (a property changed, appeared
  or became NULL; a column added, dropped or now excluded changes every row) and **deleted**
  (a key that is gone). Each side is scanned for its key columns and a hash of each row's
  properties only (never the node ids, which every run gives anew), so memory holds two hashes
  and a key per node, not the files;
* per relationship mapping, relationships as a multiset of (start key, end key, properties)
  (:func:`bulk360.load.changeset.differing_pairs`): every pair of nodes whose relationships
  differ is **replaced**.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from bulk360.load.changeset import NodeChanges, PairChanges, pair_changes
from bulk360.package.files import NodeFile, RelationshipFile, keys_by_id, node_rows, scan

__all__ = ["KeyCache", "diff_mapping", "diff_nodes"]


# ---- the diff -------------------------------------------------------------------------------


def _keyed(spec: NodeFile) -> pl.LazyFrame:
    """A node file's key values (as text, ``k0``...) and a hash of each row's properties."""
    return scan(spec.path).select(
        *[pl.col(k.column).alias(f"k{i}") for i, k in enumerate(spec.key_fields())],
        pl.struct([f.canonical(pl.col(f.column)) for f in spec.fields]).hash().alias("h"),
    )


def _typed_keys(spec: NodeFile, frame: pl.LazyFrame, alias: str = "k") -> pl.LazyFrame:
    """Key values as text (``k0``...) turned into the key fields' types."""
    return frame.select(
        [
            k.parse(pl.col(f"{alias}{i}")).alias(f"{alias}{i}")
            for i, k in enumerate(spec.key_fields())
        ]
    )


def _empty(columns: Sequence[str]) -> pl.DataFrame:
    return pl.DataFrame(schema=dict.fromkeys(columns, pl.String))


def diff_nodes(old: NodeFile | None, new: NodeFile | None) -> NodeChanges:
    """Compare one label's node files by key (either may be missing: a label added or gone)."""
    label = (new or old).label  # type: ignore[union-attr]
    if new is None:
        assert old is not None
        deletes = _typed_keys(old, _keyed(old)).collect()
        return NodeChanges(label, None, (), deletes, old, 0, 0)
    # New keys or a new group label: every node is written again.
    if old is None or list(old.keys) != list(new.keys) or old.group_label != new.group_label:
        upserts = node_rows(new, scan(new.path))
        deletes = _typed_keys(old, _keyed(old)).collect() if old else _empty([])
        return NodeChanges(
            label,
            new,
            ((new, upserts),),
            deletes,
            old,
            upserts.height,
            0,
            rebuilt=old is not None,
        )
    keys = [f"k{i}" for i in range(len(new.keys))]
    same_columns = list(old.headers[1:]) == list(new.headers[1:])
    joined = (
        _keyed(old)
        .join(_keyed(new), on=keys, how="full", coalesce=True, suffix="_new")
        .select(
            *keys,
            inserted=pl.col("h").is_null(),
            deleted=pl.col("h_new").is_null(),
            # A column added, dropped or retyped changes every row.
            updated=pl.col("h").is_not_null()
            & pl.col("h_new").is_not_null()
            & ((pl.col("h") != pl.col("h_new")) if same_columns else pl.lit(True)),
        )
        .filter(pl.col("inserted") | pl.col("deleted") | pl.col("updated"))
        .collect()
    )
    changed = joined.filter(~pl.col("deleted")).select(keys)
    key_columns = [k.column for k in new.key_fields()]
    upserts = node_rows(
        new, scan(new.path).join(changed.lazy(), left_on=key_columns, right_on=keys, how="semi")
    )
    deletes = _typed_keys(old, joined.lazy().filter(pl.col("deleted")).select(keys)).collect()
    removed = tuple(f.name for f in old.fields if f.name not in {g.name for g in new.fields})
    return NodeChanges(
        label,
        new,
        ((new, upserts),),
        deletes,
        old,
        int(joined["inserted"].sum()),
        int(joined["updated"].sum()),
        removed,
    )


class KeyCache:
    """Each node file's ids with their keys (as text), read once however many mappings use it."""

    def __init__(self) -> None:
        self._frames: dict[Path, pl.DataFrame] = {}

    def of(self, node: NodeFile, alias: str) -> pl.LazyFrame:
        """``<alias>|id`` and the key values ``<alias>0``... of ``node``'s file."""
        if node.path not in self._frames:
            self._frames[node.path] = (
                keys_by_id(node, "k")
                .select("k|id", *[pl.col(f"k{i}").cast(pl.String) for i in range(len(node.keys))])
                .collect()
            )
        names = {"k|id": f"{alias}|id"} | {f"k{i}": f"{alias}{i}" for i in range(len(node.keys))}
        return self._frames[node.path].lazy().rename(names)


def _pairs(spec: RelationshipFile, keys: KeyCache) -> pl.LazyFrame:
    """A relationship file's rows: start and end key values (text) and the properties (text)."""
    starts = keys.of(spec.start, "s")
    ends = keys.of(spec.end, "e")
    return (
        scan(spec.path)
        .with_columns(
            pl.col(spec.headers[0]).cast(pl.Int64).alias("s|id"),
            pl.col(spec.headers[1]).cast(pl.Int64).alias("e|id"),
        )
        .with_columns([f.canonical(pl.col(f.column)) for f in spec.fields])
        .join(starts, on="s|id", how="inner")
        .join(ends, on="e|id", how="inner")
        .drop("s|id", "e|id", *spec.headers[:2])
    )


def diff_mapping(
    old: RelationshipFile | None, new: RelationshipFile, keys: KeyCache | None = None
) -> PairChanges:
    """Compare one mapping's relationship files as multisets of (pair, properties); ``old`` is
    None when the mapping is new (every pair is added)."""
    keys = keys or KeyCache()
    new_pairs = _pairs(new, keys)
    old_pairs = new_pairs.head(0) if old is None else _pairs(old, keys)
    return pair_changes(new.name, new, old_pairs, new_pairs)
