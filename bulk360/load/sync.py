"""Sync mode: only what changed in the sources since the run that built the graph, over Bolt.

A sync run reads and joins as every run does, then compares its import folder with the folder of
the newest succeeded run that built the graph (kept for that purpose):

* per label, nodes by key: **inserted** (a new key), **updated** (a property changed, appeared
  or became NULL; a column added, dropped or now excluded changes every row) and **deleted**
  (a key that is gone). Each side is scanned for its key columns and a hash of each row's
  properties only (never the node ids, which every run gives anew), so memory holds two hashes
  and a key per node, not the files;
* per relationship mapping, relationships as a multiset of (start key, end key, properties):
  every pair of nodes whose relationships differ is **replaced** in one statement (its old
  relationships deleted, its new ones created), which covers added and removed pairs, changed
  properties and repeated pairs alike.

A label whose key columns changed, a relationship type that several mappings share between the
same labels, or a mapping whose join or properties changed in a way the pairs cannot follow,
is rebuilt: everything of it deleted and written again.

The writes go in the order that keeps the graph whole: nodes of rebuilt labels deleted, nodes
inserted and updated (``MERGE`` on the key, a NULL property removed), relationships replaced
and rebuilt, then deleted nodes removed (``DETACH DELETE``). Each statement is idempotent, so a
sync that fails half way (the run is failed) is completed by the next one, which compares with
the same succeeded run again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from neo4j import Driver, GraphDatabase

from bulk360.graph import quoted
from bulk360.load.bolt import (
    Batch,
    BoltLoader,
    NodeSpec,
    RelationshipSpec,
    create_key_constraint,
    keys_by_id,
    merge_nodes_query,
    node_rows,
    scan,
)

__all__ = [
    "KeyCache",
    "LabelDiff",
    "MappingDiff",
    "SyncLoad",
    "SyncLoader",
    "diff_mapping",
    "diff_nodes",
    "specs_of",
]


@dataclass(frozen=True)
class LabelDiff:
    """What changed of one label's nodes."""

    label: str
    new: NodeSpec | None
    old: NodeSpec | None
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
    new: RelationshipSpec | None
    replace: pl.DataFrame
    """Per pair of nodes to replace: start key values, end key values, and the list of the new
    relationships' typed property values (empty: the pair loses its relationships)."""
    added: int
    removed: int
    rebuilt: bool = False


@dataclass
class SyncLoad:
    """What a sync changed, and what the graph holds afterwards."""

    diffed_against: int
    labels: dict[str, LabelDiff] = field(default_factory=dict)
    mappings: dict[str, MappingDiff] = field(default_factory=dict)
    rebuilt_groups: list[str] = field(default_factory=list)
    rebuilt: dict[tuple[str, str, str], list[RelationshipSpec]] = field(default_factory=dict)
    """Groups (start label, type, end label) written anew, with their new mappings."""
    graph_nodes: dict[str, int] = field(default_factory=dict)
    graph_relationships: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return (
            bool(self.rebuilt_groups)
            or any(
                d.inserted or d.updated or d.deleted or d.removed_properties or d.rebuilt
                for d in self.labels.values()
            )
            or any(d.added or d.removed or d.rebuilt for d in self.mappings.values())
        )

    def tasks(self) -> dict[str, int | None]:
        """The progress bars of the writes, in their order, with the rows each will write."""
        found: dict[str, int | None] = {}
        for d in self.labels.values():
            if d.new is not None and d.upserts.height:
                found[upserted_task(d.label)] = d.upserts.height
        for specs in self.rebuilt.values():
            for spec in specs:
                found[rebuilt_task(spec.name)] = spec.rows
        for name, m in self.mappings.items():
            if m.replace.height:
                found[replaced_task(name)] = m.replace.height
        for d in self.labels.values():
            if d.deleted:
                found[deleted_task(d.label)] = d.deleted
        return found

    def counts(self) -> dict[str, dict[str, int]]:
        """Per label and mapping name: inserted, updated, deleted (relationships: added as
        inserted, removed as deleted)."""
        found = {
            label: {"inserted": d.inserted, "updated": d.updated, "deleted": d.deleted}
            for label, d in self.labels.items()
        }
        found |= {
            name: {"inserted": d.added, "updated": 0, "deleted": d.removed}
            for name, d in self.mappings.items()
        }
        return found


