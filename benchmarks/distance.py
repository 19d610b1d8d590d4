"""Bolt at a distance: bulk360 bolt, its peers and its relationship rounds at 0 ms and at a
20 ms round trip (Neo4j Aura in a nearby region), through :mod:`benchmarks.latency`.

    python -m benchmarks.distance --scale 1      # `make bench` runs it after the main report

At each round trip, on the benchmark's generated data (admin mode builds the package once):

* ``bulk360 bolt --workers W`` for each W (the whole run through the CLI; its nodes and
  relationships phases and the Bolt retries from the run's JSON summary), and at the largest
  round trip with the most writers, other ``--batch-size`` values;
* bulk360's writer with relationship batches in file order on every thread (the scheduling
  before the rounds), W writers: the deadlock retries that the rounds remove;
* the Python driver's common recipe (pure-Python driver, 1,000-row ``UNWIND ... MERGE``,
  one thread; time-capped);
* the Spark engine's bolt mode through the Neo4j connector with one writer (relationships
  through one partition: the connector's own advice) and with W writers (bulk360's rounds).

Every graph starts empty. Writes ``distance.json`` and ``distance.md`` and ``distance.png``
next to the main report; see benchmarks/README.md.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from benchmarks.bench import BENCH_ENV, ROOT, Bench, bulk360, create_database, generate, machine
from benchmarks.bench import services as run_services
from benchmarks.latency import LatencyProxy
from bulk360.load import LoadContext
from bulk360.load.bolt import BoltLoader
from bulk360.load.writer import DriverWriter
from bulk360.options import RunOptions, SilentReporter
from bulk360.package import ImportPackage
from bulk360.settings import Settings, load_settings

RECIPE = "Python driver recipe (1 thread, 1,000-row UNWIND MERGE)"


class _FileOrder(BoltLoader):
    """Bolt mode with relationship batches in file order on every thread."""

    def driver_writer(self, driver: Any) -> DriverWriter:
        writer = super().driver_writer(driver)
        writer.scheduled = False
        return writer


def bolt_run(workers: int, uri: str, spark: bool = False, batch: int = 5_000) -> dict[str, Any]:
    args = ["run", "--mode", "bolt", "--json", "--workers", str(workers)]
    args += ["--batch-size", str(batch)]
    if spark:
        args += ["--engine", "spark", "--spark-master", f"local[{os.cpu_count() or 2}]"]
    measured = bulk360(*args, env={"NEO4J_URI": uri})
    summary = json.loads(measured.stdout)
    load = summary["load"]
    return {
        "seconds": measured.seconds,
        "nodes_seconds": load["seconds"]["nodes"],
        "relationships_seconds": load["seconds"]["relationships"],
        "nodes": sum(load["nodes"].values()),
        "relationships": sum(load["relationships"].values()),
        "retries": summary["load"]["retries"],
        "import_dir": summary["import_dir"],
    }


def file_order(settings: Settings, folder: Path, workers: int, uri: str) -> dict[str, Any]:
    """bulk360's writer, relationship batches in file order (in this process)."""
    options = RunOptions(mode="bolt", workers=workers)
    context = LoadContext(
        _with_uri(settings, uri),
        options,
        SilentReporter(),
        lambda line: None,
    )
    loader = _FileOrder(context)
    started = time.perf_counter()
    result = loader.load(ImportPackage.read(folder))
    return {
        "seconds": round(time.perf_counter() - started, 3),
        "nodes_seconds": result.seconds["nodes"],
        "relationships_seconds": result.seconds["relationships"],
        "nodes": sum(result.nodes.values()),
        "relationships": sum(result.relationships.values()),
        "retries": result.retries,
    }


def _with_uri(settings: Settings, uri: str) -> Settings:
    return replace(settings, neo4j_uri=uri)


def recipe(bench: Bench, uri: str) -> dict[str, Any]:
    bench.settings = _with_uri(bench.settings, uri)
    try:
        bench.runs.pop(RECIPE_KEY, None)
        bench.python_unwind()
        runs = bench.runs.pop(RECIPE_KEY)
    finally:
        bench.settings = _with_uri(bench.settings, BENCH_ENV["NEO4J_URI"])
    return {
        "seconds": runs.seconds[0],
        "elements": runs.elements[0],
        "finished": runs.finished[0],
        "retries": 0,
    }


RECIPE_KEY = "Python driver, 1,000-row UNWIND MERGE"


