"""Freshness at the size of the change: ``bulk360 follow`` measured as a user runs it.

    python -m benchmarks.follow --scales 1,5,20      # `make bench` runs it after the engines

At each scale (the Customer 360 shapes, 1 ≈ 1.1 million rows): the first attach to a graph admin
mode built (time and peak RSS: the slots, a sync in their snapshots, the state filled), an empty
``follow --once`` (the fixed costs: process start, plan, store open, a marker), and a fixed change
set of about 1,300 rows by ``follow --once``, three times (its median time and peak RSS should
not grow with the data). Up
to ``--compare-up-to`` (default 5): 1% of the rows changed, applied by ``follow --once``, then the
same change by ``--mode sync`` and by a full Bolt upsert. At ``--steady-scale`` (default 5): a
steady writer while ``bulk360 follow`` runs (default 10,000 changed rows/s for 300 s), with the
lag of every window and at each progress line. Then, at the first scale, the soak: a writer for
``--soak-seconds`` (default 600) with the follower killed by SIGKILL every ``--kill-every``
seconds (120) and started again; at the end the graph is compared with a fresh build (a
fingerprint of every node and relationship), the state's checkpoint log must show no transaction
checkpointed twice, and the follower's RSS is reported per session.

Writes ``follow.json`` and ``follow.md`` next to the main report; see benchmarks/README.md.
Everything runs in the benchmark's world (control database ``bulk360_bench``, the ``bench_*``
sources, the Neo4j on port 7688).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import psutil
import psycopg
import typer

from benchmarks.bench import (
    BENCH_ENV,
    ROOT,
    bulk360,
    change_sources,
    create_database,
    generate,
    machine,
    services,
)
from bulk360.settings import Settings, load_settings

# A fixed change set, the same number of rows at every scale: 1,000 play events and 200
# accounts updated, 100 tickets closed, 100 tag links deleted (keys below 1,000, which every
# scale has).
FIXED_CHANGES = {
    "streaming_db": (
        "UPDATE play_events SET position_seconds = coalesce(position_seconds, 0) + 7"
        " WHERE event_id BETWEEN 1 AND 1000",
    ),
    "profiles_db": (
        "UPDATE accounts SET full_name = full_name || '.' WHERE account_id BETWEEN 1 AND 200",
    ),
    "support_db": (
        "UPDATE tickets SET status = 'closed' WHERE ticket_id BETWEEN 1 AND 100",
        "DELETE FROM ticket_tag_links WHERE ticket_id BETWEEN 101 AND 150",
    ),
}
_DONE = re.compile(r"([\d,]+) changes in ([\d,]+) transactions, ([\d,]+) windows in ([\d.]+) s")
_P95 = re.compile(r"lag p95 ([\d.]+) s")
_PROGRESS = re.compile(
    r"applied \(([\d,]+) windows, ([\d,]+) changes/s\), (lag ([\d.]+) s|caught up)"
)


def sql(settings: Settings, database: str, *statements: str) -> int:
    """Run ``statements`` in ``bench_<database>``; the rows they changed."""
    conninfo = {**settings.control_conninfo(), "dbname": "bench_" + database}
    changed = 0
    with psycopg.connect(**conninfo, autocommit=True) as conn:  # type: ignore[arg-type]
        for statement in statements:
            changed += max(conn.execute(statement).rowcount, 0)  # type: ignore[arg-type]
    return changed


def change_again(settings: Settings, turn: int) -> None:
    """:data:`benchmarks.bench.SYNC_CHANGES` again, on other rows (``% 500`` residues moved by
    ``10 * turn``, inserted keys in a range of their own): another 1% change of the same kind."""
    from benchmarks.bench import SYNC_CHANGES

    shift = 10 * turn
    residues = {
        "IN (1, 2, 3)": f"IN ({1 + shift}, {2 + shift}, {3 + shift})",
        "= 4": f"= {4 + shift}",
        "= 5": f"= {5 + shift}",
        "1000000000": str(1_000_000_000 + turn * 2_000_000),
        " 100000000": f" {100_000_000 + turn * 1_000_000}",
    }
    for database, statements in SYNC_CHANGES.items():
        moved = []
        for statement in statements:
            for old, new in residues.items():
                statement = statement.replace(old, new)
            moved.append(statement)
        sql(settings, database, *moved)


def follow_once(*args: str) -> dict[str, Any]:
    measured = bulk360("follow", "--once", *args)
    done = _DONE.search(measured.stdout)
    assert done is not None, measured.stdout[-2000:]
    stages = re.search(r"^time: (.*)$", measured.stdout, re.MULTILINE)
    return {
        "seconds": round(measured.seconds, 3),
        "stages": {
            name: float(seconds)
            for name, seconds in re.findall(r"(\w+) ([\d.]+) s", stages.group(1) if stages else "")
        },
        "changes": int(done.group(1).replace(",", "")),
        "windows": int(done.group(3).replace(",", "")),
        "session_seconds": float(done.group(4)),
        "peak_rss_bytes": measured.peak_rss_bytes,
    }


_TOUCH = (
    "UPDATE play_events SET position_seconds = coalesce(position_seconds, 0) + 1"
    " WHERE event_id BETWEEN %s AND %s"
)


class Writer(threading.Thread):
    """Changes play events at ``rows_per_second``, ten transactions a second, until stopped:
    updates of a column no join reads, and (``mixed``) inserts, deletes and moved foreign keys,
    so that nodes and relationships change too."""

    def __init__(self, settings: Settings, rows_per_second: int, mixed: bool) -> None:
        super().__init__(daemon=True)
        self.conninfo = {**settings.control_conninfo(), "dbname": "bench_streaming_db"}
        self.per_transaction = max(1, rows_per_second // 10)
        self.mixed = mixed
        self.stopped = threading.Event()
        self.written = 0
        """Rows the writer's statements changed (PostgreSQL's counts)."""
        self.seconds = 0.0

    def run(self) -> None:
        started = time.monotonic()
        with psycopg.connect(**self.conninfo, autocommit=True) as conn:  # type: ignore[arg-type]
            # The generated play events (the 1% change's copies sit above a billion).
            (top,) = conn.execute(  # type: ignore[misc]
                "SELECT max(event_id) FROM play_events WHERE event_id < 1000000000"
            ).fetchone()
            first, tick, fresh, turn = 1, started, 2_000_000_000, 0
            size = self.per_transaction
            while not self.stopped.is_set():
                turn += 1
                statements: list[tuple[str, list[int]]] = []
                if self.mixed and turn % 4 == 0:
                    part = max(1, size // 4)
                    statements = [
                        (
                            "INSERT INTO play_events (event_id, account_id, media_id, action,"
                            " event_timestamp) SELECT %s + g, 1 + g %% 1000, 1 + g %% 100,"
                            " 'play', now() FROM generate_series(1, %s) g",
                            [fresh, part],
                        ),
                        (
                            "DELETE FROM play_events WHERE event_id BETWEEN %s AND %s",
                            [fresh - 10 * part, fresh - 10 * part + part - 1],
                        ),
                        (
                            "UPDATE play_events SET media_id = 1 + (media_id %% 100)"
                            " WHERE event_id BETWEEN %s AND %s",
                            [first, first + part - 1],
                        ),
                        (_TOUCH, [first + part, first + size - 1 - part]),
                    ]
                    fresh += part
                else:
                    statements = [(_TOUCH, [first, first + size - 1])]
                with conn.transaction():
                    for statement, values in statements:
                        found = conn.execute(statement, values)  # type: ignore[call-overload]
                        self.written += max(found.rowcount, 0)
                first = (first + size) % max(1, top - size) + 1
                tick += 0.1
                time.sleep(max(0.0, tick - time.monotonic()))
        self.seconds = time.monotonic() - started


def _follower(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bulk360", "follow", "--max-lag", "0.5", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ},
    )


class _Rss(threading.Thread):
    """The RSS of one process, once a second."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.samples: list[int] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(1.0):
            try:
                rss = self.process.memory_info().rss
            except psutil.Error:
                return
            if rss:  # a process killed a moment ago reads 0
                self.samples.append(rss)


