"""``bulk360 verify``: the graph's counts against the manifest of the run that built it.

That run is the newest succeeded admin or bolt run of this control database into
``NEO4J_DATABASE``; without one (only csv runs, or a graph loaded by hand), the manifest of
``import/current`` is used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neo4j import Driver

from bulk360.control import graph_run
from bulk360.errors import ConfigError
from bulk360.graph import quoted
from bulk360.paths import MANIFEST_FILE
from bulk360.settings import Settings

__all__ = ["CountCheck", "compare_counts", "expected_counts", "graph_counts", "graph_manifest"]


def graph_manifest(settings: Settings) -> Path:
    """The manifest of the run that built the graph, else that of ``import/current``."""
    built = graph_run(settings)
    if built is not None and built["import_dir"]:
        manifest = Path(built["import_dir"]) / MANIFEST_FILE
        if manifest.exists():
            return manifest
    return settings.import_dir / "current" / MANIFEST_FILE


@dataclass(frozen=True)
class CountCheck:
    """One label or relationship type: what the manifest says and what the graph holds."""

    kind: str
    name: str
    expected: int
    actual: int

    @property
    def ok(self) -> bool:
        return self.expected == self.actual


def expected_counts(manifest_path: Path) -> dict[tuple[str, str], int]:
    """Node counts per label and relationship counts per type from a manifest."""
    try:
        manifest: dict[str, Any] = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no manifest at {manifest_path}; run bulk360 first") from None
    expected: dict[tuple[str, str], int] = {}
    for node in manifest["nodes"]:
        expected[("label", node["label"])] = (
            expected.get(("label", node["label"]), 0) + node["nodes"]
        )
    for rel in manifest["relationships"]:
        key = ("type", rel["type"])
        expected[key] = expected.get(key, 0) + rel["relationships"]
    return expected


def graph_counts(driver: Driver, database: str) -> dict[tuple[str, str], int]:
    """Node counts per label and relationship counts per type (from the count store)."""

    def query(cypher: str) -> list[Any]:
        records, _, _ = driver.execute_query(cypher, database_=database, bookmark_manager_=None)
        return records

    counts: dict[tuple[str, str], int] = {}
    for record in query("CALL db.labels() YIELD label RETURN label"):
        label = record["label"]
        found = query(f"MATCH (n:{quoted(label)}) RETURN count(n) AS count")
        counts[("label", label)] = found[0]["count"]
    for record in query(
        "CALL db.relationshipTypes() YIELD relationshipType RETURN relationshipType"
    ):
        kind = record["relationshipType"]
        found = query(f"MATCH ()-[r:{quoted(kind)}]->() RETURN count(r) AS count")
        counts[("type", kind)] = found[0]["count"]
    return counts


def compare_counts(driver: Driver, database: str, manifest_path: Path) -> list[CountCheck]:
    """Every label and type of the manifest or the graph, with both counts."""
    expected = expected_counts(manifest_path)
    actual = {k: v for k, v in graph_counts(driver, database).items() if v}
    return [
        CountCheck(kind, name, expected.get((kind, name), 0), actual.get((kind, name), 0))
        for kind, name in sorted(expected.keys() | actual.keys())
    ]
