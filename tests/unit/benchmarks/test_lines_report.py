"""The report of ``make bench-lines``: the ratios per line and package format, from the
medians of its repetitions."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from benchmarks.bench import Runs
from benchmarks.lines import LineBench, report
from bulk360.settings import NEO4J_DEFAULT, NEO4J_LTS


def line(version: str, seconds: dict[str, list[float]]) -> LineBench:
    measured = LineBench.__new__(LineBench)  # no services: the measurements are given
    measured.version = version
    runs: dict[str, Runs] = {}
    measured.bench = SimpleNamespace(runs=runs, steps={"csv: load": [1.0, 3.0, 2.0]})  # type: ignore[assignment]
    for name, values in seconds.items():
        runs = measured.bench.runs.setdefault(name, Runs())
        for value in values:
            runs.add(value, 1000)
    return measured


def test_ratios_are_medians_per_format_and_the_target_is_the_default_lines(tmp_path: Path) -> None:
    measured = {
        "bulk360 admin (csv)": [10.0, 12.0, 11.0],
        "bulk360 admin (parquet)": [13.0, 12.0, 14.0],
        "import limit (csv)": [10.0, 10.0, 10.0],
        "import limit (parquet)": [12.0, 12.0, 12.0],
        "straightforward": [20.0, 22.0, 21.0],
        "bulk360 bolt (writing)": [4.0],
        "LOAD CSV in transactions": [5.0],
    }
    default = line(NEO4J_DEFAULT, measured)
    assert default.ratios() == {
        "admin_vs_import_limit (csv)": 1.1,
        "admin_vs_straightforward (csv)": round(11 / 21, 3),
        "admin_vs_import_limit (parquet)": round(13 / 12, 3),
        "admin_vs_straightforward (parquet)": round(13 / 21, 3),
        "bolt_vs_load_csv": 1.25,
    }
    lts = line(NEO4J_LTS, measured)
    meta = {
        "machine": {"cpu": "cpu", "cores": 2, "ram_bytes": 2**34, "date": "today"},
        "scale": 1,
        "rows": 10,
        "elements": 20,
        "repeat": 3,
        "bolt_repeat": 1,
        "workers": 4,
    }
    data, md = report([default, lts], meta, tmp_path)
    written = json.loads(data.read_text())
    assert set(written["lines"]) == {NEO4J_DEFAULT, NEO4J_LTS}
    assert written["lines"][NEO4J_LTS]["admin_steps"] == {"csv: load": 2.0}
    text = md.read_text()
    assert f"| {NEO4J_DEFAULT} | `admin_vs_import_limit (csv)` | 1.100 | ≤ 1.05 | **no** |" in text
    assert f"| {NEO4J_LTS} | `admin_vs_import_limit (csv)` | 1.100 |  |  |" in text
