"""bulk360: several PostgreSQL databases into one Neo4j graph, driven by a control database.

The Python API::

    import bulk360

    settings = bulk360.load_settings()            # the environment and .env, as the CLI reads them
    summary = bulk360.run(settings, bulk360.RunOptions(mode="bolt", clear=True))
    print(summary.status, summary.nodes, summary.relationships)

:func:`run` raises a :class:`Bulk360Error` (one line, an ``exit_code``) after logging the run
as failed; :class:`RunOptions` refuses impossible combinations when it is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bulk360.errors import (
    Bulk360Error,
    ConfigError,
    IntegrityError,
    SourceError,
    TargetError,
    TargetRunning,
    ValidationFailed,
)
from bulk360.options import Reporter, RunOptions, SilentReporter
from bulk360.settings import Settings, load_settings
from bulk360.summary import RunSummary
from bulk360.version import __version__

if TYPE_CHECKING:
    from bulk360.pipeline import run

__all__ = [
    "Bulk360Error",
    "ConfigError",
    "IntegrityError",
    "Reporter",
    "RunOptions",
    "RunSummary",
    "Settings",
    "SilentReporter",
    "SourceError",
    "TargetError",
    "TargetRunning",
    "ValidationFailed",
    "__version__",
    "load_settings",
    "run",
]


def __getattr__(name: str) -> Any:
    # The pipeline imports Polars, the Neo4j driver and psycopg: only when a run is asked for.
    if name == "run":
        from bulk360.pipeline import run

        return run
    raise AttributeError(f"module 'bulk360' has no attribute {name!r}")
