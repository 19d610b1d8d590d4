"""Sync mode: only what changed in the sources since the run that built the graph, over Bolt.

A sync run reads and joins as every run does, then compares its package with the package of the
newest succeeded run that built the graph (its **baseline**, kept for that purpose; see
:mod:`bulk360.load.diff`). It refuses, before anything is read, when no run built the graph or
when the graph no longer holds that run's counts (something changed it by hand) and no failed
sync since explains why.

A label whose key columns changed, a relationship type that several mappings share between the
same labels, or a mapping whose join or properties changed in a way the pairs cannot follow,
is rebuilt: everything of it deleted and written again.

What it finds is a change set, written by the writer follow uses too, in the order that keeps
the graph whole (:mod:`bulk360.load.changeset`). Each statement is idempotent, so a sync that
fails half way (the run is failed) is completed by the next one, which compares with the same
baseline again. ``--full`` clears the graph and writes everything, as bolt mode's
``--clear``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from neo4j import Driver

from bulk360.control.history import failed_since, follow_sessions_since, graph_run
from bulk360.errors import IntegrityError, TargetError
from bulk360.load import LoadContext, LoadResult, Server
from bulk360.load.bolt import BoltLoader
from bulk360.load.changeset import ChangeSet, Group, write_change_set
from bulk360.load.cypher import count_graph, create_key_constraint, graph_counts
from bulk360.load.diff import KeyCache, diff_mapping, diff_nodes
from bulk360.load.writer import DriverWriter
from bulk360.package import ImportPackage
from bulk360.package.files import NodeFile, RelationshipFile
from bulk360.package.paths import MANIFEST_FILE
from bulk360.settings import Settings

__all__ = ["Baseline", "SyncLoad", "SyncLoader", "find_baseline"]

Files = tuple[Sequence[NodeFile], Sequence[RelationshipFile]]


@dataclass
class SyncLoad:
    """What a sync changes, and what the graph holds afterwards."""

    diffed_against: int
    changes: ChangeSet = field(default_factory=ChangeSet)
    graph_nodes: dict[str, int] = field(default_factory=dict)
    graph_relationships: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Baseline:
    """The run that built the graph, and its package."""

    run_id: int
    package: ImportPackage


_REBUILD = "rebuild it with --mode bolt --clear (or --mode sync --full)"


def find_baseline(settings: Settings, driver: Driver, note: Callable[[str], None]) -> Baseline:
    """The run that built the graph and its package; refuses (one line) when there is none,
    or when the graph no longer matches it and no failed sync explains why."""
    built = graph_run(settings)
    if built is None or not built["import_dir"]:
        raise TargetError(
            f"no succeeded run built the graph of database '{settings.neo4j_database}' yet, so "
            f"there is nothing to compare with: {_REBUILD}"
        )
    run_id, folder = built["run_id"], Path(built["import_dir"])
    try:
        package = ImportPackage.read(folder)
    except IntegrityError:
        if (folder / MANIFEST_FILE).exists():
            raise TargetError(
                f"run {run_id} built the graph with files this bulk360 cannot read: {_REBUILD}"
            ) from None
        raise TargetError(
            f"the import folder of run {run_id}, which built the graph, is gone ({folder}): "
            f"{_REBUILD}"
        ) from None
    failed = failed_since(settings, run_id, "sync")
    if failed:
        note(
            f"sync run {failed[-1]} failed after run {run_id}: the graph may hold part of it, "
            "and this sync completes it"
        )
        return Baseline(run_id, package)
    followed = follow_sessions_since(settings, run_id)
    if followed:
        note(
            f"follow session {followed[-1]} applied changes after run {run_id}: the graph is "
            "newer than that run, and this sync makes it the sources' as they are now"
        )
        return Baseline(run_id, package)
    expected = package.manifest.expected_counts()
    actual = {k: v for k, v in graph_counts(driver, settings.neo4j_database).items() if v}
    wrong = [
        (name, actual.get((kind, name), 0), expected.get((kind, name), 0))
        for kind, name in sorted(expected.keys() | actual.keys())
        if expected.get((kind, name), 0) != actual.get((kind, name), 0)
    ]
    if wrong:
        shown = ", ".join(
            f"{name} {has:,} (run {run_id}: {want:,})" for name, has, want in wrong[:3]
        )
        raise TargetError(
            f"the graph does not match run {run_id}, which built it ({shown}): it was changed "
            f"outside bulk360, so a sync would guess; {_REBUILD}"
        )
    return Baseline(run_id, package)


class SyncLoader:
    """Applies the difference between the baseline's package and the run's, over Bolt."""

    server: ClassVar[Server] = "running"
    writes: ClassVar[bool] = True
    swaps: ClassVar[bool] = False

    def __init__(self, context: LoadContext) -> None:
        self.context = context
        self.full = context.options.full
        self.bolt = BoltLoader(context, clear=True)
        """Connects, turns driver errors into one line, and writes everything for --full."""
        self.baseline: Baseline | None = None
        self.writer: DriverWriter | None = None

    def preflight(self) -> None:
        driver = self.bolt.connect()
        try:
            if not self.full:
                self.baseline = find_baseline(self.context.settings, driver, self.context.note)
        finally:
            driver.close()

    def load_title(self) -> str:
        if self.full or self.baseline is None:
            return (
                f"clear and write everything over Bolt in batches of {self.bolt.batch_size:,} rows"
            )
        return f"write what changed since run {self.baseline.run_id} over Bolt"

    def load(self, package: ImportPackage) -> LoadResult:
        if self.full:
            return self.bolt.load(package)
        assert self.baseline is not None, "preflight finds the baseline"
        new: Files = (package.node_files(), package.relationship_files())
        old: Files = (
            self.baseline.package.node_files(),
            self.baseline.package.relationship_files(),
        )
        sync = self.diff(self.baseline.run_id, old, new)
        if sync.changes.changed:
            with self.context.reporter.rows_progress(sync.changes.tasks()) as advance:
                self.write(sync, new, advance)
        expected = LoadResult(
            {n.label: n.nodes for n in package.manifest.nodes},
            {r.name: r.relationships for r in package.manifest.relationships},
        )
        return LoadResult(
            nodes=expected.nodes,
            relationships=expected.relationships,
            # After a change the graph must hold exactly the new package's counts.
            graph_nodes=sync.graph_nodes,
            graph_relationships=sync.graph_relationships,
            created_types=tuple(sync.graph_relationships),
            changes=sync.changes.counts(),
            seconds=sync.seconds,
            details={"rebuilt_groups": sync.changes.rebuilt_groups},
            notes=_notes(sync),
            diffed_against=sync.diffed_against,
            retries=self.writer.retries if self.writer else 0,
            touched=self.writer.take_touched() if self.writer else {},
        )

    def swap(self) -> str:
        raise NotImplementedError("sync writes into the database itself")

    def written_so_far(self) -> LoadResult | None:
        if self.full:
            return self.bolt.written_so_far()
        if self.writer is None:
            return None
        return LoadResult(
            self.writer.nodes_written,
            self.writer.relationships_written,
            retries=self.writer.retries,
        )

    def close(self) -> None:
        return None

    # ---- the diff and the writes -------------------------------------------------------

    def diff(self, diffed_against: int, old: Files, new: Files) -> SyncLoad:
        """Compare ``old`` with ``new`` (node and relationship files of each package)."""
        started = time.perf_counter()
        sync = SyncLoad(diffed_against)
        changes = sync.changes
        old_nodes = {n.label: n for n in old[0]}
        new_nodes = {n.label: n for n in new[0]}
        for label in dict.fromkeys([*new_nodes, *old_nodes]):
            changes.nodes[label] = diff_nodes(old_nodes.get(label), new_nodes.get(label))
        changes.rebuilt = _rebuilt_groups(changes, old[1], new[1])
        old_mappings = {r.name: r for r in old[1]}
        keys = KeyCache()
        for rel in new[1]:
            if rel.group not in changes.rebuilt:
                changes.pairs[rel.name] = diff_mapping(old_mappings.get(rel.name), rel, keys)
        sync.seconds["diff"] = round(time.perf_counter() - started, 3)
        return sync

    def write(self, sync: SyncLoad, new: Files, progress: Callable[[str, int], None]) -> None:
        """Write what :meth:`diff` found, then count the graph; ``progress`` is told
        ``(task, rows)`` for each committed batch, ``task`` one of :meth:`ChangeSet.tasks`."""
        driver = self.bolt.connect()
        try:
            self.writer = self.bolt.driver_writer(driver)
            self.bolt.writer = self.writer
            with self.bolt.failures("run the sync again to complete it (it is idempotent)"):
                started = time.perf_counter()
                for d in sync.changes.nodes.values():
                    if d.node is not None:
                        create_key_constraint(driver, self.bolt.database, d.label, d.node.keys)
                write_change_set(self.writer, driver, self.bolt.database, sync.changes, progress)
                sync.seconds["write"] = round(time.perf_counter() - started, 3)
                sync.graph_nodes, sync.graph_relationships = count_graph(
                    driver,
                    self.bolt.database,
                    [n.label for n in new[0]],
                    [r.type for r in new[1]],
                )
        finally:
            driver.close()


def _rebuilt_groups(
    changes: ChangeSet, old: Sequence[RelationshipFile], new: Sequence[RelationshipFile]
) -> dict[Group, list[RelationshipFile]]:
    """Groups (start label, type, end label) written anew, with their new mappings: several
    mappings in a group, a mapping whose name or columns changed, or an end whose key did."""
    rebuilt_labels = {label for label, d in changes.nodes.items() if d.rebuilt}
    groups_old: dict[Group, list[RelationshipFile]] = {}
    groups_new: dict[Group, list[RelationshipFile]] = {}
    for rel in old:
        groups_old.setdefault(rel.group, []).append(rel)
    for rel in new:
        groups_new.setdefault(rel.group, []).append(rel)
    rebuild = {}
    for group in dict.fromkeys([*groups_new, *groups_old]):
        olds, news = groups_old.get(group, []), groups_new.get(group, [])
        same = (
            len(news) == 1
            and len(olds) <= 1
            and (
                not olds
                or (olds[0].name, list(olds[0].headers)) == (news[0].name, list(news[0].headers))
            )
        )
        if not same or group[0] in rebuilt_labels or group[2] in rebuilt_labels:
            rebuild[group] = news
    return rebuild


def _notes(sync: SyncLoad) -> tuple[str, ...]:
    """What a sync tells the user: nothing changed, or what changed per label and mapping."""
    if not sync.changes.changed:
        return (f"no change since run {sync.diffed_against}: nothing was written",)
    lines = [
        f"{name}: {counts['inserted']:,} inserted, {counts['updated']:,} updated, "
        f"{counts['deleted']:,} deleted"
        for name, counts in sync.changes.counts().items()
        if any(counts.values())
    ]
    lines += [
        f"{group}: rewritten whole (its mappings or key changed)"
        for group in sync.changes.rebuilt_groups
    ]
    return tuple(lines)
