"""The names of a run's files and folders in the import folder, which the control database's
run log reads (a failed run's ``failure.json``) as well as the import package
(:mod:`bulk360.package.paths`, which declares every path built from them)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["CURRENT_LINK", "FAILURE_FILE", "MANIFEST_FILE", "work_dir_of"]

MANIFEST_FILE = "manifest.json"
FAILURE_FILE = "failure.json"
CURRENT_LINK = "current"


def work_dir_of(final_dir: Path) -> Path:
    """The hidden folder a run writes into before it is renamed to ``final_dir``."""
    return final_dir.parent / f".{final_dir.name}.partial"