def upserted_task(label: str) -> str:
    return f"{label} upserted"


def rebuilt_task(mapping: str) -> str:
    return f"{mapping} rewritten"


def replaced_task(mapping: str) -> str:
    return f"{mapping} pairs replaced"


def deleted_task(label: str) -> str:
    return f"{label} deleted"


# ---- the diff -------------------------------------------------------------------------------


def _keyed(spec: NodeSpec) -> pl.LazyFrame:
    """A node file's key values (as text, ``k0``...) and a hash of each row's properties."""
    return scan(spec.path).select(
        *[pl.col(k.column).alias(f"k{i}") for i, k in enumerate(spec.key_fields())],
        pl.struct([pl.col(f.column) for f in spec.fields]).hash().alias("h"),
    )


def _typed_keys(spec: NodeSpec, frame: pl.LazyFrame, alias: str = "k") -> pl.LazyFrame:
    """Key values as text (``k0``...) turned into the key fields' types."""
    return frame.select(
        [
            k.parse(pl.col(f"{alias}{i}")).alias(f"{alias}{i}")
            for i, k in enumerate(spec.key_fields())
        ]
    )


def _empty(columns: Sequence[str]) -> pl.DataFrame:
    return pl.DataFrame(schema=dict.fromkeys(columns, pl.String))


def diff_nodes(old: NodeSpec | None, new: NodeSpec | None) -> LabelDiff:
    """Compare one label's node files by key (either may be missing: a label added or gone)."""
    label = (new or old).label  # type: ignore[union-attr]
    if new is None:
        assert old is not None
        deletes = _typed_keys(old, _keyed(old)).collect()
        return LabelDiff(label, None, old, pl.DataFrame(), deletes, 0, 0)
    if old is None or list(old.keys) != list(new.keys):
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

    def of(self, node: NodeSpec, alias: str) -> pl.LazyFrame:
        """``<alias>|id`` and the key values ``<alias>0``... of ``node``'s file."""
        if node.path not in self._frames:
            self._frames[node.path] = (
                keys_by_id(node, "k")
                .select("k|id", *[pl.col(f"k{i}").cast(pl.String) for i in range(len(node.keys))])
                .collect()
            )
        names = {"k|id": f"{alias}|id"} | {f"k{i}": f"{alias}{i}" for i in range(len(node.keys))}
        return self._frames[node.path].lazy().rename(names)


def _pairs(spec: RelationshipSpec, keys: KeyCache) -> pl.LazyFrame:
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


def _pair_columns(spec: RelationshipSpec) -> list[str]:
    return [f"s{i}" for i in range(len(spec.start.keys))] + [
        f"e{i}" for i in range(len(spec.end.keys))
    ]


