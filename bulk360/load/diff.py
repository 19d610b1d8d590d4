"""Sync's comparison of two import packages, by key.

* per label, nodes by key: **inserted** (a new key), **updated** (a property changed, appeared
  or became NULL; a column added, dropped or now excluded changes every row) and **deleted**
  (a key that is gone). Each side is scanned for its key columns and a hash of each row's
  properties only (never the node ids, which every run gives anew), so memory holds two hashes
  and a key per node, not the files;
* per relationship mapping, relationships as a multiset of (start key, end key, properties):
  every pair of nodes whose relationships differ is **replaced** (its old relationships
  deleted, its new ones created), which covers added and removed pairs, changed properties and
  repeated pairs alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from bulk360.package.files import NodeFile, RelationshipFile, keys_by_id, node_rows, scan

__all__ = ["KeyCache", "LabelDiff", "MappingDiff", "diff_mapping", "diff_nodes"]


@dataclass(frozen=True)
class LabelDiff:
    """What changed of one label's nodes."""

    label: str
    new: NodeFile | None
    old: NodeFile | None
    upserts: pl.DataFrame
    """Typed rows of the new file to merge, in the order of ``new.fields``."""
    deletes: pl.DataFrame
    """Typed key values of the nodes to delete (the old file's key fields)."""
    inserted: int
    updated: int
    removed_properties: tuple[str, ...] = ()
    """Columns of the old file that the new one no longer has: removed from every node."""
    rebuilt: bool = False
    """The key columns changed: every old node is deleted first and every new one inserted."""

    @property
    def deleted(self) -> int:
        return self.deletes.height


@dataclass(frozen=True)
class MappingDiff:
    """What changed of one relationship mapping's relationships (or of a rebuilt group)."""

    name: str
    new: RelationshipFile | None
    replace: pl.DataFrame
    """Per pair of nodes to replace: start key values, end key values, and the list of the new
    relationships' typed property values (empty: the pair loses its relationships)."""
    added: int
    removed: int
    rebuilt: bool = False


# ---- the diff -------------------------------------------------------------------------------


def _keyed(spec: NodeFile) -> pl.LazyFrame:
    """A node file's key values (as text, ``k0``...) and a hash of each row's properties."""
    return scan(spec.path).select(
        *[pl.col(k.column).alias(f"k{i}") for i, k in enumerate(spec.key_fields())],
        pl.struct([pl.col(f.column) for f in spec.fields]).hash().alias("h"),
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


def diff_nodes(old: NodeFile | None, new: NodeFile | None) -> LabelDiff:
    """Compare one label's node files by key (either may be missing: a label added or gone)."""
    label = (new or old).label  # type: ignore[union-attr]
    if new is None:
        assert old is not None
        deletes = _typed_keys(old, _keyed(old)).collect()
        return LabelDiff(label, None, old, pl.DataFrame(), deletes, 0, 0)
    # New keys or a new group label: every node is written again.
    if old is None or list(old.keys) != list(new.keys) or old.group_label != new.group_label:
        upserts = node_rows(new, scan(new.path))
        deletes = _typed_keys(old, _keyed(old)).collect() if old else _empty([])
        return LabelDiff(
            label, new, old, upserts, deletes, upserts.height, 0, rebuilt=old is not None
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
    return LabelDiff(
        label,
        new,
        old,
        upserts,
        deletes,
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
    """A relationship file's rows: start and end key values (text), a hash of the properties,
    and the properties (text)."""
    fields = spec.fields
    starts = keys.of(spec.start, "s")
    ends = keys.of(spec.end, "e")
    hashed = (
        pl.struct([pl.col(f.column) for f in fields]).hash() if fields else pl.lit(0, pl.UInt64)
    )
    return (
        scan(spec.path)
        .with_columns(
            pl.col(spec.headers[0]).cast(pl.Int64).alias("s|id"),
            pl.col(spec.headers[1]).cast(pl.Int64).alias("e|id"),
            hashed.alias("h"),
        )
        .join(starts, on="s|id", how="inner")
        .join(ends, on="e|id", how="inner")
        .drop("s|id", "e|id", *spec.headers[:2])
    )


def _pair_columns(spec: RelationshipFile) -> list[str]:
    return [f"s{i}" for i in range(len(spec.start.keys))] + [
        f"e{i}" for i in range(len(spec.end.keys))
    ]


def _replacements(
    spec: RelationshipFile, pairs: pl.LazyFrame, touched: pl.LazyFrame
) -> pl.DataFrame:
    """For each touched pair, its typed key values and the list of its new relationships, each
    a map of its typed properties (``p0``, ``p1``...; a mapping without properties: ``n``)."""
    columns = _pair_columns(spec)
    fields = spec.fields
    typed = [
        *[k.parse(pl.col(f"s{i}")).alias(f"s{i}") for i, k in enumerate(spec.start.key_fields())],
        *[k.parse(pl.col(f"e{i}")).alias(f"e{i}") for i, k in enumerate(spec.end.key_fields())],
    ]
    values = [f.parse(pl.col(f.column)).alias(f"p{i}") for i, f in enumerate(fields)]
    new = pairs.join(touched, on=columns, how="semi").select(
        *columns, pl.struct(values or [pl.lit(0).alias("n")]).alias("p")
    )
    grouped = new.group_by(columns).agg(pl.col("p"))
    everything = touched.join(grouped, on=columns, how="left").with_columns(
        pl.col("p").fill_null(pl.lit([], dtype=grouped.collect_schema()["p"]))
    )
    return everything.select(*typed, "p").collect()


def diff_mapping(
    old: RelationshipFile | None, new: RelationshipFile, keys: KeyCache | None = None
) -> MappingDiff:
    """Compare one mapping's relationship files as multisets of (pair, properties); ``old`` is
    None when the mapping is new (every pair is added)."""
    keys = keys or KeyCache()
    columns = _pair_columns(new)
    new_pairs = _pairs(new, keys)
    new_counts = new_pairs.group_by(*columns, "h").agg(pl.len().alias("n"))
    if old is None:
        old_counts = new_counts.head(0)
    else:
        old_counts = _pairs(old, keys).group_by(*columns, "h").agg(pl.len().alias("n"))
    both = (
        old_counts.join(new_counts, on=[*columns, "h"], how="full", coalesce=True, suffix="_new")
        .with_columns(pl.col("n", "n_new").fill_null(0).cast(pl.Int64))
        .filter(pl.col("n") != pl.col("n_new"))
        .collect()
    )
    added = int((both["n_new"] - both["n"]).clip(lower_bound=0).sum())
    removed = int((both["n"] - both["n_new"]).clip(lower_bound=0).sum())
    touched = both.select(columns).unique().lazy()
    return MappingDiff(new.name, new, _replacements(new, new_pairs, touched), added, removed)
