"""Every path in the import folder, declared in one place.

A run writes into a hidden work folder and renames it when it is complete, so a folder that
looks finished always is::

    import/
      .run-42.partial/            while run 42 writes (removed if it fails)
      run-42/                     after the rename
        manifest.json             files, row counts, rejected counts, checksums
        nodes/<Label>.csv         header line + one row per node
        relationships/<TYPE>.<mapping id>.csv
        neo4j-admin.report        bad entries reported by neo4j-admin (admin mode)
        neo4j-admin.log           what neo4j-admin printed (admin mode)
      current -> run-42           the newest complete run
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunPaths"]


@dataclass(frozen=True)
class RunPaths:
    """The folders and files of one run under ``import_dir``."""

    import_dir: Path
    run_id: int

    @property
    def work_dir(self) -> Path:
        return self.import_dir / f".run-{self.run_id}.partial"

    @property
    def final_dir(self) -> Path:
        return self.import_dir / f"run-{self.run_id}"

    @property
    def current_link(self) -> Path:
        return self.import_dir / "current"

    def node_file(self, label: str) -> Path:
        return self.work_dir / "nodes" / f"{label}.csv"

    def table_file(self, name: str) -> Path:
        """A table read only for relationships; removed before the folder is published."""
        return self.work_dir / "tables" / f"{name}.csv"

    def relationship_file(self, name: str) -> Path:
        return self.work_dir / "relationships" / f"{name}.csv"

    @property
    def manifest(self) -> Path:
        return self.work_dir / "manifest.json"

    @property
    def admin_report(self) -> Path:
        return self.final_dir / "neo4j-admin.report"

    @property
    def admin_log(self) -> Path:
        return self.final_dir / "neo4j-admin.log"

    def published(self, path: Path) -> Path:
        """Where a file of the work folder lives after the rename."""
        return self.final_dir / path.relative_to(self.work_dir)

    def create(self) -> None:
        """Create an empty work folder (a leftover of a crashed run with this id is removed)."""
        shutil.rmtree(self.work_dir, ignore_errors=True)
        for sub in ("nodes", "relationships", "tables"):
            (self.work_dir / sub).mkdir(parents=True)

    def discard(self) -> None:
        """Remove the work folder of a failed run."""
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def publish(self, keep: int = 2) -> None:
        """Rename the work folder, point ``current`` at it, keep the newest ``keep`` runs."""
        shutil.rmtree(self.work_dir / "tables", ignore_errors=True)
        os.replace(self.work_dir, self.final_dir)
        temporary = self.import_dir / f".current-{self.run_id}"
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(self.final_dir.name)
        os.replace(temporary, self.current_link)
        runs = sorted(
            (p for p in self.import_dir.glob("run-*") if p.name[4:].isdigit()),
            key=lambda p: int(p.name[4:]),
        )
        for old in runs[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
