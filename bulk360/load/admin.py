"""Admin mode: ``neo4j-admin database import full`` into a staging store, then a swap.

The server must be stopped (the import writes store files directly). The import never touches
the target database: it goes into a staging database of the same ``NEO4J_HOME``, and only when
it succeeded (and its totals equal the manifest, which the caller checks) is the target
replaced, by renaming folders:

    <databases>/<db>        →  <databases>/.<db>.bulk360-replaced    (kept until the swap is done)
    <databases>/<staging>   →  <databases>/<db>
    (the same for <transactions>/)

A journal file beside them records a swap in progress; if the process dies in the middle, the
next admin run (or :meth:`AdminLoader.recover`) finishes a complete swap or restores the
replaced store. neo4j-admin runs in a process group of its own: its launcher starts a second
JVM, and an interrupted run stops both.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bulk360.errors import IntegrityError, TargetError, TargetRunning
from bulk360.settings import Settings
from bulk360.types import ARRAY_DELIMITER

__all__ = ["STORE_PER_CSV_BYTE", "AdminImport", "AdminLoader", "ImportRequest", "StoreFolders"]

_DONE = re.compile(
    r"Imported:\s+(?P<nodes>\d+) nodes\s+(?P<relationships>\d+) relationships\s+(?P<properties>\d+) properties"
)

STORE_PER_CSV_BYTE = 3.0
"""Bytes of store an import needs per byte of CSV, with a margin: the Customer 360 sample's
store is 2.5 times its files at scale 1 (158 MB of files, 394 MB of store), 2.3 at scale 0.05
and 2.9 at the sample's own size."""
_MARGIN = 512 << 20
"""Beyond the store: the transaction log Neo4j preallocates (256 MiB) and neo4j-admin's own
temporary files."""


@dataclass(frozen=True)
class AdminImport:
    """What neo4j-admin reported."""

    nodes: int
    relationships: int
    properties: int
    bad_entries: int
    report_file: Path
    log_file: Path


@dataclass(frozen=True)
class ImportRequest:
    """What neo4j-admin imports, and where its report and output go."""

    nodes: Sequence[tuple[str, Path]]
    """(label, file) pairs."""
    relationships: Sequence[tuple[str, Path]]
    """(type, file) pairs."""
    multiline: Sequence[Path]
    """Files whose text may hold line breaks."""
    report_file: Path
    log_file: Path
    tolerance: int
    """Bad entries neo4j-admin may report before the import fails."""


@dataclass(frozen=True)
class StoreFolders:
    """Where a Neo4j home keeps its databases' store files and transaction logs."""

    databases: Path
    transactions: Path

    @classmethod
    def of(cls, home: Path) -> StoreFolders:
        """Read from ``conf/neo4j.conf`` (``server.directories.*``), defaults otherwise."""
        settings: dict[str, str] = {}
        conf = home / "conf" / "neo4j.conf"
        if conf.is_file():
            for line in conf.read_text(errors="replace").splitlines():
                name, sep, value = line.partition("=")
                if sep and not name.lstrip().startswith("#"):
                    settings[name.strip()] = value.strip()

        def folder(name: str, default: Path) -> Path:
            value = settings.get(name)
            if not value:
                return default
            path = Path(value)
            return path if path.is_absolute() else home / path

        data = folder("server.directories.data", home / "data")
        return cls(
            databases=data / "databases",
            transactions=folder("server.directories.transaction.logs.root", data / "transactions"),
        )

    @property
    def parents(self) -> tuple[Path, Path]:
        return (self.databases, self.transactions)


