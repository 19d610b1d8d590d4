"""Run folders: names that cannot collide, and pruning that keeps what must stay."""

from __future__ import annotations

from pathlib import Path

from bulk360.package.manifest import Control, Manifest
from bulk360.package.paths import RunPaths, published_runs


def publish(import_dir: Path, run_id: int, token: str, instance: str, **options: object) -> Path:
    paths = RunPaths(import_dir, run_id, token)
    paths.create()
    control = Control(instance, "etl_control_db")
    Manifest(run_id, control, "2026-11-30T00:00:00+00:00", "csv", "neo4j", (), (), ()).write(
        paths.manifest
    )
    paths.publish(instance, **options)  # type: ignore[arg-type]
    return paths.final_dir


def names(import_dir: Path) -> list[str]:
    return sorted(p.name for p in published_runs(import_dir))


def test_two_control_databases_with_the_same_run_ids_never_collide(tmp_path: Path) -> None:
    mine = [publish(tmp_path, i, f"aaaa000{i}", "control-a") for i in (1, 2)]
    theirs = [publish(tmp_path, i, f"bbbb000{i}", "control-b") for i in (1, 2, 3)]
    # Each keeps its own two newest; the other's folders are never touched.
    assert names(tmp_path) == [
        "run-1-aaaa0001",
        "run-2-aaaa0002",
        "run-2-bbbb0002",
        "run-3-bbbb0003",
    ]
    assert all(p.is_dir() for p in mine)
    assert (tmp_path / "current").resolve() == theirs[-1].resolve()


def test_the_current_target_and_protected_folders_are_never_pruned(tmp_path: Path) -> None:
    graph = publish(tmp_path, 1, "cccc0001", "control-a")
    publish(tmp_path, 2, "cccc0002", "control-a", protect=[graph])
    publish(tmp_path, 3, "cccc0003", "control-a", keep=1, protect=[graph])
    assert names(tmp_path) == ["run-1-cccc0001", "run-3-cccc0003"]
    # keep=0 still keeps the folder being published.
    publish(tmp_path, 4, "cccc0004", "control-a", keep=0)
    assert names(tmp_path) == ["run-4-cccc0004"]


def test_a_restored_control_database_reusing_run_ids_gets_new_folders(tmp_path: Path) -> None:
    first = publish(tmp_path, 5, "dddd0005", "control-a")
    again = publish(tmp_path, 5, "eeee0005", "control-a")
    assert first != again and first.is_dir() and again.is_dir()


def test_only_run_folders_are_runs(tmp_path: Path) -> None:
    (tmp_path / "run-7").mkdir()  # an earlier version's folder: not ours to prune
    (tmp_path / "notes").mkdir()
    publish(tmp_path, 8, "ffff0008", "control-a")
    assert names(tmp_path) == ["run-8-ffff0008"]
    assert (tmp_path / "run-7").is_dir()
    assert RunPaths.of_folder(tmp_path / "run-8-ffff0008") == RunPaths(tmp_path, 8, "ffff0008")
    assert RunPaths.of_folder(tmp_path / "run-7") is None
