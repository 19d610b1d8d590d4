"""``make bench-smoke``: the benchmark runner end to end at a tiny scale, so it cannot rot.

Nothing here looks at a timing: only that every method ran, wrote what it should, and that the
report holds every ratio; ``benchmarks.distance`` runs too (without the Spark connector).
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

from tests.helpers.services import ROOT

RATIOS = {
    "admin_vs_straightforward",
    "admin_vs_import_limit",
    "sample_load_after_vs_before",
    "sync_vs_full_upsert",
    "sync_vs_admin_rebuild",
    "extract_vs_psql_copy",
    "extract_vs_connectorx",
    "transform_write_vs_extract",
    "bolt_vs_load_csv",
    "bolt_vs_python_unwind",
    "seed_vs_admin",
    "admin_peak_memory_of_ram",
    "time_per_row_largest_vs_smallest",
}


def test_bench_smoke_measures_every_method_and_writes_the_report(tmp_path: Path) -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "bench-smoke", f"BENCH_SMOKE_OUT={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    report = json.loads((tmp_path / "latest.json").read_text())

    assert set(report["ratios"]) >= RATIOS
    assert all(math.isfinite(v) and v > 0 for v in report["ratios"].values()), report["ratios"]
    assert {t["met"] for t in report["targets"].values()} <= {True, False}
    methods = report["methods"]
    assert len(methods) == 19
    assert all(m["runs"] == 1 and m["per_second"] > 0 for m in methods.values()), methods
    # Every method that writes the whole graph wrote the same number of nodes and relationships.
    whole = [
        "bulk360 admin",
        "bulk360 bolt",
        "LOAD CSV in transactions",
        "neo4j-admin, string ids (launcher)",
        "neo4j-admin, actual ids (fast start)",
    ]
    assert len({methods[name]["elements"] for name in whole}) == 1, methods
    assert methods["bulk360 admin"]["elements"] == report["elements"] > report["rows"] > 0
    # The extraction peers read the same rows as bulk360's readers.
    assert methods["ConnectorX to Arrow"]["elements"] == report["rows"]
    assert [c["scale"] for c in report["scaling"]] == [0.02, 0.05]
    assert report["scaling"][0]["rows"] < report["scaling"][1]["rows"]
    for image in ("throughput.png", "scaling.png"):
        assert (tmp_path / image).read_bytes()[:4] == b"\x89PNG"
    assert "admin_vs_import_limit" in (tmp_path / "latest.md").read_text()

    # Bolt at a distance: both round trips, every writer count, the rounds never retried.
    distance = json.loads((tmp_path / "distance.json").read_text())
    assert [p["round_trip_ms"] for p in distance["points"]] == [0, 20]
    for point in distance["points"]:
        runs = [*point["bulk360"].values(), *point["batch_sizes"].values()]
        assert len(point["bulk360"]) == 2
        assert all(r["retries"] == 0 for r in runs), runs
        assert {r["relationships"] for r in runs} == {distance["relationships"]}
        assert point["ratios"]["relationships_most_vs_one"] > 0
    assert [len(p["batch_sizes"]) for p in distance["points"]] == [0, 1]
    assert (tmp_path / "distance.png").read_bytes()[:4] == b"\x89PNG"