def steady_writer(settings: Settings, rows_per_second: int, seconds: float) -> dict[str, Any]:
    """``bulk360 follow`` while a writer changes ``rows_per_second`` play events for
    ``seconds``; then the lag of its windows and at each progress line."""
    follower = _follower()
    time.sleep(5)  # the follower's start: plan, state, connections
    rss = _Rss(follower.pid)
    rss.start()
    writer = Writer(settings, rows_per_second, mixed=False)
    writer.start()
    time.sleep(seconds)
    writer.stopped.set()
    writer.join()
    time.sleep(10)  # the last windows
    follower.send_signal(signal.SIGTERM)
    stdout, _ = follower.communicate(timeout=600)
    rss.stopped.set()
    assert follower.returncode == 0, stdout[-3000:]
    done, p95 = _DONE.search(stdout), _P95.search(stdout)
    assert done is not None and p95 is not None, stdout[-3000:]
    lags = [float(m.group(4)) if m.group(4) else 0.0 for m in _PROGRESS.finditer(stdout)]
    return {
        "rows_per_second": round(writer.written / writer.seconds),
        "seconds": round(writer.seconds, 1),
        "rows_written": writer.written,
        "changes_applied": int(done.group(1).replace(",", "")),
        "windows": int(done.group(3).replace(",", "")),
        "lag_p95_seconds": float(p95.group(1)),
        "progress_lags": lags,
        "rss_bytes_first_last": [rss.samples[0], rss.samples[-1]] if rss.samples else [],
        "rss_mb_per_minute": [round(v / 2**20) for v in rss.samples[::60]],
    }