def measure_distance(
    bench: Bench,
    round_trip_ms: float,
    workers: list[int],
    sizes: list[int],
    connector: bool = True,
) -> dict[str, Any]:
    point: dict[str, Any] = {
        "round_trip_ms": round_trip_ms,
        "bulk360": {},
        "file_order": {},
        "batch_sizes": {},
    }
    target = ("127.0.0.1", int(BENCH_ENV["NEO4J_BOLT_PORT"]))
    with LatencyProxy(*target, one_way_ms=round_trip_ms / 2) as proxy:
        uri = proxy.uri if round_trip_ms else BENCH_ENV["NEO4J_URI"]
        for w in workers:
            bench.empty_graph()
            point["bulk360"][w] = run = newest = bolt_run(w, uri)
            print(
                f"  {round_trip_ms:g} ms, bulk360 bolt --workers {w}: {run['seconds']:.1f}s "
                f"(relationships {run['relationships_seconds']:.1f}s, {run['retries']} retries)"
            )
        most = max(workers)
        for size in sizes:
            bench.empty_graph()
            point["batch_sizes"][size] = run = newest = bolt_run(most, uri, batch=size)
            print(
                f"  {round_trip_ms:g} ms, bulk360 bolt --workers {most} --batch-size {size}: "
                f"{run['seconds']:.1f}s (relationships {run['relationships_seconds']:.1f}s)"
            )
        bench.empty_graph()
        # The newest run's folder (older ones are pruned by --keep-runs): the same package.
        folder = Path(newest["import_dir"])
        point["file_order"][most] = run = file_order(bench.settings, folder, most, uri)
        print(
            f"  {round_trip_ms:g} ms, file order, {most} writers: relationships "
            f"{run['relationships_seconds']:.1f}s, {run['retries']} retries"
        )
        bench.empty_graph()
        point["recipe"] = run = recipe(bench, uri)
        print(f"  {round_trip_ms:g} ms, Python recipe: {run['seconds']:.1f}s")
        point["connector"] = {}
        for w in (1, most) if connector else ():
            bench.empty_graph()
            point["connector"][w] = run = bolt_run(w, uri, spark=True)
            print(
                f"  {round_trip_ms:g} ms, Spark connector, {w} writer(s): relationships "
                f"{run['relationships_seconds']:.1f}s, {run['retries']} retries"
            )
    return point


def _int_keys(point: dict[str, Any]) -> dict[str, Any]:
    """A point read back from JSON: its writer counts and batch sizes are numbers again."""
    for name in ("bulk360", "file_order", "connector", "batch_sizes"):
        point[name] = {int(k): v for k, v in point.get(name, {}).items()}
    return point


def ratios(point: dict[str, Any], workers: list[int]) -> dict[str, float]:
    one, most = point["bulk360"][min(workers)], point["bulk360"][max(workers)]
    found = {
        "relationships_most_vs_one": one["relationships_seconds"] / most["relationships_seconds"]
    }
    if 1 not in point["connector"]:
        return found
    connector = point["connector"][1]
    return found | {
        "relationships_vs_connector_one_partition": connector["relationships_seconds"]
        / most["relationships_seconds"],
        "writing_vs_connector_one_partition": (
            connector["nodes_seconds"] + connector["relationships_seconds"]
        )
        / (most["nodes_seconds"] + most["relationships_seconds"]),
    }


