"""What a caller chooses for a run (:class:`RunOptions`) and what the run tells it while it works
(:class:`Reporter`); what it hands back is :class:`bulk360.summary.RunSummary`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

from bulk360.errors import ConfigError
from bulk360.modes import LOADERS

if TYPE_CHECKING:
    from bulk360.plan.tables import TablePlan
    from bulk360.settings import Settings

__all__ = [
    "ENGINES",
    "MODES",
    "PACKAGE_FORMATS",
    "Engine",
    "Mode",
    "PackageFormat",
    "Reporter",
    "RunOptions",
    "SilentReporter",
    "WriteOptions",
]

Mode = Literal["admin", "bolt", "csv", "sync"]
"""Where a run's package goes: neo4j-admin (admin), Bolt (bolt, sync), nowhere (csv)."""
MODES: tuple[Mode, ...] = get_args(Mode)
Engine = Literal["local", "spark"]
"""What reads, joins and writes the files (see :mod:`bulk360.engines`)."""
ENGINES: tuple[Engine, ...] = get_args(Engine)
PackageFormat = Literal["csv", "parquet"]
"""What an import package's files are (see :mod:`bulk360.package.parquet`)."""
PACKAGE_FORMATS: tuple[PackageFormat, ...] = get_args(PackageFormat)

_DEFAULT_MASTER = "local[*]"


@dataclass(frozen=True)
class WriteOptions:
    """What a run and a follower both take: how many work at once, and how they write over
    Bolt."""

    workers: int = 4
    """Parallel COPY readers (and join threads, and Bolt writers)."""
    batch_size: int = 5_000
    """Rows per UNWIND transaction (bolt and sync modes, follow)."""
    retry_seconds: float = 30.0
    """How long the driver retries a failing transaction before the run fails (Bolt)."""