def fingerprint(settings: Settings) -> dict[str, Any]:
    """Every node (labels and typed properties) and relationship (type, its two nodes, its
    properties) of the benchmark's graph, as counts and order-free sums of hashes per label
    and type: equal graphs have equal fingerprints."""
    from neo4j import GraphDatabase

    def digest(value: Any) -> int:
        return int.from_bytes(hashlib.blake2b(repr(value).encode(), digest_size=8).digest())

    typed = (
        "[k IN keys({e}) | [k, valueType({e}[k]), CASE WHEN valueType({e}[k]) STARTS WITH 'LIST'"
        " THEN [v IN {e}[k] | toString(v)] ELSE toString({e}[k]) END]]"
    )
    nodes: Counter[str] = Counter()
    sums: Counter[str] = Counter()
    of: dict[str, int] = {}
    auth = (settings.neo4j_username, settings.neo4j_password)
    with GraphDatabase.driver(settings.neo4j_uri, auth=auth) as driver, driver.session() as s:
        for record in s.run(
            f"MATCH (n) RETURN elementId(n) AS id, labels(n) AS l, {typed.format(e='n')} AS p"
        ):
            value = digest((sorted(record["l"]), sorted(map(tuple, record["p"]))))
            of[record["id"]] = value
            label = ":".join(sorted(record["l"]))
            nodes[label] += 1
            sums[label] = (sums[label] + value) % 2**64
        for record in s.run(
            f"MATCH (a)-[r]->(b) RETURN type(r) AS t, elementId(a) AS a, elementId(b) AS b,"
            f" {typed.format(e='r')} AS p"
        ):
            value = digest((of[record["a"]], of[record["b"]], sorted(map(tuple, record["p"]))))
            kind = "-" + record["t"] + "->"
            nodes[kind] += 1
            sums[kind] = (sums[kind] + value) % 2**64
    return {name: [nodes[name], str(sums[name])] for name in sorted(nodes)}


def _checkpoints(settings: Settings) -> list[tuple[str, str, str, int]]:
    (path,) = settings.import_dir.glob("follow/*/state.sqlite")
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT source, from_lsn, to_lsn, partial FROM checkpoints ORDER BY number"
        ).fetchall()


