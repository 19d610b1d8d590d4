"""A run's totals, declared once: the ledger adds them up (:mod:`bulk360.ledger`) and the run's
summary reports them (:mod:`bulk360.summary`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

__all__ = ["RunTotals"]


@dataclass(kw_only=True)
class RunTotals:
    """What a run read and wrote, in all."""

    nodes: dict[str, int] = field(default_factory=dict)
    """Nodes written per label."""
    relationships: dict[str, int] = field(default_factory=dict)
    """Relationships written per type."""
    rows_read: int = 0
    rows_rejected: int = 0
    rows_orphaned: int = 0
    bytes_written: int = 0

    def take_totals(self, other: RunTotals) -> None:
        """The totals of ``other`` (a run's ledger) as this one's."""
        for total in dataclasses.fields(RunTotals):
            setattr(self, total.name, getattr(other, total.name))
