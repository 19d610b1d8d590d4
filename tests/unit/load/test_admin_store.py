"""The staging store and its swap on store folders: the old store survives every failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bulk360.errors import TargetError
from bulk360.load.admin.store import StagingStore, StoreFolders


def loader(home: Path) -> StagingStore:
    return StagingStore(home, "neo4j")


def store(parent: Path, name: str, content: str) -> None:
    (parent / name).mkdir(parents=True, exist_ok=True)
    (parent / name / "store").write_text(content)


def content(parent: Path, name: str) -> str | None:
    path = parent / name / "store"
    return path.read_text() if path.exists() else None


def test_store_folders_follow_neo4j_conf(tmp_path: Path) -> None:
    assert StoreFolders.of(tmp_path) == StoreFolders(
        tmp_path / "data" / "databases", tmp_path / "data" / "transactions"
    )
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "neo4j.conf").write_text(
        "# server.directories.data=ignored\nserver.directories.data=/srv/graph\n"
        "server.directories.transaction.logs.root=txlogs\n"
    )
    assert StoreFolders.of(tmp_path) == StoreFolders(
        Path("/srv/graph/databases"), tmp_path / "txlogs"
    )


def test_a_swap_replaces_both_folders_and_removes_the_old_store(tmp_path: Path) -> None:
    admin = loader(tmp_path)
    for parent in admin.folders.parents:
        store(parent, "neo4j", "old")
        store(parent, admin.staging, "new")
    assert admin.swap() is True
    for parent in admin.folders.parents:
        assert content(parent, "neo4j") == "new"
        assert not (parent / admin.staging).exists()
        assert [p.name for p in parent.iterdir()] == ["neo4j"]  # nothing replaced is left


def test_a_failed_rename_restores_the_previous_store(tmp_path: Path) -> None:
    admin = loader(tmp_path)
    for parent in admin.folders.parents:
        store(parent, "neo4j", "old")
    # The staging store lacks its transaction logs: the second rename of the swap fails.
    store(admin.folders.databases, admin.staging, "new")
    with pytest.raises(TargetError, match="the previous database was restored"):
        admin.swap()
    for parent in admin.folders.parents:
        assert content(parent, "neo4j") == "old"
        assert not (parent / admin.staging).exists()


@pytest.mark.parametrize(("state", "expected"), [("swapping", "old"), ("swapped", "new")])
def test_a_swap_interrupted_by_a_process_death_is_undone_or_finished(
    tmp_path: Path, state: str, expected: str
) -> None:
    admin = loader(tmp_path)
    databases, transactions = admin.folders.parents
    # Died after moving the old store aside and the new one in, in the databases folder only
    # ("swapping"), or after both renames but before removing the old store ("swapped").
    store(databases, ".neo4j.bulk360-replaced", "old")
    store(databases, "neo4j", "new")
    if state == "swapping":
        store(transactions, "neo4j", "old")
        store(transactions, admin.staging, "new")
    else:
        store(transactions, ".neo4j.bulk360-replaced", "old")
        store(transactions, "neo4j", "new")
    journal = databases / ".neo4j.bulk360-swap.json"
    journal.write_text(json.dumps({"state": state}))
    note = admin.recover()
    assert note is not None and ("restored" if expected == "old" else "finished") in note
    for parent in admin.folders.parents:
        assert content(parent, "neo4j") == expected
        assert sorted(p.name for p in parent.iterdir()) == ["neo4j"]
    assert admin.recover() is None  # nothing left to do


def test_the_space_check_refuses_an_import_larger_than_the_disk(tmp_path: Path) -> None:
    admin = loader(tmp_path)
    assert admin.check_space(1 << 20) > 1 << 20
    with pytest.raises(TargetError, match="not enough disk space for the import"):
        admin.check_space(1 << 60)
