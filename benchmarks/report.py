"""The benchmark's report: ratios against the targets, ``latest.json``, ``latest.md`` and plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

__all__ = [
    "FULL_UPSERT",
    "IMPORT_LIMIT",
    "REBUILD",
    "SAMPLE_LOAD_AFTER",
    "SAMPLE_LOAD_BEFORE",
    "STRAIGHTFORWARD",
    "SYNC",
    "ratios",
    "write_report",
]

STRAIGHTFORWARD = "psql \\copy + neo4j-admin, default string ids"
IMPORT_LIMIT = "the import limit: psql \\copy + neo4j-admin, actual ids, fast start"
SAMPLE_LOAD_AFTER = "sample load step: bulk360 (actual ids, fast start)"
SAMPLE_LOAD_BEFORE = "sample load step: before (string ids, launcher)"
SYNC = "bulk360 sync, 1% of the rows changed (changes)"
FULL_UPSERT = "bulk360 bolt, full upsert, 1% of the rows changed"
REBUILD = "bulk360 admin rebuild with stop and start, 1% of the rows changed"

# name: (what it measures, target, True when lower is better)
TARGETS: dict[str, tuple[str, float, bool]] = {
    "admin_vs_straightforward": (
        "admin mode total time ÷ (psql \\copy + neo4j-admin, default string ids)",
        0.70,
        True,
    ),
    "admin_vs_import_limit": (
        "admin mode total time ÷ (psql \\copy + neo4j-admin --id-type=actual, fast start)",
        1.10,
        True,
    ),
    "sample_load_after_vs_before": (
        "the sample's load step ÷ its import as bulk360 ran it before (string ids, launcher)",
        0.5,
        True,
    ),
    "sync_vs_full_upsert": (
        "a full bolt upsert's time ÷ sync's, 1% of the rows changed",
        20.0,
        False,
    ),
    "sync_vs_admin_rebuild": (
        "admin rebuild's time (stop and start included) ÷ sync's, 1% of the rows changed",
        1.0,
        False,
    ),
    "extract_vs_psql_copy": ("extraction throughput ÷ psql \\copy to /dev/null", 0.9, False),
    "extract_vs_connectorx": ("extraction throughput ÷ ConnectorX", 1.0, False),
    "transform_write_vs_extract": ("(transform + write) time ÷ extraction time", 0.25, True),
    "bolt_vs_load_csv": ("bolt writing throughput ÷ LOAD CSV in transactions", 0.8, False),
    "bolt_vs_python_unwind": ("bolt writing throughput ÷ the pure-Python recipe", 3.0, False),
    "seed_vs_admin": ("admin throughput ÷ the seed's one-CREATE-per-row", 1000.0, False),
    "admin_peak_memory_of_ram": (
        "admin peak RSS (bulk360 and its neo4j-admin) ÷ RAM, largest scale measured",
        0.25,
        True,
    ),
    "python_peak_memory_of_ram": (
        "bulk360's own Python peak RSS ÷ RAM, largest scale measured",
        0.25,
        True,
    ),
    "time_per_row_largest_vs_smallest": (
        "admin time per row, largest ÷ smallest scale of the curve",
        1.2,
        True,
    ),
}


def ratios(result: dict[str, Any]) -> dict[str, float]:
    """The ratios of one benchmark run (absent when their methods did not run)."""
    m = result["methods"]
    steps = result["admin_steps"]

    def seconds(name: str) -> float:
        return float(m[name]["median_seconds"])

    def rate(name: str) -> float:
        return float(m[name]["per_second"])

    found: dict[str, float] = {}
    if STRAIGHTFORWARD in m:
        found["admin_vs_straightforward"] = seconds("bulk360 admin") / seconds(STRAIGHTFORWARD)
    if IMPORT_LIMIT in m:
        found["admin_vs_import_limit"] = seconds("bulk360 admin") / seconds(IMPORT_LIMIT)
    if SAMPLE_LOAD_BEFORE in m:
        found["sample_load_after_vs_before"] = seconds(SAMPLE_LOAD_AFTER) / seconds(
            SAMPLE_LOAD_BEFORE
        )
    if SYNC in m:
        found["sync_vs_full_upsert"] = seconds(FULL_UPSERT) / seconds(SYNC)
        found["sync_vs_admin_rebuild"] = seconds(REBUILD) / seconds(SYNC)
    if "psql \\copy to /dev/null" in m:
        found["extract_vs_psql_copy"] = seconds("psql \\copy to /dev/null") / seconds(
            "bulk360 extract"
        )
    if "ConnectorX to Arrow" in m:
        found["extract_vs_connectorx"] = seconds("ConnectorX to Arrow") / seconds("bulk360 extract")
    if steps.get("extract"):
        found["transform_write_vs_extract"] = (
            steps.get("transform", 0) + steps.get("write", 0)
        ) / steps["extract"]
    if "LOAD CSV in transactions" in m:
        found["bolt_vs_load_csv"] = rate("bulk360 bolt (writing)") / rate(
            "LOAD CSV in transactions"
        )
    python = "Python driver, 1,000-row UNWIND MERGE"
    if python in m and rate(python):
        found["bolt_vs_python_unwind"] = rate("bulk360 bolt (writing)") / rate(python)
    seed = "seed: one CREATE per row"
    if seed in m and rate(seed):
        found["seed_vs_admin"] = rate("bulk360 admin") / rate(seed)
    curve = result.get("scaling") or []
    peaks = [c["peak_rss_bytes"] for c in curve]
    peaks += [m["bulk360 admin"]["peak_rss_bytes"]] if "bulk360 admin" in m else []
    if peaks:
        found["admin_peak_memory_of_ram"] = max(peaks) / result["machine"]["ram_bytes"]
    if curve:
        own = max(c["peak_python_rss_bytes"] for c in curve)
        found["python_peak_memory_of_ram"] = own / result["machine"]["ram_bytes"]
    if len(curve) >= 2:
        found["time_per_row_largest_vs_smallest"] = (
            curve[-1]["microseconds_per_row"] / curve[0]["microseconds_per_row"]
        )
    return {name: round(value, 4) for name, value in found.items()}


def _targets(found: dict[str, float]) -> dict[str, dict[str, Any]]:
    table = {}
    for name, value in found.items():
        meaning, target, lower = TARGETS[name]
        table[name] = {
            "meaning": meaning,
            "value": value,
            "target": f"≤ {target}" if lower else f"≥ {target}",
            "met": value <= target if lower else value >= target,
        }
    return table


def _markdown(result: dict[str, Any]) -> str:
    machine = result["machine"]
    lines = [
        f"# bulk360 benchmark — scale {result['scale']}",
        "",
        f"{result['rows']:,} source rows → {result['elements']:,} nodes and relationships; "
        f"median of {result['repeat']} interleaved repetitions, {result['workers']} workers.",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['ram_bytes'] / 2**30:.0f} GiB RAM, {machine['os']}, {machine['date']}.",
        "",
        "| method | median s | per second | peak RSS | runs (s) |",
        "|---|---:|---:|---:|---|",
    ]
    for name, m in result["methods"].items():
        rss = f"{m['peak_rss_bytes'] / 2**20:,.0f} MiB" if m["peak_rss_bytes"] else ""
        capped = "" if m["finished"] else " (time cap)"
        lines.append(
            f"| {name}{capped} | {m['median_seconds']:.2f} | {m['per_second']:,} | {rss} | "
            + ", ".join(f"{s:.2f}" for s in m["seconds"])
            + " |"
        )
    lines += [
        "",
        "Admin mode per step (median s): "
        + ", ".join(f"{k} {v:.2f}" for k, v in result["admin_steps"].items()),
        "",
    ]
    lines += ["| ratio | value | target | met | meaning |", "|---|---:|---|---|---|"]
    for name, t in result["targets"].items():
        lines.append(
            f"| `{name}` | {t['value']:.3f} | {t['target']} | {'yes' if t['met'] else '**no**'} "
            f"| {t['meaning']} |"
        )
    if result["scaling"]:
        lines += [
            "",
            "| scale | rows | admin s | µs per row | peak RSS (tree) | peak RSS (Python) |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for c in result["scaling"]:
            lines.append(
                f"| {c['scale']} | {c['rows']:,} | {c['seconds']:.1f} | "
                f"{c['microseconds_per_row']:.2f} | {c['peak_rss_bytes'] / 2**20:,.0f} MiB | "
                f"{c['peak_python_rss_bytes'] / 2**20:,.0f} MiB |"
            )
    return "\n".join(lines) + "\n"


# The comparisons drawn, one panel each: (title, [(method, role)]); a role is its colour.
PANELS: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "full build (admin mode)",
        [
            ("bulk360 admin", "bulk360"),
            (STRAIGHTFORWARD, "peer"),
            ("seed: one CREATE per row", "peer"),
            (IMPORT_LIMIT, "limit"),
        ],
    ),
    (
        "extraction",
        [
            ("bulk360 extract", "bulk360"),
            ("ConnectorX to Arrow", "peer"),
            ("psql \\copy to files", "peer"),
            ("psql \\copy to /dev/null", "limit"),
        ],
    ),
    (
        "Bolt (a running server)",
        [
            ("bulk360 bolt", "bulk360"),
            ("LOAD CSV in transactions", "peer"),
            ("Python driver, 1,000-row UNWIND MERGE", "peer"),
        ],
    ),
]
COLOURS = {"bulk360": "#1f5fa8", "peer": "#e07b1a", "limit": "#3a9a3a"}


def _panel(axis: Any, title: str, bars: list[tuple[str, float, str]], unit: str) -> None:
    """Horizontal bars of time, bulk360 first, each with its ratio to bulk360's (x): lower is
    faster."""
    names = [name for name, _, _ in bars]
    values = [value for _, value, _ in bars]
    drawn = axis.barh(names, values, color=[COLOURS[role] for _, _, role in bars])
    base = values[0]
    for bar, value in zip(drawn, values, strict=True):
        axis.text(
            bar.get_width(),
            bar.get_y() + bar.get_height() / 2,
            f" {value:,.1f} {unit}  {value / base:.2f}x" if base else f" {value:,.1f} {unit}",
            va="center",
            fontsize=8,
        )
    axis.invert_yaxis()
    if max(values) > 30 * min(values):  # the seed: a log scale keeps the others visible
        axis.set_xscale("log")
        axis.set_xlim(min(values) / 2, max(values) * 12)
        unit += ", log scale"
    else:
        axis.set_xlim(0, max(values) * 1.45)
    axis.set_title(title, fontsize=10)
    axis.set_xlabel(f"{unit} (lower is faster; Nx = N times bulk360's time)", fontsize=8)
    axis.tick_params(axis="y", labelsize=8)


def _follow_bars(output: Path) -> list[tuple[str, float, str]]:
    """Follow, sync and a full upsert on the same 1% change, from ``follow.json`` if present."""
    found = output / "follow.json"
    if not found.exists():
        return []
    point = json.loads(found.read_text())["scales"][0]
    return [
        ("bulk360 follow --once", point["follow"]["seconds"], "bulk360"),
        ("bulk360 sync", point["sync_seconds"], "bulk360"),
        ("full bolt upsert", point["upsert_seconds"], "peer"),
    ]


def _plots(result: dict[str, Any], output: Path) -> list[Path]:
    paths = []
    methods = result["methods"]

    def bar(name: str, role: str) -> tuple[str, float, str]:
        # Seconds per million rows or elements: the same work whatever each method reached
        # before its time cap (the seed runs on the sample only).
        method = methods[name]
        shown = name if method.get("finished", True) else f"{name} (time-capped)"
        return shown, 1e6 / method["per_second"], role

    panels = [
        (title, "s per million", [bar(n, role) for n, role in chosen if n in methods])
        for title, chosen in PANELS
    ]
    follow = _follow_bars(output)
    if follow:
        panels.append(("keeping up: the same 1% of the rows changed (scale 1)", "s", follow))
    panels = [panel for panel in panels if panel[2]]
    figure, axes = plt.subplots(len(panels), 1, figsize=(10, 2.2 * len(panels) + 1), squeeze=False)
    for axis, (title, unit, bars) in zip(axes[:, 0], panels, strict=True):
        _panel(axis, title, bars, unit)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLOURS.values()]
    figure.legend(handles, ["bulk360", "peers", "the limit"], loc="upper right", fontsize=8)
    figure.suptitle(
        f"bulk360 benchmark, scale {result['scale']}: time per million rows (extraction) or "
        "nodes + relationships, side by side in one run",
        fontsize=10,
    )
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    paths.append(output / "throughput.png")
    figure.savefig(paths[-1], dpi=110)
    plt.close(figure)
    if result["scaling"]:
        figure, axis = plt.subplots(figsize=(6, 4))
        curve = result["scaling"]
        axis.plot([c["scale"] for c in curve], [c["microseconds_per_row"] for c in curve], "o-")
        axis.set_xlabel("scale (1 ≈ 1.1 million source rows)")
        axis.set_ylabel("admin mode, µs per source row")
        axis.set_ylim(bottom=0)
        axis.set_title("time per row against scale")
        figure.tight_layout()
        paths.append(output / "scaling.png")
        figure.savefig(paths[-1], dpi=110)
        plt.close(figure)
    return paths


def write_report(result: dict[str, Any], output: Path) -> list[Path]:
    """Add ratios and targets to ``result`` and write it with its markdown and plots."""
    output.mkdir(parents=True, exist_ok=True)
    result["ratios"] = ratios(result)
    result["targets"] = _targets(result["ratios"])
    (output / "latest.json").write_text(json.dumps(result, indent=2) + "\n")
    (output / "latest.md").write_text(_markdown(result))
    return [output / "latest.json", output / "latest.md", *_plots(result, output)]


if (
    __name__ == "__main__"
):  # redraw the plots of a results folder: python -m benchmarks.report [FOLDER]
    import sys

    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results"
    for path in _plots(json.loads((folder / "latest.json").read_text()), folder):
        print(f"wrote {path}")