def _replacements(
    spec: RelationshipSpec, pairs: pl.LazyFrame, touched: pl.LazyFrame
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
    old: RelationshipSpec | None, new: RelationshipSpec, keys: KeyCache | None = None
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


# ---- the writes -----------------------------------------------------------------------------


class SyncLoader:
    """Applies the difference between two runs' folders to the graph, over Bolt."""

    def __init__(self, bolt: BoltLoader) -> None:
        self.bolt = bolt

    def diff(
        self,
        diffed_against: int,
        old: tuple[Sequence[NodeSpec], Sequence[RelationshipSpec]],
        new: tuple[Sequence[NodeSpec], Sequence[RelationshipSpec]],
    ) -> SyncLoad:
        """Compare ``old`` with ``new`` (node and relationship specs of each folder)."""
        started = time.perf_counter()
        load = SyncLoad(diffed_against)
        old_nodes = {s.label: s for s in old[0]}
        new_nodes = {s.label: s for s in new[0]}
        for label in dict.fromkeys([*new_nodes, *old_nodes]):
            load.labels[label] = diff_nodes(old_nodes.get(label), new_nodes.get(label))
        load.rebuilt = self._rebuilt_groups(load, old[1], new[1])
        old_mappings = {s.name: s for s in old[1]}
        keys = KeyCache()
        for spec in new[1]:
            if spec.group not in load.rebuilt:
                load.mappings[spec.name] = diff_mapping(old_mappings.get(spec.name), spec, keys)
        load.seconds["diff"] = round(time.perf_counter() - started, 3)
        return load

    def write(
        self,
        load: SyncLoad,
        new: tuple[Sequence[NodeSpec], Sequence[RelationshipSpec]],
        progress: Callable[[str, int], None] = lambda name, rows: None,
    ) -> None:
        """Write what :meth:`diff` found (nothing when nothing changed), then count the graph.

        ``progress`` is told ``(task, rows)`` for each committed batch, ``task`` one of
        :meth:`SyncLoad.tasks`.
        """
        if not load.changed:
            return
        driver = self.bolt.connect()
        self.bolt.progress = progress
        try:
            with self.bolt.failures("run the sync again to complete it (it is idempotent)"):
                started = time.perf_counter()
                self._write(driver, load)
                load.seconds["write"] = round(time.perf_counter() - started, 3)
                self._count(driver, load, new)
        finally:
            driver.close()

    def run(
        self,
        diffed_against: int,
        old: tuple[Sequence[NodeSpec], Sequence[RelationshipSpec]],
        new: tuple[Sequence[NodeSpec], Sequence[RelationshipSpec]],
        progress: Callable[[str, int], None] = lambda name, rows: None,
    ) -> SyncLoad:
        """Diff ``old`` against ``new`` and write it."""
        load = self.diff(diffed_against, old, new)
        self.write(load, new, progress)
        return load

    def _rebuilt_groups(
        self,
        load: SyncLoad,
        old: Sequence[RelationshipSpec],
        new: Sequence[RelationshipSpec],
    ) -> dict[tuple[str, str, str], list[RelationshipSpec]]:
        """Groups (start label, type, end label) written anew, with their new mappings."""
        rebuilt_labels = {label for label, d in load.labels.items() if d.rebuilt}
        groups_old: dict[tuple[str, str, str], list[RelationshipSpec]] = {}
        groups_new: dict[tuple[str, str, str], list[RelationshipSpec]] = {}
        for spec in old:
            groups_old.setdefault(spec.group, []).append(spec)
        for spec in new:
            groups_new.setdefault(spec.group, []).append(spec)
        rebuild = {}
        for group in dict.fromkeys([*groups_new, *groups_old]):
            olds, news = groups_old.get(group, []), groups_new.get(group, [])
            same = (
                len(news) == 1
                and len(olds) <= 1
                and (
                    not olds
                    or (olds[0].name, list(olds[0].headers))
                    == (news[0].name, list(news[0].headers))
                )
            )
            if not same or group[0] in rebuilt_labels or group[2] in rebuilt_labels:
                rebuild[group] = news
                load.rebuilt_groups.append(f"{group[0]}-{group[1]}->{group[2]}")
        return rebuild

    def _write(self, driver: Driver, load: SyncLoad) -> None:
        bolt = self.bolt
        bookmarks = GraphDatabase.bookmark_manager()
        database = bolt.database
        for d in load.labels.values():
            if d.new is not None:
                create_key_constraint(driver, database, d.label, d.new.keys)
        # 1. Labels whose key changed lose their old nodes first: a new node merged on the new
        #    key could otherwise be an old one, which the deletes would then remove.
        bolt.write_batches(
            driver, bookmarks, [self._deletes(d) for d in load.labels.values() if d.rebuilt]
        )
        # 2. Nodes inserted and updated.
        bolt.write_batches(
            driver,
            bookmarks,
            [self._upserts(d) for d in load.labels.values() if d.new is not None],
        )
        # 3. Relationships: whole groups deleted and written anew, changed pairs replaced.
        for start, kind, end in load.rebuilt:
            with driver.session(database=database, bookmark_manager=bookmarks) as session:
                session.run(
                    f"MATCH (:{quoted(start)})-[x:{quoted(kind)}]->(:{quoted(end)}) "
                    "CALL (x) { DELETE x } IN TRANSACTIONS OF $size ROWS",
                    size=bolt.batch_size,
                ).consume()
        whole = [spec for specs in load.rebuilt.values() for spec in specs]
        bolt.write_batches(
            driver,
            bookmarks,
            [bolt.relationship_batches(spec, "create", rebuilt_task(spec.name)) for spec in whole]
            + [self._replacements(d) for d in load.mappings.values() if d.replace.height],
        )
        # 4. Nodes whose rows are gone, with whatever relationships they still have.
        bolt.write_batches(
            driver,
            bookmarks,
            [self._deletes(d) for d in load.labels.values() if not d.rebuilt and d.deleted],
        )

    def _upserts(self, d: LabelDiff) -> Iterator[Batch]:
        assert d.new is not None
        query = merge_nodes_query(d.new, d.removed_properties)
        rows = d.upserts
        for offset in range(0, rows.height, self.bolt.batch_size):
            yield Batch(
                "node",
                d.label,
                query,
                rows.slice(offset, self.bolt.batch_size).rows(),
                upserted_task(d.label),
            )

    def _deletes(self, d: LabelDiff) -> Iterator[Batch]:
        spec = d.old
        assert spec is not None
        keys = ", ".join(
            f"{quoted(k.name)}: {k.cypher(f'r[{i}]')}" for i, k in enumerate(spec.key_fields())
        )
        query = f"UNWIND $rows AS r MATCH (n:{quoted(d.label)} {{{keys}}}) DETACH DELETE n"
        for offset in range(0, d.deletes.height, self.bolt.batch_size):
            yield Batch(
                "deleted",
                d.label,
                query,
                d.deletes.slice(offset, self.bolt.batch_size).rows(),
                deleted_task(d.label),
            )

    def _replacements(self, d: MappingDiff) -> Iterator[Batch]:
        spec = d.new
        assert spec is not None
        start, end = spec.start.key_fields(), spec.end.key_fields()

        def match(alias: str, node: NodeSpec, keys: list[Any], offset: int) -> str:
            props = ", ".join(
                f"{quoted(k.name)}: {k.cypher(f'r[{offset + i}]')}" for i, k in enumerate(keys)
            )
            return f"MATCH ({alias}:{quoted(node.label)} {{{props}}})"

        values = ", ".join(
            f"{quoted(f.name)}: {f.cypher(f'p.p{i}')}" for i, f in enumerate(spec.fields)
        )
        kind = quoted(spec.type)
        query = (
            f"UNWIND $rows AS r {match('a', spec.start, start, 0)} "
            f"{match('b', spec.end, end, len(start))} "
            f"CALL (a, b) {{ MATCH (a)-[x:{kind}]->(b) DELETE x }} "
            f"WITH a, b, r UNWIND r[{len(start) + len(end)}] AS p "
            f"CREATE (a)-[x:{kind} {{{values}}}]->(b)"
        )
        for offset in range(0, d.replace.height, self.bolt.batch_size):
            yield Batch(
                "replaced",
                spec.name,
                query,
                d.replace.slice(offset, self.bolt.batch_size).rows(),
                replaced_task(spec.name),
            )

    def _count(
        self,
        driver: Driver,
        load: SyncLoad,
        new: tuple[Sequence[NodeSpec], Sequence[RelationshipSpec]],
    ) -> None:
        """What the graph holds afterwards, per label and type of the new run."""
        scalar = self.bolt.scalar
        for spec in new[0]:
            load.graph_nodes[spec.label] = scalar(
                driver, f"MATCH (n:{quoted(spec.label)}) RETURN count(n)"
            )
        for kind in dict.fromkeys(spec.type for spec in new[1]):
            load.graph_relationships[kind] = scalar(
                driver, f"MATCH ()-[r:{quoted(kind)}]->() RETURN count(r)"
            )


def specs_of(
    folder: Path, manifest: dict[str, Any]
) -> tuple[list[NodeSpec], list[RelationshipSpec]]:
    """The node and relationship specs of a published run folder, from its manifest."""
    nodes = {
        n["label"]: NodeSpec(n["label"], folder / n["file"], n["headers"], n["keys"], n["nodes"])
        for n in manifest["nodes"]
    }
    relationships = [
        RelationshipSpec(
            name=f"{r['type']}.{r['mapping_id']}",
            type=r["type"],
            start=nodes[r["from_label"]],
            end=nodes[r["to_label"]],
            path=folder / r["file"],
            headers=r["headers"],
            rows=r["relationships"],
        )
        for r in manifest["relationships"]
    ]
    return list(nodes.values()), relationships
