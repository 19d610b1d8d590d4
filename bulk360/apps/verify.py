"""``bulk360 verify``: the graph's counts against the manifest of the run that built it.

That run is the newest succeeded admin, bolt or sync run of this control database into
``NEO4J_DATABASE``; without one (only csv runs, or a graph loaded by hand), the package of
``import/current`` is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from neo4j import Driver

from bulk360.control.history import follow_sessions_since, graph_run
from bulk360.errors import ConfigError, IntegrityError
from bulk360.load.cypher import graph_counts
from bulk360.package.manifest import Manifest
from bulk360.package.paths import CURRENT_LINK, MANIFEST_FILE
from bulk360.settings import Settings

__all__ = ["CountCheck", "compare_counts", "followed_since_built", "graph_manifest"]


def graph_manifest(settings: Settings) -> Path:
    """The manifest of the run that built the graph, else that of ``import/current``."""
    built = graph_run(settings)
    if built is not None and built["import_dir"]:
        manifest = Path(built["import_dir"]) / MANIFEST_FILE
        if manifest.exists():
            return manifest
    return settings.import_dir / CURRENT_LINK / MANIFEST_FILE


def followed_since_built(settings: Settings) -> int | None:
    """The newest follow session that wrote into the graph after the run that built it: the
    graph is then newer than that run's manifest (None: it is not)."""
    built = graph_run(settings)
    found = follow_sessions_since(settings, built["run_id"] if built else 0)
    return found[-1] if found else None


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


def compare_counts(driver: Driver, database: str, manifest_path: Path) -> list[CountCheck]:
    """Every label and type of the manifest or the graph, with both counts."""
    if not manifest_path.exists():
        raise ConfigError(f"no manifest at {manifest_path}; run bulk360 first")
    try:
        expected = Manifest.read(manifest_path).expected_counts()
    except IntegrityError as exc:
        raise ConfigError(str(exc)) from None
    actual = {k: v for k, v in graph_counts(driver, database).items() if v}
    return [
        CountCheck(kind, name, expected.get((kind, name), 0), actual.get((kind, name), 0))
        for kind, name in sorted(expected.keys() | actual.keys())
    ]
