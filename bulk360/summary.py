"""What a run hands back to its caller (:class:`RunSummary`), as the CLI prints it at the end."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulk360.modes import LOADERS
from bulk360.totals import RunTotals

if TYPE_CHECKING:
    from bulk360.ledger import Ledger
    from bulk360.load import LoadResult

__all__ = ["RunSummary"]


@dataclass
class RunSummary(RunTotals):
    """The outcome of a run, as printed at its end (``--json``: :meth:`as_dict`): its totals
    (:class:`~bulk360.totals.RunTotals`) and what else it did."""

    run_id: int
    mode: str
    status: str = "running"
    import_dir: Path | None = None
    step_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    """The whole run, from the call to its return."""
    load: LoadResult | None = None
    """What the load wrote (None: csv mode, or the run stopped before its load)."""
    diffed_against: int | None = None
    resumed_from: int | None = None
    values_changed: list[str] = field(default_factory=list)
    """One line per column whose values Neo4j could not hold as they are, and what happened."""
    schema_changes: list[str] = field(default_factory=list)
    """Schema changes let through by --accept-schema-changes."""
    ledger_balanced: bool | None = None
    notes: list[str] = field(default_factory=list)

    def take(self, ledger: Ledger) -> None:
        """The totals of the run's ledger."""
        self.take_totals(ledger)
        self.ledger_balanced = ledger.balanced

    def run_row(self) -> dict[str, Any]:
        """The run row's totals (``etl_run_logs``)."""
        return {
            "nodes_written": sum(self.nodes.values()),
            "relationships_written": sum(self.relationships.values()),
            "rows_read": self.rows_read,
            "rows_rejected": self.rows_rejected,
            "rows_orphaned": self.rows_orphaned,
            "bytes_written": self.bytes_written,
            "ledger_balanced": self.ledger_balanced,
            "accepted_schema_changes": self.schema_changes or None,
            "transaction_retries": self.retries,
            "step_seconds": dict(self.step_seconds),
        }

    @property
    def retries(self) -> int | None:
        """Bolt transactions the driver ran again (None: the run wrote no Bolt)."""
        if self.load is None or not LOADERS[self.mode].over_bolt:
            return None
        return self.load.retries

    @property
    def seconds_outside_steps(self) -> float:
        """What the run spent outside its steps (opening and closing, the run row's writes)."""
        return round(max(0.0, self.seconds - sum(self.step_seconds.values())), 3)

    @property
    def changes(self) -> dict[str, dict[str, int]]:
        """Sync: per label and mapping, the rows inserted, updated and deleted."""
        return {k: dict(v) for k, v in (self.load.changes if self.load else {}).items()}

    def as_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready values (paths as text)."""
        values = dataclasses.asdict(self) | {"seconds_outside_steps": self.seconds_outside_steps}
        return json.loads(json.dumps(values, default=str))  # type: ignore[no-any-return]
