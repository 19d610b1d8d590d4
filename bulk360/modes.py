"""The registry of modes: where each mode's loader is and which run options are its own.

It sits below :mod:`bulk360.options` (which checks each mode's options against it) and
:mod:`bulk360.load` (whose loaders it names, imported only when their mode runs). To add a mode:
a loader module in :mod:`bulk360.load` and an entry in :data:`LOADERS`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LOADERS", "Registered"]


@dataclass(frozen=True)
class Registered:
    """A mode: where its loader is, and which of the run's options belong to it."""

    loader: str
    """``module:Class`` of the loader (imported when the mode runs)."""
    options: tuple[str, ...] = ()
    """The :class:`~bulk360.options.RunOptions` fields only this mode takes; the run row records
    them, and ``--resume`` repeats them."""


LOADERS: dict[str, Registered] = {
    "admin": Registered("bulk360.load.admin:AdminLoader", ("overwrite", "tolerance")),
    "bolt": Registered("bulk360.load.bolt:BoltLoader", ("batch_size", "clear")),
    "csv": Registered("bulk360.load.csv:CsvLoader"),
    "sync": Registered("bulk360.load.sync:SyncLoader", ("batch_size", "full")),
}
"""Every mode, by the name ``--mode`` takes."""