def report(result: dict[str, Any], output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    (output / "distance.json").write_text(json.dumps(result, indent=2))
    workers = result["workers"]
    lines = [
        "# bulk360 bolt at a distance — 0 ms and 20 ms round trip",
        "",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, "
        f"{result['machine']['date']}. Scale {result['scale']}: {result['nodes']:,} nodes, "
        f"{result['relationships']:,} relationships. Round trip added by a loopback proxy "
        "(`benchmarks/latency.py`); batches of 5,000 rows.",
        "",
        "| round trip | method | writers | nodes s | relationships s | run s | retries |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for point in result["points"]:
        rtt = f"{point['round_trip_ms']:g} ms"
        rows = [("bulk360 bolt (rounds)", w, point["bulk360"][w]) for w in point["bulk360"]]
        rows += [
            (f"bulk360 bolt, batches of {size:,}", max(workers), r)
            for size, r in point["batch_sizes"].items()
        ]
        rows += [("bulk360 writer, file order", w, r) for w, r in point["file_order"].items()]
        rows += [("Spark connector", w, r) for w, r in point["connector"].items()]
        for name, w, r in rows:
            lines.append(
                f"| {rtt} | {name} | {w} | {r['nodes_seconds']:.1f} "
                f"| {r['relationships_seconds']:.1f} | {r['seconds']:.1f} | {r['retries']} |"
            )
        recipe_run = point["recipe"]
        capped = "" if recipe_run["finished"] else f" (capped: {recipe_run['elements']:,} written)"
        lines.append(f"| {rtt} | {RECIPE} | 1 | | | {recipe_run['seconds']:.1f}{capped} | 0 |")
    lines += ["", "| round trip | ratio | value |", "|---:|---|---:|"]
    for point in result["points"]:
        for name, value in point["ratios"].items():
            lines.append(f"| {point['round_trip_ms']:g} ms | {name} | {value:.2f} |")
    lines += ["", f"Writers compared: {', '.join(str(w) for w in workers)}."]
    (output / "distance.md").write_text("\n".join(lines) + "\n")
    _plot(result, output / "distance.png")


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = result["points"]
    fig, axes = plt.subplots(1, len(points), figsize=(6 * len(points), 4), squeeze=False)
    for ax, point in zip(axes[0], points, strict=True):
        names, values, colours = [], [], []
        for w, r in point["bulk360"].items():
            names.append(f"bulk360\n{w} writer(s)")
            values.append(point["relationships"] / r["relationships_seconds"])
            colours.append("tab:blue")
        for w, r in point["file_order"].items():
            names.append(f"file order\n{w} writers")
            values.append(point["relationships"] / r["relationships_seconds"])
            colours.append("tab:gray")
        for w, r in point["connector"].items():
            names.append(f"connector\n{w} writer(s)")
            values.append(point["relationships"] / r["relationships_seconds"])
            colours.append("tab:orange")
        bars = ax.bar(names, values, color=colours)
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize=8)
        ax.set_title(f"relationships written per second, {point['round_trip_ms']:g} ms round trip")
        ax.set_ylabel("relationships / s")
        ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(
    scale: Annotated[float, typer.Option(help="Scale of the generated data (1 ≈ 1M rows).")] = 1,
    workers: Annotated[str, typer.Option(help="Writers compared, comma-separated.")] = "1,4,8",
    round_trips: Annotated[str, typer.Option(help="Round trips in ms, comma-separated.")] = "0,20",
    batch_sizes: Annotated[
        str, typer.Option(help="Other batch sizes tried at the largest round trip.")
    ] = "1000,20000",
    cap_seconds: Annotated[float, typer.Option(help="Time cap of the Python recipe.")] = 120,
    connector: Annotated[
        bool, typer.Option(help="Measure the Spark connector too (starts Spark four times).")
    ] = True,
    keep: Annotated[
        bool,
        typer.Option(help="Keep the points of other round trips already in distance.json."),
    ] = False,
    output: Annotated[Path, typer.Option()] = ROOT / "benchmarks" / "results",
) -> None:
    os.environ.update(BENCH_ENV)
    settings = load_settings()
    if not os.access(settings.neo4j_admin, os.X_OK):
        run_services("up")
    run_services("postgres", "start")
    create_database(settings, settings.etl_db_name)
    generate(settings, scale, "bench_")
    chosen = [int(w) for w in workers.split(",") if w.strip()]
    bench = Bench(settings, max(chosen), cap_seconds)
    run_services("neo4j", "stop")
    bench.admin()
    folder = Path(bench.last["summary"]["import_dir"])
    bench.last["strings"] = bench.strings(folder)
    run_services("neo4j", "start")
    result: dict[str, Any] = {
        "machine": machine(),
        "scale": scale,
        "workers": chosen,
        "nodes": sum(bench.last["summary"]["nodes"].values()),
        "relationships": sum(bench.last["summary"]["relationships"].values()),
        "points": [],
    }
    earlier = output / "distance.json"
    if keep and earlier.exists():
        trips_now = {float(r) for r in round_trips.split(",") if r.strip()}
        result["points"] = [
            _int_keys(p)
            for p in json.loads(earlier.read_text())["points"]
            if p["round_trip_ms"] not in trips_now
        ]
    trips = [float(r) for r in round_trips.split(",") if r.strip()]
    sizes = [int(b) for b in batch_sizes.split(",") if b.strip()]
    for rtt in trips:
        point = measure_distance(bench, rtt, chosen, sizes if rtt == max(trips) else [], connector)
        point["relationships"] = result["relationships"]
        point["ratios"] = ratios(point, chosen)
        result["points"].append(point)
        result["points"].sort(key=lambda p: p["round_trip_ms"])
        report(result, output)
    run_services("neo4j", "stop")
    print(f"wrote {output / 'distance.md'}")


if __name__ == "__main__":
    app = typer.Typer(pretty_exceptions_show_locals=False, add_completion=False)
    app.command()(main)
    app()
