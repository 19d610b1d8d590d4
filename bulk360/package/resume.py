"""``run --resume``: the failed run to resume and the published folder it left, if any."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bulk360.control.history import find_run, graph_run
from bulk360.errors import ConfigError
from bulk360.package.paths import RunPaths
from bulk360.settings import Settings

__all__ = ["Resumable", "resumable"]


@dataclass(frozen=True)
class Resumable:
    """A failed run to resume, and its published folder (None: it had none)."""

    row: dict[str, Any]
    folder: Path | None


def resumable(settings: Settings, run_id: int | None) -> Resumable:
    """Run ``run_id`` (None: the newest failed run), if it can be resumed; a ConfigError
    saying why not otherwise. A partial folder it left is removed."""
    row = find_run(settings, run_id, "failed")
    found = row["run_id"]
    if row["status"] != "failed":
        raise ConfigError(f"run {found} is {row['status']}; only a failed run can be resumed")
    newer = graph_run(settings, after=found)
    if newer is not None:
        raise ConfigError(
            f"run {newer['run_id']} succeeded after run {found}; resuming run {found} would "
            "load older data over it: start a new run instead"
        )
    paths = RunPaths.of_folder(Path(row["import_dir"])) if row["import_dir"] else None
    published = bool(row["published_at"]) and paths is not None and paths.final_dir.is_dir()
    if paths is not None and not published:
        paths.discard()  # a partial folder left by the failed run
    return Resumable(row, paths.final_dir if paths and published else None)
