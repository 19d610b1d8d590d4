"""How the CLI shows a run: numbered steps, progress bars, and the final summary table."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from bulk360.summary import RunSummary

if TYPE_CHECKING:
    from bulk360.plan.tables import TablePlan

__all__ = ["ConsoleReporter", "summary_footer", "summary_table"]


class ConsoleReporter:
    """Prints ``STEP n/N ...`` lines and a byte counter per table while reading."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def step(self, number: int, total: int, title: str) -> None:
        self._console.print(f"[bold]STEP {number}/{total}[/] {title}", highlight=False)

    def note(self, text: str) -> None:
        self._console.print(f"  {escape(text)}", highlight=False, soft_wrap=True)

    def _progress(self, *counters: ProgressColumn) -> Progress:
        """Bars named by table, label or mapping; drawn only on a terminal."""
        return Progress(
            TextColumn("  {task.description:<34}"),
            BarColumn(),
            *counters,
            TimeElapsedColumn(),
            console=self._console,
            transient=not self._console.is_terminal,
            disable=not self._console.is_terminal,
        )

    @contextmanager
    def bytes_progress(self, tables: list[TablePlan]) -> Iterator[Callable[[TablePlan, int], None]]:
        progress = self._progress(DownloadColumn(), TransferSpeedColumn())
        tasks = {t.name: progress.add_task(t.name, total=None) for t in tables}
        with progress:
            yield lambda table, nbytes: progress.advance(tasks[table.name], nbytes)

    @contextmanager
    def rows_progress(self, totals: dict[str, int | None]) -> Iterator[Callable[[str, int], None]]:
        progress = self._progress(MofNCompleteColumn())
        tasks = {name: progress.add_task(name, total=total) for name, total in totals.items()}
        lock = threading.Lock()

        def advance(name: str, rows: int) -> None:
            # The loaders name their bars up front; one they did not name still gets its bar
            # rather than failing a load that succeeded.
            with lock:
                if name not in tasks:
                    tasks[name] = progress.add_task(name, total=None)
            progress.advance(tasks[name], rows)

        with progress:
            yield advance


def summary_table(summary: RunSummary) -> Table:
    """Nodes per label and relationships per type, with the run's totals."""
    resumed = f", resumed run {summary.resumed_from}" if summary.resumed_from else ""
    table = Table(title=f"run {summary.run_id} ({summary.mode}{resumed}): {summary.status}")
    table.add_column("kind")
    table.add_column("name")
    table.add_column("count", justify="right")
    for label, count in sorted(summary.nodes.items()):
        table.add_row("nodes", label, f"{count:,}")
    for kind, count in sorted(summary.relationships.items()):
        table.add_row("relationships", kind, f"{count:,}")
    table.add_section()
    table.add_row("rows read", "", f"{summary.rows_read:,}")
    table.add_row("rows rejected", "", f"{summary.rows_rejected:,}")
    table.add_row("rows orphaned", "", f"{summary.rows_orphaned:,}")
    if summary.retries is not None:
        table.add_row("Bolt retries", "", f"{summary.retries:,}")
    ledger = {True: "balanced", False: "DOES NOT BALANCE", None: "not checked"}
    table.add_row("ledger", "", ledger[summary.ledger_balanced])
    return table


def summary_footer(summary: RunSummary) -> list[str]:
    """What follows the table: each step's time and the import folder (lines of their own, so
    that a log keeps each whole whatever the table's width)."""
    seconds = " ".join(f"{k} {v:.1f}s" for k, v in summary.step_seconds.items())
    return [f"steps: {seconds}", f"import folder: {summary.import_dir}"]