@dataclass(frozen=True)
class RunOptions(WriteOptions):
    """What the caller chose for one run; an impossible combination is a one-line
    :class:`~bulk360.errors.ConfigError` when the options are made."""

    mode: Mode = "admin"
    """``admin`` (CSV files, then neo4j-admin), ``bolt`` (the files written over Bolt into a
    running server), ``sync`` (only what changed, over Bolt) or ``csv`` (stop after the files)."""
    overwrite: bool = False
    """Replace an existing Neo4j database (admin mode)."""
    tolerance: int = 0
    """Bad entries neo4j-admin may report beyond the rows bulk360 already rejected (admin)."""
    keep_runs: int = 2
    """Complete run folders of this control database kept in the import folder."""
    clear: bool = False
    """Delete every node and relationship of the target database first (bolt mode)."""
    resume: bool = False
    """Resume a failed run: its own mode and options, its published folder if it has one."""
    resume_run: int | None = None
    """The run to resume (None: the newest failed run)."""
    accept_schema_changes: bool = False
    """Let a run through although a mapped table changed since the last succeeded run."""
    strict_values: bool = False
    """Fail, before anything is published, if any value cannot be stored as it is."""
    full: bool = False
    """Sync mode: clear the graph and write everything (as ``--mode bolt --clear``)."""
    engine: Engine = "local"
    """What reads, joins and writes the files: ``local`` or ``spark``."""
    spark_master: str = _DEFAULT_MASTER
    """The Spark engine's master URL."""
    spark_conf: tuple[str, ...] = ()
    """The Spark engine's extra settings, ``key=value`` each."""
    package_format: PackageFormat = "csv"
    """The import package's files: ``csv`` or ``parquet`` (admin and csv modes)."""

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise a one-line :class:`ConfigError` for an impossible combination."""

        if self.mode not in MODES:
            raise ConfigError(f"--mode must be one of {', '.join(MODES)}, not '{self.mode}'")
        if self.package_format not in PACKAGE_FORMATS:
            raise ConfigError(
                f"--package-format must be one of {', '.join(PACKAGE_FORMATS)}, "
                f"not '{self.package_format}'"
            )
        if self.engine not in ENGINES:
            raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}, not '{self.engine}'")
        for name, least in (("workers", 1), ("batch_size", 1), ("tolerance", 0), ("keep_runs", 0)):
            if getattr(self, name) < least:
                raise ConfigError(f"--{_flag(name)} must be at least {least}")
        if self.retry_seconds < 0:
            raise ConfigError("--retry-seconds must not be negative")
        if self.engine != "spark" and (self.spark_conf or self.spark_master != _DEFAULT_MASTER):
            raise ConfigError("--spark-master and --spark-conf are for --engine spark")
        if self.resume_run is not None and not self.resume:
            raise ConfigError("a run to resume is given without --resume")
        if not self.resume:  # a resumed run's own mode decides (see resuming)
            self._check_mode_options()

    def _check_mode_options(self) -> None:
        """An option of another mode, given a value of its own, is a mistake."""
        defaults = RunOptions.__dataclass_fields__
        for name in dict.fromkeys(o for r in LOADERS.values() for o in r.options):
            if name in LOADERS[self.mode].options or getattr(self, name) == defaults[name].default:
                continue
            modes = [m for m, r in LOADERS.items() if name in r.options]
            raise ConfigError(f"--{_flag(name)} is for --mode {' or '.join(modes)}")

    def recorded(self, settings: Settings) -> dict[str, Any]:
        """The options as the run row keeps them (what a resumed run repeats)."""
        values: dict[str, Any] = {
            "workers": self.workers,
            "overwrite": self.overwrite,
            "tolerance": self.tolerance,
            "strict_values": self.strict_values,
            "neo4j_database": settings.neo4j_database,
            "engine": self.engine,
        }
        if self.engine == "spark":
            # The settings' names only: a value may hold a secret.
            values |= {
                "spark_master": self.spark_master,
                "spark_conf": [item.partition("=")[0] for item in self.spark_conf],
            }
        return values | {name: getattr(self, name) for name in LOADERS[self.mode].options}

    def resuming(self, mode: str, recorded: dict[str, Any]) -> RunOptions:
        """The options of a failed run's resumption: its mode and recorded options; workers,
        batch size and retries may be new."""
        resumed = dataclasses.replace(
            self,
            mode=mode,  # type: ignore[arg-type]
            overwrite=bool(recorded.get("overwrite", self.overwrite)),
            tolerance=int(recorded.get("tolerance", self.tolerance)),
            clear=bool(recorded.get("clear", False)),
            strict_values=bool(recorded.get("strict_values", self.strict_values)),
            full=bool(recorded.get("full", False)),
        )
        resumed._check_mode_options()
        return resumed


def _flag(name: str) -> str:
    return name.replace("_", "-")


class Reporter(Protocol):
    """What a run tells its caller while it works (the CLI draws it with rich)."""

    def step(self, number: int, total: int, title: str) -> None:
        """A step begins."""

    def note(self, text: str) -> None:
        """Something the user should know about the step under way."""

    def bytes_progress(self, tables: list[TablePlan]) -> Any:
        """A context manager yielding ``advance(table, nbytes)`` for the readers."""

    def rows_progress(self, totals: dict[str, int | None]) -> Any:
        """A context manager yielding ``advance(task, rows)`` for the Bolt writers: one task
        per entry of ``totals`` (its rows, None when not known)."""


class SilentReporter:
    """A reporter that says nothing (library use and tests)."""

    def step(self, number: int, total: int, title: str) -> None:
        return None

    def note(self, text: str) -> None:
        return None

    @contextmanager
    def bytes_progress(self, tables: list[TablePlan]) -> Iterator[Callable[[TablePlan, int], None]]:
        yield lambda table, nbytes: None

    @contextmanager
    def rows_progress(self, totals: dict[str, int | None]) -> Iterator[Callable[[str, int], None]]:
        yield lambda name, rows: None
