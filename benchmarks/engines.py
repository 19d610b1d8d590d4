"""The two engines side by side: extraction, joins and files (``bulk360 run --mode csv``) of the
same generated data, with ``--engine local`` and with ``--engine spark`` in Spark's local mode on
the same cores, interleaved, at each scale. The Spark figure includes its session's start (a
run starts one), which the report also shows alone.

    python -m benchmarks.engines --scales 1,5      # `make bench` runs it after the main report

Writes ``engines.json`` and ``engines.md`` next to the main report; see benchmarks/README.md.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Annotated, Any

import typer

from benchmarks.bench import BENCH_ENV, ROOT, bulk360, create_database, generate, machine, services
from bulk360.settings import load_settings

STEPS = ("extract", "transform", "write")


def measure(engine: str, workers: int) -> dict[str, Any]:
    args = ["run", "--mode", "csv", "--json", "--workers", str(workers)]
    if engine == "spark":
        args += ["--engine", "spark", "--spark-master", f"local[{os.cpu_count() or 2}]"]
    measured = bulk360(*args)
    summary = json.loads(measured.stdout)
    steps = summary["step_seconds"]
    return {
        "seconds": measured.seconds,
        "files_seconds": sum(steps[s] for s in STEPS),
        "steps": {s: steps[s] for s in STEPS},
        "peak_rss_bytes": measured.peak_rss_bytes,
        "rows": summary["rows_read"],
        "elements": sum(summary["nodes"].values()) + sum(summary["relationships"].values()),
    }


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def report(result: dict[str, Any], output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    (output / "engines.json").write_text(json.dumps(result, indent=2))
    lines = [
        "# bulk360 engines — local and Spark (local mode), `--mode csv`",
        "",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, "
        f"{result['machine']['ram_bytes'] / 2**30:.0f} GiB RAM, {result['machine']['date']}. "
        f"Median of {result['repeat']} interleaved runs.",
        "",
        "| scale | rows | engine | extract + joins + files s | extract | transform | write "
        "| whole run s | peak RSS (tree) |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for point in result["scales"]:
        for engine in ("local", "spark"):
            runs = point[engine]
            steps = {s: statistics.median(r["steps"][s] for r in runs) for s in STEPS}
            lines.append(
                f"| {point['scale']} | {runs[0]['rows']:,} | {engine} "
                f"| {_median(runs, 'files_seconds'):.1f} | {steps['extract']:.1f} "
                f"| {steps['transform']:.1f} | {steps['write']:.2f} | {_median(runs, 'seconds'):.1f} "
                f"| {_median(runs, 'peak_rss_bytes') / 2**20:,.0f} MiB |"
            )
        ratio = _median(point["spark"], "files_seconds") / _median(point["local"], "files_seconds")
        lines.append(f"| {point['scale']} | | spark ÷ local | {ratio:.2f} | | | | | |")
    (output / "engines.md").write_text("\n".join(lines) + "\n")


def main(
    scales: Annotated[str, typer.Option(help="Scales, comma-separated.")] = "1,5",
    repeat: Annotated[int, typer.Option(min=1)] = 2,
    workers: Annotated[int, typer.Option(min=1)] = 4,
    output: Annotated[Path, typer.Option()] = ROOT / "benchmarks" / "results",
) -> None:
    os.environ.update(BENCH_ENV)
    settings = load_settings()
    services("postgres", "start")
    create_database(settings, settings.etl_db_name)
    result: dict[str, Any] = {"machine": machine(), "repeat": repeat, "scales": []}
    for scale in [float(s) for s in scales.split(",") if s.strip()]:
        generate(settings, scale, "bench_")
        point: dict[str, Any] = {"scale": scale, "local": [], "spark": []}
        for number in range(repeat):
            for engine in ("local", "spark") if number % 2 == 0 else ("spark", "local"):
                point[engine].append(measure(engine, workers))
                print(
                    f"  scale {scale} {engine}: {point[engine][-1]['files_seconds']:.1f}s "
                    f"(run {point[engine][-1]['seconds']:.1f}s)"
                )
        result["scales"].append(point)
        report(result, output)
    print(f"wrote {output / 'engines.md'}")


if __name__ == "__main__":
    app = typer.Typer(pretty_exceptions_show_locals=False, add_completion=False)
    app.command()(main)
    app()
