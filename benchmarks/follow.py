"""Freshness: the same change applied by ``bulk360 follow --once``, by ``--mode sync`` and by a
full Bolt upsert, side by side at each scale; a fixed change set by ``follow --once`` at every
scale (its cost should follow the change, not the data); and at the first scale a steady writer
while ``bulk360 follow`` runs, with the lag of every window.

    python -m benchmarks.follow --scales 1,5      # `make bench` runs it after the engines

Writes ``follow.json`` and ``follow.md`` next to the main report; see benchmarks/README.md.
Everything runs in the benchmark's world (control database ``bulk360_bench``, the ``bench_*``
sources, the Neo4j on port 7688).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

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


def sql(settings: Settings, database: str, *statements: str) -> int:
    """Run ``statements`` in ``bench_<database>``; the rows they changed."""
    conninfo = {**settings.control_conninfo(), "dbname": "bench_" + database}
    changed = 0
    with psycopg.connect(**conninfo, autocommit=True) as conn:  # type: ignore[arg-type]
        for statement in statements:
            changed += max(conn.execute(statement).rowcount, 0)  # type: ignore[arg-type]
    return changed


def follow_once() -> dict[str, Any]:
    measured = bulk360("follow", "--once")
    done = _DONE.search(measured.stdout)
    assert done is not None, measured.stdout[-2000:]
    return {
        "seconds": measured.seconds,
        "changes": int(done.group(1).replace(",", "")),
        "session_seconds": float(done.group(4)),
        "peak_rss_bytes": measured.peak_rss_bytes,
    }


def steady_writer(settings: Settings, rows_per_second: int, seconds: float) -> dict[str, Any]:
    """``bulk360 follow`` while a writer updates ``rows_per_second`` play events for
    ``seconds``, in ten transactions a second; then the lag of its windows."""
    env = {**os.environ}
    follower = subprocess.Popen(
        [sys.executable, "-m", "bulk360", "follow", "--max-lag", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    time.sleep(5)  # the follower's start: plan, state, connections
    written = 0
    per_transaction = rows_per_second // 10
    conninfo = {**settings.control_conninfo(), "dbname": "bench_streaming_db"}
    started = time.monotonic()
    with psycopg.connect(**conninfo, autocommit=True) as conn:  # type: ignore[arg-type]
        first = 1
        tick = started
        while time.monotonic() - started < seconds:
            conn.execute(
                "UPDATE play_events SET position_seconds = coalesce(position_seconds, 0) + 1"
                " WHERE event_id BETWEEN %s AND %s",
                [first, first + per_transaction - 1],
            )
            written += per_transaction
            first = (first + per_transaction) % 800_000 + 1
            tick += 0.1
            time.sleep(max(0.0, tick - time.monotonic()))
    rate = written / (time.monotonic() - started)
    time.sleep(5)  # the last windows
    follower.send_signal(signal.SIGTERM)
    stdout, stderr = follower.communicate(timeout=300)
    assert follower.returncode == 0, stdout[-2000:] + stderr[-2000:]
    done, p95 = _DONE.search(stdout), _P95.search(stdout)
    assert done is not None and p95 is not None, stdout[-2000:]
    lags = [float(m) for m in re.findall(r"lag ([\d.]+) s\n", stdout)]
    return {
        "rows_per_second": round(rate),
        "seconds": seconds,
        "rows_written": written,
        "changes_applied": int(done.group(1).replace(",", "")),
        "windows": int(done.group(3).replace(",", "")),
        "lag_p95_seconds": float(p95.group(1)),
        "progress_lags": lags,
    }


def measure_scale(settings: Settings, scale: float, workers: int) -> dict[str, Any]:
    generate(settings, scale, "bench_")
    bulk360("follow", "stop", "--drop")
    services("neo4j", "stop")
    built = bulk360("run", "--mode", "admin", "--overwrite", "--json", "--workers", str(workers))
    services("neo4j", "start")
    rows = json.loads(built.stdout)["rows_read"]
    # Following attaches to the graph admin mode built: slots, then a sync in their snapshots.
    attached = bulk360("follow", "--once", "--workers", str(workers))
    point: dict[str, Any] = {"scale": scale, "rows": rows, "attach_seconds": attached.seconds}
    # 1% of the rows changed; follow applies them, then sync and a full upsert do the same.
    change_sources(settings, "bench_")
    point["follow"] = follow_once()
    synced = bulk360("run", "--mode", "sync", "--json", "--workers", str(workers))
    point["sync_seconds"] = synced.seconds
    upsert = bulk360("run", "--mode", "bolt", "--json", "--workers", str(workers))
    point["upsert_seconds"] = upsert.seconds
    # The fixed change set.
    point["fixed_rows"] = sum(sql(settings, db, *s) for db, s in FIXED_CHANGES.items())
    point["fixed"] = follow_once()
    print(
        f"  scale {scale}: follow --once {point['follow']['seconds']:.1f}s "
        f"({point['follow']['changes']:,} changes), sync {synced.seconds:.1f}s, "
        f"bolt upsert {upsert.seconds:.1f}s; fixed change set {point['fixed']['seconds']:.1f}s"
    )
    return point


def report(result: dict[str, Any], output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    (output / "follow.json").write_text(json.dumps(result, indent=2))
    m = result["machine"]
    lines = [
        "# bulk360 follow — freshness at the size of the change",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_bytes'] / 2**30:.0f} GiB RAM, "
        f"{m['date']}. Whole CLI processes, one after the other on the same data.",
        "",
        "| scale | source rows | 1% change: follow --once s | changes | sync s | full bolt "
        "upsert s | upsert ÷ follow | sync ÷ follow | fixed change set s (rows) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in result["scales"]:
        f = p["follow"]
        lines.append(
            f"| {p['scale']} | {p['rows']:,} | {f['seconds']:.1f} | {f['changes']:,} "
            f"| {p['sync_seconds']:.1f} | {p['upsert_seconds']:.1f} "
            f"| {p['upsert_seconds'] / f['seconds']:.1f} | {p['sync_seconds'] / f['seconds']:.1f} "
            f"| {p['fixed']['seconds']:.1f} ({p['fixed_rows']:,}) |"
        )
    scales = result["scales"]
    if len(scales) > 1:
        ratio = scales[-1]["fixed"]["seconds"] / scales[0]["fixed"]["seconds"]
        lines += [
            "",
            f"Fixed change set, scale {scales[-1]['scale']} ÷ scale {scales[0]['scale']}: "
            f"{ratio:.2f} (target ≤ 1.5).",
        ]
    steady = result.get("steady")
    if steady:
        trend = steady["progress_lags"]
        lines += [
            "",
            f"Steady writer at scale {scales[0]['scale']}: {steady['rows_per_second']:,} "
            f"changed rows/s for {steady['seconds']:.0f} s ({steady['rows_written']:,} rows, "
            f"{steady['changes_applied']:,} applied in {steady['windows']:,} windows): lag p95 "
            f"{steady['lag_p95_seconds']:.2f} s (target < 2 s); lag at each progress line "
            f"(every 10 s): {', '.join(f'{v:.1f}' for v in trend) or '-'} s.",
        ]
    (output / "follow.md").write_text("\n".join(lines) + "\n")


def main(
    scales: Annotated[str, typer.Option(help="Scales, comma-separated.")] = "1,5",
    workers: Annotated[int, typer.Option(min=1)] = 4,
    writer_rows: Annotated[int, typer.Option(help="The steady writer's rows/s.")] = 2000,
    writer_seconds: Annotated[float, typer.Option(help="How long it writes.")] = 60,
    output: Annotated[Path, typer.Option()] = ROOT / "benchmarks" / "results",
) -> None:
    os.environ.update(BENCH_ENV)
    settings = load_settings()
    services("postgres", "start")
    create_database(settings, settings.etl_db_name)
    result: dict[str, Any] = {"machine": machine(), "scales": []}
    for number, scale in enumerate(float(s) for s in scales.split(",") if s.strip()):
        result["scales"].append(measure_scale(settings, scale, workers))
        if number == 0 and writer_seconds > 0:
            result["steady"] = steady_writer(settings, writer_rows, writer_seconds)
            print(f"  steady writer: lag p95 {result['steady']['lag_p95_seconds']:.2f}s")
        report(result, output)
    bulk360("follow", "stop", "--drop")  # the sources keep no WAL for the benchmark
    services("neo4j", "stop")
    print(f"wrote {output / 'follow.md'}")


if __name__ == "__main__":
    app = typer.Typer(pretty_exceptions_show_locals=False, add_completion=False)
    app.command()(main)
    app()