class AdminLoader:
    """Runs the real ``neo4j-admin`` of ``settings.neo4j_home`` and swaps the result in."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._home = settings.neo4j_home
        self.database = settings.neo4j_database
        self.staging = f"{self.database}-bulk360-staging"
        self.folders = StoreFolders.of(self._home)
        self._journal = self.folders.databases / f".{self.database}.bulk360-swap.json"

    def _replaced(self, parent: Path) -> Path:
        return parent / f".{self.database}.bulk360-replaced"

    def server_pid(self) -> int | None:
        """The pid of a running Neo4j server of this home, from its pid file."""
        pid_file = self._home / "run" / "neo4j.pid"
        try:
            pid = int(pid_file.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def database_exists(self) -> bool:
        folder = self.folders.databases / self.database
        return folder.is_dir() and any(folder.iterdir())

    def preflight(self, overwrite: bool) -> list[str]:
        """Problems that would stop the import, found before anything is read or written."""
        problems = []
        if not os.access(self._settings.neo4j_admin, os.X_OK):
            problems.append(
                f"neo4j-admin not found at {self._settings.neo4j_admin}: set NEO4J_HOME "
                "to a Neo4j home, or use --mode bolt"
            )
        pid = self.server_pid()
        if pid is not None:
            problems.append(
                f"Neo4j is running (pid {pid}, home {self._home}): stop it first "
                "(scripts/services neo4j stop); admin mode imports into a stopped server"
            )
        elif self._journal.exists():
            self.recover()
        if self.database_exists() and not overwrite:
            problems.append(
                f"database '{self.database}' already exists in {self._home}; "
                "pass --overwrite to replace it"
            )
        return problems

    # ---- the import --------------------------------------------------------------------

    def check_space(self, files_bytes: int) -> int:
        """Refuse (one line) when the store's file system cannot hold the import; the need."""
        needed = int(files_bytes * STORE_PER_CSV_BYTE) + _MARGIN
        self.folders.databases.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.folders.databases).free
        if free < needed:
            raise TargetError(
                f"not enough disk space for the import: {self.folders.databases} has "
                f"{free / 2**20:,.0f} MiB free, the import needs about {needed / 2**20:,.0f} MiB "
                f"({files_bytes / 2**20:,.0f} MiB of files); nothing was changed"
            )
        return needed

    def stage(self, request: ImportRequest) -> AdminImport:
        """Import into the staging database; the target is not touched."""
        if self.server_pid() is not None:
            raise TargetRunning(f"Neo4j is running (home {self._home}): stop it first")
        self.discard_staging()
        try:
            return self.import_into(self.staging, request)
        except BaseException:
            self.discard_staging()
            raise

    def discard_staging(self) -> None:
        """Remove the staging store (a failed import's, or a leftover)."""
        for parent in self.folders.parents:
            shutil.rmtree(parent / self.staging, ignore_errors=True)

    def import_into(self, database: str, request: ImportRequest) -> AdminImport:
        """Run ``neo4j-admin database import full`` into ``database``; raise if it fails."""
        report_file, log_file, tolerance = request.report_file, request.log_file, request.tolerance
        command = [
            str(self._settings.neo4j_admin),
            "database",
            "import",
            "full",
            # The database first: --nodes and --relationships take several files each, and
            # a name after them would be read as one more file.
            database,
            "--verbose",
            "--overwrite-destination=true",
            f"--report-file={report_file}",
            f"--bad-tolerance={tolerance}",
            "--skip-duplicate-nodes=true",
            "--skip-bad-relationships=true",
            f"--array-delimiter=U+{ord(ARRAY_DELIMITER):04X}",
            # The v1 format, for all files: v2's per-file list fails on files over 4 MiB
            # without quotes in every chunk ("Weird input data"), and v1 cost nothing measurable.
            f"--multiline-fields={str(bool(request.multiline)).lower()}",
            *[f"--nodes={label}={path}" for label, path in request.nodes],
            *[f"--relationships={kind}={path}" for kind, path in request.relationships],
        ]
        with log_file.open("w") as log:
            returncode = _run_process_group(command, log)
        output = log_file.read_text(errors="replace")
        bad = _count_lines(report_file)
        if returncode != 0:
            reason = _last_error(output)
            raise TargetError(f"neo4j-admin import failed ({reason}); see {log_file}")
        match = _DONE.search(output)
        if match is None:
            raise TargetError(f"neo4j-admin did not report its totals; see {log_file}")
        if bad > tolerance:
            raise IntegrityError(
                f"neo4j-admin reported {bad} bad entries, more than the tolerance of {tolerance}; "
                f"see {report_file}"
            )
        return AdminImport(
            nodes=int(match["nodes"]),
            relationships=int(match["relationships"]),
            properties=int(match["properties"]),
            bad_entries=bad,
            report_file=report_file,
            log_file=log_file,
        )

    # ---- the swap ----------------------------------------------------------------------

    def swap(self) -> bool:
        """Replace the target by the staging store; returns whether a database was replaced.

        The replaced store is kept until both folders are in place; if a rename fails, it is
        restored and the staging store removed.
        """
        if self.server_pid() is not None:
            raise TargetRunning(f"Neo4j is running (home {self._home}): stop it first")
        replaced = self.database_exists()
        self._write_journal("swapping")
        try:
            for parent in self.folders.parents:
                if (parent / self.database).exists():
                    os.replace(parent / self.database, self._replaced(parent))
            for parent in self.folders.parents:
                os.replace(parent / self.staging, parent / self.database)
            self._write_journal("swapped")
        except OSError as exc:
            self._roll_back()
            raise TargetError(
                f"replacing database '{self.database}' with the import failed "
                f"({exc.strerror or exc}); the previous database was restored"
            ) from None
        self._finish_swap()
        return replaced

    def recover(self) -> str | None:
        """Finish or undo a swap that a process death interrupted; what was done, if anything."""
        try:
            state = json.loads(self._journal.read_text()).get("state")
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            state = None
        if state == "swapped":
            self._finish_swap()
            return f"finished an interrupted swap of database '{self.database}'"
        self._roll_back()
        return f"undid an interrupted swap: database '{self.database}' restored"

    def _write_journal(self, state: str) -> None:
        temporary = self._journal.with_suffix(".tmp")
        with temporary.open("w") as handle:
            json.dump({"database": self.database, "staging": self.staging, "state": state}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self._journal)

    def _finish_swap(self) -> None:
        for parent in self.folders.parents:
            shutil.rmtree(self._replaced(parent), ignore_errors=True)
        self._journal.unlink(missing_ok=True)

    def _roll_back(self) -> None:
        for parent in self.folders.parents:
            kept = self._replaced(parent)
            if kept.exists():
                shutil.rmtree(parent / self.database, ignore_errors=True)
                os.replace(kept, parent / self.database)
        self.discard_staging()
        self._journal.unlink(missing_ok=True)


def _run_process_group(command: list[str], log: IO[str]) -> int:
    """Run ``command`` in a process group of its own; an interruption stops the whole group."""
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        return process.wait()
    except BaseException:
        _stop_group(process)
        raise


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to every process of the group, SIGKILL to what is left after 15 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            process.poll()  # reaps the launcher, so that only live processes hold the group
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def _count_lines(path: Path) -> int:
    try:
        with path.open("rb") as report:
            return sum(1 for line in report if line.strip())
    except FileNotFoundError:
        return 0


def _last_error(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if "rror" in line or "xception" in line:
            return line[:300]
    return lines[-1][:300] if lines else "no output"