def _lsn(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def soak(
    settings: Settings, seconds: float, kill_every: float, rows_per_second: int
) -> dict[str, Any]:
    """A writer for ``seconds``, the follower killed with SIGKILL every ``kill_every`` seconds
    and started again; then the graph against a fresh build, the checkpoint log, the RSS."""
    first_checkpoint = len(_checkpoints(settings))
    writer = Writer(settings, rows_per_second, mixed=True)
    writer.start()
    started = time.monotonic()
    sessions = []
    while time.monotonic() - started < seconds:
        follower = _follower()
        rss = _Rss(follower.pid)
        rss.start()
        time.sleep(min(kill_every, max(1.0, seconds - (time.monotonic() - started))))
        follower.kill()
        follower.communicate(timeout=60)
        rss.stopped.set()
        sessions.append(rss.samples)
    writer.stopped.set()
    writer.join()
    caught = follow_once()  # the last one: everything written, applied
    log = _checkpoints(settings)[first_checkpoint:]
    twice = 0
    last: dict[str, int] = {}
    for source, start, end, partial in log:
        if source in last and _lsn(start) < last[source]:
            twice += 1  # a checkpoint from before one that was already made: applied twice
        if not partial:
            last[source] = _lsn(end)
    followed = fingerprint(settings)
    bulk360("run", "--mode", "bolt", "--clear")
    fresh = fingerprint(settings)
    differing = sorted(k for k in followed.keys() | fresh.keys() if followed.get(k) != fresh.get(k))
    return {
        "seconds": round(writer.seconds, 1),
        "rows_written": writer.written,
        "kills": len(sessions),
        "checkpoints": len(log),
        "checkpoints_applied_twice": twice,
        "graph_equals_fresh_build": not differing,
        "differing": differing,
        "last_once": caught,
        "rss_mb_per_session": [
            [round(s[0] / 2**20), round(max(s) / 2**20), round(s[-1] / 2**20)]
            for s in sessions
            if s
        ],
    }


def measure_scale(settings: Settings, scale: float, workers: int, compare: bool) -> dict[str, Any]:
    generate(settings, scale, "bench_")
    bulk360("follow", "stop", "--drop")
    services("neo4j", "stop")
    built = bulk360("run", "--mode", "admin", "--overwrite", "--json", "--workers", str(workers))
    services("neo4j", "start")
    rows = json.loads(built.stdout)["rows_read"]
    # Following attaches to the graph admin mode built: slots, a sync in their snapshots, the state.
    attached = bulk360("follow", "--once", "--workers", str(workers))
    point: dict[str, Any] = {
        "scale": scale,
        "rows": rows,
        "attach_seconds": round(attached.seconds, 1),
        "attach_peak_rss_bytes": attached.peak_rss_bytes,
    }
    point["empty"] = follow_once()  # nothing to apply: the fixed costs
    if compare:
        # 1% of the rows changed; follow applies them, then sync and a full upsert do the same.
        change_sources(settings, "bench_")
        point["follow"] = follow_once("--workers", str(workers))
        synced = bulk360("run", "--mode", "sync", "--json", "--workers", str(workers))
        point["sync_seconds"] = round(synced.seconds, 1)
        upsert = bulk360("run", "--mode", "bolt", "--json", "--workers", str(workers))
        point["upsert_seconds"] = round(upsert.seconds, 1)
        # The same kind of change again, Neo4j's page cache and the state warm as the upsert
        # found them: the first one came right after the admin build.
        change_again(settings, 1)
        point["follow_warm"] = follow_once("--workers", str(workers))
    # The fixed change set three times (the link rows it deletes only the first time): the
    # first after the attach meets Neo4j's query planner and page cache cold, so the median is
    # what compares across scales; every run is kept.
    runs = []
    for _ in range(3):
        point["fixed_rows"] = sum(sql(settings, db, *s) for db, s in FIXED_CHANGES.items())
        runs.append(follow_once())
    point["fixed_runs"] = runs
    point["fixed"] = sorted(runs, key=lambda r: r["seconds"])[1]
    print(
        f"  scale {scale}: attach {attached.seconds:.1f}s, empty --once "
        f"{point['empty']['seconds']:.2f}s, fixed change set {point['fixed']['seconds']:.2f}s "
        f"({point['fixed']['peak_rss_bytes'] / 2**20:.0f} MB)"
        + (
            f"; 1% change: follow {point['follow']['seconds']:.1f}s "
            f"({point['follow']['changes']:,} changes), sync {point['sync_seconds']:.1f}s, "
            f"bolt upsert {point['upsert_seconds']:.1f}s"
            if compare
            else ""
        ),
        flush=True,
    )
    return point


def _ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else 0.0


def report(result: dict[str, Any], output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    scales = result["scales"]
    first = scales[0]
    ratios: dict[str, float] = {}
    for p in scales[1:]:
        ratios[f"fixed_seconds_{p['scale']:g}_over_{first['scale']:g}"] = _ratio(
            p["fixed"]["seconds"], first["fixed"]["seconds"]
        )
        ratios[f"fixed_rss_{p['scale']:g}_over_{first['scale']:g}"] = _ratio(
            p["fixed"]["peak_rss_bytes"], first["fixed"]["peak_rss_bytes"]
        )
    for p in scales:
        if "follow" in p:
            ratios[f"upsert_over_follow_{p['scale']:g}"] = _ratio(
                p["upsert_seconds"], p["follow"]["seconds"]
            )
        if "follow_warm" in p:
            ratios[f"upsert_over_follow_warm_{p['scale']:g}"] = _ratio(
                p["upsert_seconds"], p["follow_warm"]["seconds"]
            )
    result["ratios"] = ratios
    (output / "follow.json").write_text(json.dumps(result, indent=2))
    m = result["machine"]
    lines = [
        "# bulk360 follow — freshness at the size of the change",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_bytes'] / 2**30:.0f} GiB RAM, "
        f"{m['date']}. Whole CLI processes, one after the other on the same data; Neo4j and "
        "PostgreSQL on the same 2 cores.",
        "",
        "| scale | source rows | first attach s (peak RSS) | empty `--once` s | fixed change set s "
        "(rows; first run) | its peak RSS | 1% change: follow s (changes) | again, warm | sync s "
        "| full bolt upsert s | upsert ÷ follow (warm) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in scales:
        f, warm = p.get("follow"), p.get("follow_warm")
        cold = p.get("fixed_runs", [p["fixed"]])[0]
        lines.append(
            f"| {p['scale']:g} | {p['rows']:,} | {p['attach_seconds']:.1f} "
            f"({p['attach_peak_rss_bytes'] / 2**30:.2f} GiB) | {p['empty']['seconds']:.2f} "
            f"| {p['fixed']['seconds']:.2f} ({p['fixed_rows']:,}; {cold['seconds']:.2f}) "
            f"| {p['fixed']['peak_rss_bytes'] / 2**20:.0f} MB "
            + (
                f"| {f['seconds']:.1f} ({f['changes']:,}) "
                f"| {warm['seconds'] if warm else 0:.1f} | {p['sync_seconds']:.1f} "
                f"| {p['upsert_seconds']:.1f} | {p['upsert_seconds'] / f['seconds']:.1f} "
                f"({p['upsert_seconds'] / warm['seconds'] if warm else 0:.1f}) |"
                if f
                else "| | | | | |"
            )
        )
    if ratios:
        lines += [
            "",
            "Ratios (one run): " + ", ".join(f"`{k}` {v}" for k, v in ratios.items()) + ".",
        ]
    steady = result.get("steady")
    if steady:
        trend = steady["progress_lags"]
        lines += [
            "",
            f"Steady writer at scale {result['steady_scale']:g}: {steady['rows_per_second']:,} "
            f"changed rows/s for {steady['seconds']:.0f} s ({steady['rows_written']:,} rows, "
            f"{steady['changes_applied']:,} applied in {steady['windows']:,} windows): lag p95 "
            f"{steady['lag_p95_seconds']:.2f} s (target ≤ 2 s); lag at each progress line "
            f"(every 10 s): {', '.join(f'{v:.1f}' for v in trend) or '-'} s"
            + (f" (measured {steady['measured']})." if "measured" in steady else "."),
        ]
    soaked = result.get("soak")
    if soaked:
        lines += [
            "",
            f"Soak at scale {first['scale']:g}: a writer for {soaked['seconds']:.0f} s "
            f"({soaked['rows_written']:,} rows: updates, inserts, deletes, moved foreign keys), "
            f"the follower killed with SIGKILL {soaked['kills']} times and started again; "
            f"{soaked['checkpoints']:,} checkpoints, {soaked['checkpoints_applied_twice']} of them "
            f"applied twice; graph equal to a fresh build: {soaked['graph_equals_fresh_build']}; "
            f"RSS per session (MB: first, peak, last): {soaked['rss_mb_per_session']}"
            + (f" (measured {soaked['measured']})." if "measured" in soaked else "."),
        ]
    (output / "follow.md").write_text("\n".join(lines) + "\n")


def main(
    scales: Annotated[str, typer.Option(help="Scales, comma-separated.")] = "1,5,20",
    workers: Annotated[int, typer.Option(min=1)] = 4,
    compare_up_to: Annotated[
        float, typer.Option(help="Scales compared with sync and a full upsert.")
    ] = 5,
    steady_scale: Annotated[float, typer.Option(help="Scale of the steady writer (0: none).")] = 5,
    writer_rows: Annotated[int, typer.Option(help="The steady writer's rows/s.")] = 10_000,
    writer_seconds: Annotated[float, typer.Option(help="How long it writes.")] = 300,
    soak_seconds: Annotated[float, typer.Option(help="The soak's length (0: none).")] = 600,
    kill_every: Annotated[float, typer.Option(help="Seconds between the soak's kills.")] = 120,
    soak_rows: Annotated[int, typer.Option(help="The soak writer's rows/s.")] = 2_000,
    output: Annotated[Path, typer.Option()] = ROOT / "benchmarks" / "results",
) -> None:
    os.environ.update(BENCH_ENV)
    settings = load_settings()
    if not (Path(BENCH_ENV["NEO4J_HOME"]) / "bin" / "neo4j-admin").exists():
        services("up")  # assembles the benchmark's Neo4j home on first use
    services("postgres", "start")
    create_database(settings, settings.etl_db_name)
    result: dict[str, Any] = {"machine": machine(), "scales": [], "steady_scale": steady_scale}
    # A part not measured this time (--writer-seconds 0, --soak-seconds 0) keeps the figures of
    # the run that measured it, with that run's date.
    earlier_file = output / "follow.json"
    earlier = json.loads(earlier_file.read_text()) if earlier_file.exists() else {}
    for part, measured in (("steady", writer_seconds > 0), ("soak", soak_seconds > 0)):
        if not measured and part in earlier:
            result[part] = {
                **earlier[part],
                "measured": earlier[part].get("measured", earlier["machine"]["date"]),
            }
            if part == "steady":
                result["steady_scale"] = earlier.get("steady_scale", steady_scale)
    chosen = [float(s) for s in scales.split(",") if s.strip()]
    for scale in chosen:
        result["scales"].append(measure_scale(settings, scale, workers, scale <= compare_up_to))
        if scale == steady_scale and writer_seconds > 0:
            result["steady"] = steady_writer(settings, writer_rows, writer_seconds)
            print(
                f"  steady writer: lag p95 {result['steady']['lag_p95_seconds']:.2f}s", flush=True
            )
        report(result, output)
    if soak_seconds > 0:
        measure_scale(settings, chosen[0], workers, False)
        result["soak"] = soak(settings, soak_seconds, kill_every, soak_rows)
        print(f"  soak: {json.dumps(result['soak'])[:400]}", flush=True)
        report(result, output)
    bulk360("follow", "stop", "--drop")  # the sources keep no WAL for the benchmark
    services("neo4j", "stop")
    print(f"wrote {output / 'follow.md'}")


if __name__ == "__main__":
    app = typer.Typer(pretty_exceptions_show_locals=False, add_completion=False)
    app.command()(main)
    app()
