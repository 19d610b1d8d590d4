"""Parquet import packages: the test control rows (the Customer 360 sample and the type probe)
imported by the real neo4j-admin from a Parquet package, beside the same rows' CSV package (both
built by the session's ``admin_builds``, tests/integration/conftest.py)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from bulk360 import RunSummary
from bulk360.errors import IntegrityError
from bulk360.package import ImportPackage
from bulk360.package.paths import file_sha256
from bulk360.settings import Settings
from tests.helpers.cli import bulk360_cli
from tests.helpers.snapshots import Snapshot
from tests.integration.conftest import ParquetBuild

EMPTY_STRING = (
    "1 value of probe.public.all_types.short were empty strings: stored as no property "
    "(neo4j-admin's Parquet reader cannot store one)"
)


def test_the_graph_equals_the_csv_packages_but_for_empty_strings_and_arrays(
    parquet_build: ParquetBuild, admin_graph: Snapshot
) -> None:
    """Every node, relationship and typed value as the CSV package builds them (numerics,
    arrays, NULLs, temporals with zones, unicode, line breaks), except the two kinds of value
    neo4j-admin's Parquet reader stores otherwise: an empty string (no property) and an empty
    array (kept, as Bolt keeps it)."""
    parquet = parquet_build.graph
    expected = admin_graph.without_empty_strings()
    assert expected != admin_graph  # the type probe holds an empty string
    assert parquet != parquet.without_empty_arrays()  # and empty arrays
    assert parquet.without_empty_arrays().differences(expected) == []
    assert parquet.without_empty_arrays() == expected


def test_empty_strings_are_counted_and_named_and_empty_arrays_are_no_change(
    parquet_build: ParquetBuild, admin_run: RunSummary
) -> None:
    changed = parquet_build.summary.values_changed
    assert EMPTY_STRING in changed
    assert not any("empty arrays" in line for line in changed), changed
    assert any("empty arrays" in line for line in admin_run.values_changed)
    assert not any("empty strings" in line for line in admin_run.values_changed)
    assert parquet_build.summary.status == "succeeded" and parquet_build.summary.ledger_balanced


def test_the_package_holds_typed_parquet_files_under_the_same_manifest(
    parquet_build: ParquetBuild, admin_run: RunSummary
) -> None:
    folder = parquet_build.package
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["package_format"] == "parquet"
    entries = [*manifest["nodes"], *manifest["relationships"]]
    assert entries and all(e["file"].endswith(".parquet") for e in entries)
    assert not list(folder.rglob("*.csv"))
    for entry in entries:
        assert file_sha256(folder / entry["file"]) == entry["sha256"], entry["file"]
    assert {e["label"]: e["nodes"] for e in manifest["nodes"]} == admin_run.nodes
    by_type: Counter[str] = Counter()
    for r in manifest["relationships"]:
        by_type[r["type"]] += r["relationships"]
    assert dict(by_type) == admin_run.relationships
    probe = next(e for e in manifest["nodes"] if e["label"] == "TypeProbe")
    schema = pl.read_parquet_schema(folder / probe["file"])
    assert schema[":ID"] == pl.Int64 and schema["big:long"] == pl.Int64
    assert schema["double_value:double"] == pl.Float64 and schema["flag:boolean"] == pl.Boolean
    assert schema["numbers:long[]"] == pl.List(pl.Int64)
    assert schema["moment:datetime"] == pl.String  # parsed by neo4j-admin, zone and all


def test_a_parquet_package_is_verified_by_its_checksums_as_resume_reads_it(
    parquet_build: ParquetBuild, tmp_path: Path
) -> None:
    folder = tmp_path / parquet_build.package.name
    shutil.copytree(parquet_build.package, folder)
    digest = file_sha256(folder / "manifest.json")
    run_id = parquet_build.summary.run_id
    instance = json.loads((folder / "manifest.json").read_text())["control"]["instance"]
    package = ImportPackage.verified(folder, digest, instance, run_id)
    assert package.manifest.package_format == "parquet"
    victim = folder / package.manifest.nodes[0].file
    frame = pl.read_parquet(victim)
    frame.head(frame.height - 1).write_parquet(victim)
    with pytest.raises(IntegrityError, match="start a new run"):
        ImportPackage.verified(folder, digest, instance, run_id)


def test_sync_reads_a_parquet_package_and_finds_nothing_changed(
    parquet_build: ParquetBuild,
) -> None:
    sync = parquet_build.sync
    assert sync.status == "succeeded" and sync.ledger_balanced
    assert sync.diffed_against == parquet_build.summary.run_id
    changed = {name: c for name, c in sync.changes.items() if any(c.values())}
    assert changed == {}


def test_a_package_format_unknown_or_for_a_mode_without_packages_is_one_line(
    control_settings: Settings, tmp_path: Path
) -> None:
    for args, message in (
        (("--package-format", "orc"), "--package-format must be one of csv, parquet, not 'orc'"),
        (("--mode", "bolt", "--package-format", "parquet"), "--package-format is for --mode"),
    ):
        result = bulk360_cli(control_settings, tmp_path, "run", *args)
        assert result.returncode == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], lines
