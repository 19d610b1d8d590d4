"""``make bench-lines``: admin and bolt mode on both Neo4j lines, from CSV and Parquet packages,
in one run on the same data.

Each line has the benchmark's own server (``.local/neo4j-bench-<version>``, Bolt on 7688; one
runs at a time), assembled by ``scripts/services`` for its release and JDK; the source databases
and the control database are the main benchmark's (:mod:`benchmarks.bench`). One repetition runs,
line after line, with Neo4j stopped:

  bulk360 admin mode from a CSV package, then from a Parquet package (``--package-format``)
  psql \\copy of the same SELECTs to files, then neo4j-admin without bulk360:
    the import limit of each format: ``--id-type=actual`` of that run's own files, started as
    bulk360 starts it (one JVM, the class-data archive)
    straightforward: its launcher, default string ids, of the same graph's files

and ratios per line and format: ``admin_vs_import_limit`` (admin total ÷ (psql \\copy +
neo4j-admin alone on the files of that format)) and ``admin_vs_straightforward``. Then, with the
server running, bolt mode (``--clear``) and ``LOAD CSV ... IN TRANSACTIONS`` of the same files,
per line (``--bolt-repeat`` times): ``bolt_vs_load_csv``. Medians of the repetitions.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from benchmarks.bench import (
    BENCH_ENV,
    ROOT,
    STRINGS,
    Bench,
    bulk360,
    create_database,
    generate,
    machine,
    print_written,
    services,
)
from benchmarks.measure import measure
from benchmarks.peers import id_ranges, psql_copy, string_ids_import
from bulk360.load.admin.neo4j_admin import ImportRequest, Neo4jAdmin
from bulk360.settings import NEO4J_DEFAULT, NEO4J_LTS, Settings, load_settings

LINES = (NEO4J_DEFAULT, NEO4J_LTS)
FORMATS = ("csv", "parquet")
TARGET_IMPORT_LIMIT = 1.05
"""``admin_vs_import_limit`` on the default line (issue #37)."""


def line_env(version: str) -> dict[str, str]:
    home = ROOT / ".local" / f"neo4j-bench-{version}"
    return {**BENCH_ENV, "NEO4J_VERSION": version, "NEO4J_HOME": str(home)}


def on_line(version: str) -> Settings:
    """The process environment and settings of ``version``'s benchmark server."""
    os.environ.update(line_env(version))
    return load_settings()


class LineBench:
    """One line's measurements (a :class:`Bench` for what the main benchmark measures alike)."""

    def __init__(self, version: str, workers: int) -> None:
        self.version = version
        self.settings = on_line(version)
        self.workers = workers
        self.bench = Bench(self.settings, workers, cap_seconds=0)
        self.folders: dict[str, Path] = {}

    def admin(self, package_format: str) -> None:
        measured = bulk360(
            "run",
            "--mode",
            "admin",
            "--overwrite",
            "--json",
            "--workers",
            str(self.workers),
            "--package-format",
            package_format,
        )
        summary = json.loads(measured.stdout)
        elements = sum(summary["nodes"].values()) + sum(summary["relationships"].values())
        name = f"bulk360 admin ({package_format})"
        self.bench.record(name).add(measured.seconds, elements, measured.peak_rss_bytes)
        for step, seconds in summary["step_seconds"].items():
            self.bench.steps.setdefault(f"{package_format}: {step}", []).append(seconds)
        self.folders[package_format] = Path(summary["import_dir"])
        self.bench.last = {"summary": summary, "elements": elements, "rows": summary["rows_read"]}
        manifest = json.loads((self.folders[package_format] / "manifest.json").read_text())
        self.bench.last["manifest"] = manifest

    def limits(self) -> None:
        """psql \\copy to files, then neo4j-admin alone on each format's files, and the
        straightforward import of the CSV run's graph with string ids."""
        settings, elements = self.settings, self.bench.last["elements"]
        csv_manifest = json.loads((self.folders["csv"] / "manifest.json").read_text())
        strings, converted = self.bench.strings(self.folders["csv"])
        self.bench.last["strings"] = (strings, converted)
        scratch = Path(tempfile.mkdtemp(dir=settings.import_dir))
        try:
            with measure() as copied:
                psql_copy(
                    settings,
                    self.bench.plan,
                    scratch / "copy",
                    self.workers,
                    os.environ,
                    id_ranges(csv_manifest),
                )
            self.bench.record("psql \\copy to files").add(copied.seconds, self.bench.last["rows"])
            for package_format, folder in self.folders.items():
                manifest = json.loads((folder / "manifest.json").read_text())
                entries = [*manifest["nodes"], *manifest["relationships"]]
                request = ImportRequest(
                    nodes=[(n["label"], folder / n["file"]) for n in manifest["nodes"]],
                    relationships=[
                        (r["type"], folder / r["file"]) for r in manifest["relationships"]
                    ],
                    multiline=[folder / e["file"] for e in entries if e["multiline"]],
                    report_file=scratch / "neo4j-admin.report",
                    log_file=scratch / "neo4j-admin.log",
                    tolerance=0,
                    input_type=package_format,
                )
                with measure() as alone:
                    Neo4jAdmin(settings).import_into(settings.neo4j_database, request)
                self.bench.record(f"neo4j-admin alone ({package_format})").add(
                    alone.seconds, elements
                )
                self.bench.record(f"import limit ({package_format})").add(
                    copied.seconds + alone.seconds, elements
                )
            with measure() as string_ids:
                string_ids_import(settings, converted, strings)
            self.bench.record("straightforward").add(copied.seconds + string_ids.seconds, elements)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def ratios(self) -> dict[str, float]:
        def median(name: str) -> float:
            return statistics.median(self.bench.runs[name].seconds)

        found = {}
        for package_format in FORMATS:
            admin = median(f"bulk360 admin ({package_format})")
            found[f"admin_vs_import_limit ({package_format})"] = round(
                admin / median(f"import limit ({package_format})"), 3
            )
            found[f"admin_vs_straightforward ({package_format})"] = round(
                admin / median("straightforward"), 3
            )
        if "LOAD CSV in transactions" in self.bench.runs:
            bolt = self.bench.runs["bulk360 bolt (writing)"].summary()["per_second"]
            peer = self.bench.runs["LOAD CSV in transactions"].summary()["per_second"]
            found["bolt_vs_load_csv"] = round(bolt / peer, 3)
        return found


def report(lines: list[LineBench], meta: dict[str, Any], output: Path) -> list[Path]:
    result = {
        **meta,
        "lines": {
            line.version: {
                "methods": {name: runs.summary() for name, runs in line.bench.runs.items()},
                "admin_steps": {
                    k: round(statistics.median(v), 3) for k, v in line.bench.steps.items()
                },
                "ratios": line.ratios(),
            }
            for line in lines
        },
    }
    output.mkdir(parents=True, exist_ok=True)
    data = output / "lines.json"
    data.write_text(json.dumps(result, indent=2))
    md = [
        f"# bulk360 on both Neo4j lines — scale {meta['scale']}",
        "",
        f"{meta['rows']:,} source rows → {meta['elements']:,} nodes and relationships; median of "
        f"{meta['repeat']} interleaved repetitions (bolt: {meta['bolt_repeat']}), "
        f"{meta['workers']} workers.",
        f"Machine: {meta['machine']['cpu']}, {meta['machine']['cores']} cores, "
        f"{meta['machine']['ram_bytes'] / 2**30:.0f} GiB RAM, {meta['machine']['date']}.",
        "",
        "| line | method | median s | per second | runs (s) |",
        "|---|---|---:|---:|---|",
    ]
    for line in lines:
        for name, runs in line.bench.runs.items():
            s = runs.summary()
            md.append(
                f"| {line.version} | {name} | {s['median_seconds']:.2f} | {s['per_second']:,} | "
                + ", ".join(f"{x:.2f}" for x in s["seconds"])
                + " |"
            )
    md += ["", "| line | ratio | value | target | met |", "|---|---|---:|---|---|"]
    for line in lines:
        for name, value in line.ratios().items():
            target, met = "", ""
            if name.startswith("admin_vs_import_limit"):
                target = f"≤ {TARGET_IMPORT_LIMIT}" if line.version == NEO4J_DEFAULT else ""
                met = ("yes" if value <= TARGET_IMPORT_LIMIT else "**no**") if target else ""
            md.append(f"| {line.version} | `{name}` | {value:.3f} | {target} | {met} |")
    md += ["", "Admin mode per step (median s):", ""]
    for line in lines:
        steps = result["lines"][line.version]["admin_steps"]
        md.append(f"- {line.version}: " + ", ".join(f"{k} {v}" for k, v in steps.items()))
    (output / "lines.md").write_text("\n".join(md) + "\n")
    return [data, output / "lines.md"]


def main(
    scale: Annotated[float, typer.Option(help="Scale of the data (1 ≈ 1M rows).")] = 1,
    repeat: Annotated[int, typer.Option(min=1, help="Repetitions of the admin part.")] = 3,
    bolt_repeat: Annotated[int, typer.Option(min=0, help="Repetitions of bolt and LOAD CSV.")] = 1,
    workers: Annotated[int, typer.Option(min=1, help="COPY readers and Bolt writers.")] = 4,
    output: Annotated[Path, typer.Option(help="Folder of lines.json and lines.md.")] = ROOT
    / "benchmarks"
    / "results",
) -> None:
    """Both lines, both package formats, in one run; the report in ``output``."""
    settings = on_line(LINES[0])
    services("postgres", "start")
    create_database(settings, settings.etl_db_name)
    generate(settings, scale, "bench_")
    lines = []
    for version in LINES:
        on_line(version)
        services("neo4j", "start")  # assembles the line's home on first use
        services("neo4j", "stop")
        lines.append(LineBench(version, workers))
    print(f"bulk360 on {', '.join(LINES)}: scale {scale}, {repeat} repetitions")
    for number in range(1, repeat + 1):
        shutil.rmtree(settings.import_dir / STRINGS, ignore_errors=True)
        for line in lines:
            print(f"repetition {number}/{repeat}: {line.version}, Neo4j stopped")
            on_line(line.version)
            for package_format in FORMATS:
                line.admin(package_format)
            line.limits()
    for number in range(1, bolt_repeat + 1):
        for line in lines:
            print(f"bolt {number}/{bolt_repeat}: {line.version}, Neo4j running")
            on_line(line.version)
            services("neo4j", "start")
            try:
                line.bench.bolt()
                line.bench.load_csv()
            finally:
                services("neo4j", "stop")
    last = lines[0].bench.last
    meta = {
        "machine": machine(),
        "scale": scale,
        "rows": last["rows"],
        "elements": last["elements"],
        "repeat": repeat,
        "bolt_repeat": bolt_repeat,
        "workers": workers,
    }
    paths = report(lines, meta, output)
    print_written(paths)


if __name__ == "__main__":
    app = typer.Typer(pretty_exceptions_show_locals=False, add_completion=False)
    app.command()(main)
    app()
