"""The registry of modes: where each mode's loader is and which run options are its own.

It sits below :mod:`bulk360.options` (which checks each mode's options against it) and
:mod:`bulk360.load` (whose loaders it names, imported only when their mode runs). To add a mode:
a loader module in :mod:`bulk360.load` and an entry in :data:`LOADERS`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LOADERS", "Registered", "counts_changes"]


@dataclass(frozen=True)
class Registered:
    """A mode: where its loader is, and which of the run's options belong to it."""

    loader: str
    """``module:Class`` of the loader (imported when the mode runs)."""
    options: tuple[str, ...] = ()
    """The :class:`~bulk360.options.RunOptions` fields only this mode takes; the run row records
    them, and ``--resume`` repeats them."""
    over_bolt: bool = False
    """It writes over Bolt: empty arrays stay empty arrays (neo4j-admin stores no property),
    and the driver's transaction retries are counted."""
    counts_changes: bool = False
    """It writes only what changed: its ledger rows count what was inserted, updated and
    deleted."""


LOADERS: dict[str, Registered] = {
    "admin": Registered(
        "bulk360.load.admin:AdminLoader", ("overwrite", "tolerance", "package_format")
    ),
    "bolt": Registered("bulk360.load.bolt:BoltLoader", ("batch_size", "clear"), over_bolt=True),
    "csv": Registered("bulk360.load.csv:CsvLoader", ("package_format",)),
    "sync": Registered(
        "bulk360.load.sync:SyncLoader", ("batch_size", "full"), over_bolt=True, counts_changes=True
    ),
}
"""Every mode, by the name ``--mode`` takes."""


def counts_changes(mode: str) -> bool:
    """Whether a run of ``mode`` (a registered mode, or ``follow``) counts inserted, updated
    and deleted rows."""
    return mode == "follow" or (mode in LOADERS and LOADERS[mode].counts_changes)
