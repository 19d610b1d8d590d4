"""Admin mode: ``neo4j-admin database import full`` of the published import folder.

The server must be stopped (the import writes the store files directly), and an existing
database is replaced only when the caller asked for it.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bulk360.errors import IntegrityError, TargetError, TargetRunning
from bulk360.settings import Settings
from bulk360.types import ARRAY_DELIMITER

__all__ = ["AdminImport", "AdminLoader"]

_DONE = re.compile(
    r"Imported:\s+(?P<nodes>\d+) nodes\s+(?P<relationships>\d+) relationships\s+(?P<properties>\d+) properties"
)


@dataclass(frozen=True)
class AdminImport:
    """What neo4j-admin reported."""

    nodes: int
    relationships: int
    properties: int
    bad_entries: int
    report_file: Path
    log_file: Path


class AdminLoader:
    """Runs the real ``neo4j-admin`` of ``settings.neo4j_home``."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._home = settings.neo4j_home
        self._database = settings.neo4j_database

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
        folder = self._home / "data" / "databases" / self._database
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
        if self.database_exists() and not overwrite:
            problems.append(
                f"database '{self._database}' already exists in {self._home}; "
                "pass --overwrite to replace it"
            )
        return problems

    def run(
        self,
        nodes: Sequence[tuple[str, Path]],
        relationships: Sequence[tuple[str, Path]],
        multiline: Sequence[Path],
        report_file: Path,
        log_file: Path,
        tolerance: int,
        overwrite: bool,
    ) -> AdminImport:
        """Import ``(label, file)`` and ``(type, file)`` pairs; raise if it fails."""
        problems = self.preflight(overwrite)
        if problems:
            raise TargetRunning(problems[0]) if self.server_pid() else TargetError(problems[0])
        command = [
            str(self._settings.neo4j_admin),
            "database",
            "import",
            "full",
            # The database first: --nodes and --relationships take several files each, and
            # a name after them would be read as one more file.
            self._database,
            "--verbose",
            f"--overwrite-destination={str(overwrite).lower()}",
            f"--report-file={report_file}",
            f"--bad-tolerance={tolerance}",
            "--skip-duplicate-nodes=true",
            "--skip-bad-relationships=true",
            f"--array-delimiter=U+{ord(ARRAY_DELIMITER):04X}",
            # The v1 format, for all files: v2's per-file list fails on files over 4 MiB
            # without quotes in every chunk ("Weird input data"), and v1 cost nothing measurable.
            f"--multiline-fields={str(bool(multiline)).lower()}",
            *[f"--nodes={label}={path}" for label, path in nodes],
            *[f"--relationships={kind}={path}" for kind, path in relationships],
        ]
        with log_file.open("w") as log:
            result = subprocess.run(
                command, stdout=log, stderr=subprocess.STDOUT, text=True, check=False
            )
        output = log_file.read_text(errors="replace")
        bad = _count_lines(report_file)
        if result.returncode != 0:
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
