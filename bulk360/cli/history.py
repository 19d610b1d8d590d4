"""``bulk360 runs`` and ``runs show``: run history and each run's ledger."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from bulk360.cli.root import app, console, state
from bulk360.modes import counts_changes


def _runs_table(title: str) -> Table:
    table = Table(title=title)
    for column in (
        "run",
        "mode",
        "status",
        "resumed",
        "started",
        "seconds",
        "nodes",
        "relationships",
        "ledger",
        "error",
    ):
        table.add_column(column)
    return table


runs_app = typer.Typer(
    name="runs", help="Run history from the audit tables.", invoke_without_command=True
)
app.add_typer(runs_app, name="runs")


@runs_app.callback()
def runs_command(
    ctx: typer.Context, limit: Annotated[int, typer.Option(help="How many runs.")] = 20
) -> None:
    """List the latest runs."""
    if ctx.invoked_subcommand is not None:
        return
    from bulk360.control.history import list_runs

    table = _runs_table("runs")
    for run_row in list_runs(state(ctx).settings(), limit):
        table.add_row(*_run_cells(run_row))
    console.print(table)


@runs_app.command("show")
def runs_show_command(ctx: typer.Context, run_id: int) -> None:
    """Show one run with a row per table and relationship mapping."""
    from bulk360.control.history import show_run

    run_row, tables = show_run(state(ctx).settings(), run_id)
    summary = _runs_table(f"run {run_id}")
    summary.add_row(*_run_cells(run_row))
    console.print(summary)
    if run_row.get("diffed_against"):
        console.print(f"compared with run {run_row['diffed_against']}, which built the graph")
    if run_row.get("transaction_retries") is not None:
        console.print(f"Bolt transactions retried: {run_row['transaction_retries']:,}")
    if run_row.get("accepted_schema_changes"):
        for text in run_row["accepted_schema_changes"]:
            console.print(f"accepted schema change: {escape(text)}", highlight=False)
    if run_row.get("traceback"):
        console.print("traceback of the unexpected error that stopped it:", highlight=False)
        console.print(escape(run_row["traceback"].rstrip()), highlight=False, soft_wrap=True)
    detail = Table(
        title=f"run {run_id}: the ledger per table, label and relationship mapping",
        caption="read + fan-out = written + rejected + duplicate + orphaned",
    )
    for column in (
        "kind",
        "source.table / type",
        "label",
        "status",
        "read",
        "written",
        "rejected",
        "duplicate",
        "orphaned",
        "fan-out",
        "ledger",
        *(("inserted", "updated", "deleted") if counts_changes(run_row["mode"]) else ()),
        "bytes",
        "seconds",
    ):
        detail.add_column(column, justify="right" if column in _NUMBERS else "left")
    changed: list[str] = []
    for row in tables:
        what = (
            row["table_name"] and f"{row['source_name']}.{row['table_name']}"
        ) or f"{row['relationship_type']} #{row['mapping_id']}"
        ledger = {True: "balanced", False: "UNBALANCED", None: ""}[row.get("ledger_balanced")]
        detail.add_row(
            row["object_kind"],
            what,
            row["label"] or "",
            row["status"],
            f"{row['rows_processed']:,}",
            f"{row['rows_written']:,}",
            f"{row['rows_rejected']:,}",
            f"{row.get('rows_duplicate') or 0:,}",
            f"{row['rows_orphaned']:,}",
            f"{row.get('rows_fanout') or 0:,}",
            ledger,
            *(
                [f"{row.get(f'rows_{k}') or 0:,}" for k in ("inserted", "updated", "deleted")]
                if counts_changes(run_row["mode"])
                else []
            ),
            f"{row['bytes']:,}",
            f"{row['seconds']:.2f}",
        )
        for column, counts in (row["details"] or {}).get("values", {}).items():
            for kind, count in counts.items():
                changed.append(f"{count:,} values of {what}.{column}: {kind.replace('_', ' ')}")
    console.print(detail)
    for line in changed:
        console.print(f"values: {line}", highlight=False)


_NUMBERS = {
    *("read", "written", "rejected", "duplicate", "orphaned", "fan-out"),
    *("inserted", "updated", "deleted", "bytes", "seconds"),
}


def _run_cells(row: dict[str, Any]) -> list[str]:
    seconds = ""
    if row["finished_at"]:
        seconds = f"{(row['finished_at'] - row['started_at']).total_seconds():.1f}"
    ledger = {True: "balanced", False: "UNBALANCED", None: ""}[row.get("ledger_balanced")]
    return [
        str(row["run_id"]),
        row["mode"],
        row["status"],
        f"run {row['resumed_from']}" if row.get("resumed_from") else "",
        f"{row['started_at']:%Y-%m-%d %H:%M:%S}",
        seconds,
        f"{row['nodes_written'] or 0:,}",
        f"{row['relationships_written'] or 0:,}",
        ledger,
        (row["error_text"] or "")[:200],
    ]
