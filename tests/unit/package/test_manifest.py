"""The typed manifest: a folder written by bulk360 0.1.0 (format 3, checked in) reads; format 4
round-trips; anything else is one line."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from bulk360.errors import IntegrityError
from bulk360.modes import LOADERS
from bulk360.package import ImportPackage
from bulk360.package.manifest import FORMAT, Manifest
from bulk360.plan.rules import MappingLedger

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "format3"
RUN = json.loads((FIXTURE / "run.json").read_text())
FOLDER = FIXTURE / "run-1-439ae90d"


def test_a_format_3_folder_reads() -> None:
    package = ImportPackage.read(FOLDER)
    manifest = package.manifest
    assert manifest.format == 3 and manifest.bulk360_version is None
    assert package.sha256 == RUN["manifest_sha256"]
    assert manifest.control.instance == RUN["control_instance"]
    assert [n.label for n in manifest.nodes] == ["Person", "Pet"]
    assert manifest.node("Person").headers == (
        ":ID",
        "id:long",
        "name:string",
        "born:date",
        "tags:string[]",
    )
    assert manifest.totals.nodes == 9 and manifest.totals.relationships == 6
    owns = next(r for r in manifest.relationships if r.type == "OWNS")
    # Pets drive OWNS: 5 read, one without an owner, one whose owner is gone.
    assert owns.ledger == MappingLedger("to", read=5, rejected=1, orphaned=1, matched=3)
    assert owns.name == "OWNS.1"
    assert manifest.expected_counts()[("label", "Pet")] == 5
    files = package.relationship_files()
    assert {f.name for f in files} == {"OWNS.1", "FRIEND_OF.2"}
    assert all(f.path.is_file() for f in files)


def test_a_format_3_folder_verifies_by_its_checksums(tmp_path: Path) -> None:
    ImportPackage.verified(FOLDER, RUN["manifest_sha256"], RUN["control_instance"], 1)
    copy = tmp_path / FOLDER.name
    shutil.copytree(FOLDER, copy)
    with (copy / "nodes" / "Pet.csv").open("a") as handle:
        handle.write("99,99,,snake,\n")
    with pytest.raises(IntegrityError, match="differs from its manifest"):
        ImportPackage.verified(copy, RUN["manifest_sha256"], RUN["control_instance"], 1)
    with pytest.raises(IntegrityError, match="belongs to another control database"):
        ImportPackage.verified(FOLDER, RUN["manifest_sha256"], "another", 1)


def test_format_4_round_trips(tmp_path: Path) -> None:
    old = Manifest.read(FOLDER / "manifest.json")
    new = Manifest.from_json({**old.to_json(), "format": FORMAT, "bulk360_version": "0.2.0"})
    new.write(tmp_path / "manifest.json")
    again = Manifest.read(tmp_path / "manifest.json")
    assert again == new and again.format == 4 and again.nodes == old.nodes


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot be read"),
        ('{"format": 9}', "manifest format 9 is not one this bulk360 reads (3, 4)"),
        ('{"format": 4, "run_id": 1}', "incomplete or malformed"),
    ],
)
def test_anything_else_is_one_line(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(IntegrityError, match=re.escape(message)) as caught:
        Manifest.read(tmp_path / "manifest.json")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("mode", ["admin", "bolt", "csv", "sync"])
def test_empty_arrays_change_only_where_neo4j_admin_writes_them(mode: str) -> None:
    manifest = ImportPackage.read(FOLDER).manifest
    lines = [line for _, line in manifest.value_changes(LOADERS[mode].over_bolt)]
    # Bolt writes an empty array as one, sync too (it writes over Bolt); neo4j-admin cannot.
    assert any("were empty arrays" in line for line in lines) == (mode in ("admin", "csv"))
