"""``bulk360 follow``, ``follow status`` and ``follow stop``: the sources' change streams applied
to the graph as they happen."""

from __future__ import annotations

import signal
import statistics
import threading
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from bulk360.cli.root import app, console, state

follow_app = typer.Typer(
    help="Follow the sources' change streams (logical decoding) into the graph.",
    invoke_without_command=True,
)
app.add_typer(follow_app, name="follow")

# Past this, `follow status` warns: a stopped follower makes its sources keep WAL.
_RETAINED_WARNING = 1 << 30


@follow_app.callback()
def follow_command(
    ctx: typer.Context,
    once: Annotated[
        bool,
        typer.Option(help="Apply everything committed up to now, then stop."),
    ] = False,
    max_lag: Annotated[
        float, typer.Option(min=0, help="Seconds a window may gather changes before it is applied.")
    ] = 1.0,
    max_rows: Annotated[
        int,
        typer.Option(
            min=1,
            help="Changed rows a window holds at most (a larger transaction is applied in parts).",
        ),
    ] = 20_000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Bolt writers.")] = 4,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per UNWIND transaction.")] = 5_000,
    retry_seconds: Annotated[
        float,
        typer.Option(
            min=0,
            help="How long a failing write is retried, and a lost source or control database "
            "waited for, before the follower stops.",
        ),
    ] = 30.0,
    clear: Annotated[
        bool,
        typer.Option(
            help="Build the graph and follow's state anew from the sources: the first start "
            "(instead of a sync), or a state that is missing, damaged or of other control rows."
        ),
    ] = False,
) -> None:
    """Follow every active source: apply each committed transaction to the graph, joins included.

    Runs until Ctrl-C or SIGTERM (it stops after the window under way, exit 0); --once applies
    everything up to now and stops (for cron)."""
    if ctx.invoked_subcommand is not None:
        return
    from bulk360.follow import FollowOptions, follow

    stop = threading.Event()

    def stopping(signum: int, frame: object) -> None:
        from bulk360.errors import Interrupted

        if stop.is_set():  # a second signal: now
            raise Interrupted(signal.Signals(signum).name)
        stop.set()
        console.print("stopping after the window under way (again: at once)")

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stopping)
    options = FollowOptions(
        once=once,
        max_lag=max_lag,
        max_rows=max_rows,
        workers=workers,
        batch_size=batch_size,
        retry_seconds=retry_seconds,
        clear=clear,
    )
    from bulk360.cli.reporting import ConsoleReporter

    summary = follow(state(ctx).settings(), options, ConsoleReporter(console), stop.is_set)
    table = Table(title=f"follow session {summary.run_id}: succeeded ({summary.started})")
    for column in ("label / mapping", "inserted", "updated", "deleted"):
        table.add_column(column, justify="left" if column.startswith("label") else "right")
    for name, counts in sorted(summary.applied.counts().items()):
        table.add_row(name, *(f"{counts[k]:,}" for k in ("inserted", "updated", "deleted")))
    console.print(table)
    lags = summary.lags
    p95 = statistics.quantiles(lags, n=20)[-1] if len(lags) >= 2 else (lags[0] if lags else 0.0)
    console.print(
        f"{summary.changes:,} changes in {summary.transactions:,} transactions, "
        f"{summary.windows:,} windows in {summary.seconds:.1f} s; lag p95 {p95:.2f} s",
        highlight=False,
    )
    if summary.stages:
        console.print(
            "time: " + ", ".join(f"{k} {v:.2f} s" for k, v in summary.stages.items()),
            highlight=False,
        )
    for source, lsn in sorted(summary.positions.items()):
        console.print(f"source '{escape(source)}' applied up to {lsn}", highlight=False)


@follow_app.command("status")
def status_command(ctx: typer.Context) -> None:
    """Per followed source: the slot, its positions, lag, the WAL it keeps, the follower."""
    from bulk360.follow import follow_status

    found = follow_status(state(ctx).settings())
    if not found:
        console.print("no source is followed (bulk360 follow starts following)")
        return
    table = Table(title="followed sources")
    columns = (
        "source", "slot", "follower", "confirmed", "current", "lag bytes", "lag s",
        "WAL kept", "last commit applied", "slot WAL",
    )  # fmt: skip
    for column in columns:
        table.add_column(column)
    warnings = []
    for item in found:
        slot = item.slot
        table.add_row(
            slot.source,
            slot.slot,
            "running" if item.running else "stopped",
            slot.confirmed_lsn or "-",
            slot.current_lsn,
            _number(slot.lag_bytes),
            f"{item.lag_seconds:.1f}" if item.lag_seconds is not None else "-",
            _number(slot.retained_bytes),
            f"{item.applied_commit_at:%Y-%m-%d %H:%M:%S}" if item.applied_commit_at else "-",
            slot.wal_status or "no slot",
        )
        retained = slot.retained_bytes or 0
        if retained > _RETAINED_WARNING and not item.running:
            warnings.append(
                f"source '{slot.source}' keeps {retained / 2**30:.1f} GiB of WAL for "
                "a stopped follower: start it, or bulk360 follow stop --drop (see "
                "max_slot_wal_keep_size in the README)"
            )
    console.print(table)
    for line in warnings:
        console.print(f"[yellow]warning:[/] {escape(line)}", highlight=False)


def _number(value: Any) -> str:
    return f"{value:,}" if value is not None else "-"


@follow_app.command("stop")
def stop_command(
    ctx: typer.Context,
    drop: Annotated[
        bool,
        typer.Option(help="Also drop the slots and publications, and forget follow's state."),
    ] = False,
) -> None:
    """Stop the running follower (after its window); with --drop, stop following altogether."""
    from bulk360.follow import stop_following

    for line in stop_following(state(ctx).settings(), drop):
        console.print(escape(line), highlight=False)
