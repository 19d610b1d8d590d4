"""bulk360: several PostgreSQL databases into one Neo4j graph, driven by a control database."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from bulk360.errors import (
    Bulk360Error,
    ConfigError,
    IntegrityError,
    SourceError,
    TargetError,
    TargetRunning,
    ValidationFailed,
)
from bulk360.settings import Settings, load_settings

try:
    __version__ = version("bulk360")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = [
    "Bulk360Error",
    "ConfigError",
    "IntegrityError",
    "Settings",
    "SourceError",
    "TargetError",
    "TargetRunning",
    "ValidationFailed",
    "__version__",
    "load_settings",
]
