"""Every path in the import folder (the names of its files in :mod:`bulk360.layout`).

A run writes into a hidden work folder and renames it when it is complete, so a folder that
looks finished always is. A folder is named by the run id and the first 8 hex digits of the
run's uid (``etl_run_logs.run_uid``), so two control databases sharing one import folder, or a
control database created again, never write into each other's folders::

    import/
      .run-42-3f9a1c2e.partial/   while run 42 writes (removed if it fails)
      run-42-3f9a1c2e/            after the rename
        manifest.json             control database, files, row counts, ledger, checksums
        nodes/<Label>.csv         header line + one row per node
        relationships/<TYPE>.<mapping id>.csv
        neo4j-admin.report        bad entries reported by neo4j-admin (admin mode)
        neo4j-admin.log           what neo4j-admin printed (admin mode)
        failure.json              why the run failed, when the control database could not say it
      current -> run-42-3f9a1c2e  the newest published run (of any control database)

Pruning keeps the newest runs of the control database that publishes (its manifests name it) and
never removes the folder being published, the one ``current`` points at, or any it is asked to
keep (the run that built the graph).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bulk360.errors import IntegrityError, TargetError
from bulk360.layout import CURRENT_LINK, FAILURE_FILE, MANIFEST_FILE, work_dir_of
from bulk360.package.manifest import Manifest

if TYPE_CHECKING:
    from bulk360.plan.tables import TablePlan

__all__ = [
    "CURRENT_LINK",
    "FAILURE_FILE",
    "MANIFEST_FILE",
    "RunPaths",
    "file_sha256",
    "folder_errors",
    "published_runs",
    "work_dir_of",
]

_RUN_FOLDER = re.compile(r"^run-(?P<run_id>\d+)-(?P<token>[0-9a-f]{8})$")


@dataclass(frozen=True)
class RunPaths:
    """The folders and files of one run under ``import_dir``."""

    import_dir: Path
    run_id: int
    token: str
    """The first 8 hex digits of the run's uid."""

    @classmethod
    def of_folder(cls, folder: Path) -> RunPaths | None:
        """The paths of a published run folder, or None if ``folder`` is not one."""
        match = _RUN_FOLDER.match(folder.name)
        if match is None:
            return None
        return cls(folder.parent, int(match["run_id"]), match["token"])

    @property
    def name(self) -> str:
        return f"run-{self.run_id}-{self.token}"

    @property
    def work_dir(self) -> Path:
        return work_dir_of(self.final_dir)

    @property
    def final_dir(self) -> Path:
        return self.import_dir / self.name

    @property
    def current_link(self) -> Path:
        return self.import_dir / CURRENT_LINK

    def node_file(self, label: str) -> Path:
        return self.work_dir / "nodes" / f"{label}.csv"

    def table_file(self, name: str) -> Path:
        """A table read only for relationships; removed before the folder is published."""
        return self.work_dir / "tables" / f"{name}.csv"

    def relationship_file(self, name: str) -> Path:
        return self.work_dir / "relationships" / f"{name}.csv"

    def file_of(self, table: TablePlan) -> Path:
        """A mapped table's file: its label's node file, or a table read for relationships."""
        return self.node_file(table.label) if table.label else self.table_file(table.name)

    @property
    def manifest(self) -> Path:
        return self.work_dir / MANIFEST_FILE

    @property
    def published_manifest(self) -> Path:
        return self.final_dir / MANIFEST_FILE

    @property
    def admin_report(self) -> Path:
        return self.final_dir / "neo4j-admin.report"

    @property
    def admin_log(self) -> Path:
        return self.final_dir / "neo4j-admin.log"

    def failure_file(self, published: bool) -> Path:
        """Where a failure goes when the control database cannot record it."""
        return (self.final_dir if published else self.work_dir) / FAILURE_FILE

    def published(self, path: Path) -> Path:
        """Where a file of the work folder lives after the rename."""
        return self.final_dir / path.relative_to(self.work_dir)

    def create(self) -> None:
        """Create an empty work folder."""
        shutil.rmtree(self.work_dir, ignore_errors=True)
        for sub in ("nodes", "relationships", "tables"):
            (self.work_dir / sub).mkdir(parents=True)

    def discard(self) -> None:
        """Remove the work folder of a failed run."""
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def publish(self, instance: str, keep: int = 2, protect: Iterable[Path] = ()) -> None:
        """Rename the work folder, point ``current`` at it, prune this control database's runs.

        The newest ``keep`` published runs of control database ``instance`` stay, and so do this
        run's folder, ``current``'s target and every folder in ``protect``.
        """
        shutil.rmtree(self.work_dir / "tables", ignore_errors=True)
        os.replace(self.work_dir, self.final_dir)
        self.point_current()
        kept = {self.final_dir.resolve(), *(Path(p).resolve() for p in protect)}
        if self.current_link.exists():
            kept.add(self.current_link.resolve())
        mine = [p for p in published_runs(self.import_dir) if _instance_of(p) == instance]
        mine.sort(key=lambda p: RunPaths.of_folder(p).run_id)  # type: ignore[union-attr]
        for old in mine[:-keep] if keep > 0 else mine:
            if old.resolve() not in kept:
                shutil.rmtree(old, ignore_errors=True)

    def point_current(self) -> None:
        """Point ``current`` at this run's folder (atomically: a new link renamed over it)."""
        temporary = self.import_dir / f".current-{self.name}"
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(self.final_dir.name)
        os.replace(temporary, self.current_link)


@contextmanager
def folder_errors(import_dir: Path) -> Iterator[None]:
    """A file of the import folder that cannot be written (a full disk) is one line."""
    try:
        yield
    except OSError as exc:
        try:
            free = f"{shutil.disk_usage(import_dir).free / 2**20:,.1f} MiB"
        except OSError:
            free = "unknown"
        where = f": {exc.filename}" if exc.filename else ""
        raise TargetError(
            f"writing the import folder failed{where}: {exc.strerror or exc}; free space in "
            f"{import_dir}: {free}"
        ) from None


def published_runs(import_dir: Path) -> list[Path]:
    """The published run folders in ``import_dir``, of every control database."""
    if not import_dir.is_dir():
        return []
    return [p for p in import_dir.iterdir() if p.is_dir() and RunPaths.of_folder(p) is not None]


def _instance_of(folder: Path) -> str | None:
    """The control database a published run folder belongs to, from its manifest."""
    try:
        return Manifest.read(folder / MANIFEST_FILE).control.instance
    except IntegrityError:
        return None


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file of the import folder, as the manifest records it."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
