"""Admin mode: ``neo4j-admin database import full`` into a staging store, then a swap.

The files carry dense global node ids (:mod:`bulk360.ids`), so the import runs with
``--id-type=actual``: neo4j-admin uses them as the node records and skips its own id work.
It starts ``org.neo4j.cli.AdminTool`` in one JVM, with the class path and JVM options the
launcher would use (read from ``NEO4J_HOME``), instead of ``bin/neo4j-admin``, whose launcher
starts a JVM only to start a second one; and with a class-data archive (AppCDS) made by the
first import of each Neo4j home and version, so that the JVM loads Neo4j's classes from a
memory-mapped archive. A home without ``lib/`` is run through ``bin/neo4j-admin``.

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

import hashlib
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
    started: str = ""
    """How neo4j-admin was started (the JVM directly, with or without the class-data archive)."""
    notes: tuple[str, ...] = ()


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
        settings = neo4j_conf(home)

        def folder(name: str, default: Path) -> Path:
            value = settings.get(name, [""])[-1]
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


def neo4j_conf(home: Path) -> dict[str, list[str]]:
    """The settings of ``home/conf/neo4j.conf``; a setting may repeat (``server.jvm.additional``)."""
    settings: dict[str, list[str]] = {}
    conf = home / "conf" / "neo4j.conf"
    if conf.is_file():
        for line in conf.read_text(errors="replace").splitlines():
            name, sep, value = line.partition("=")
            if sep and not name.lstrip().startswith("#"):
                settings.setdefault(name.strip(), []).append(value.strip())
    return settings


_MEMORY = re.compile(r"^\s*(?P<number>\d+)\s*(?P<unit>[kKmMgGtT]?)(i?[bB])?\s*$")


def _heap_option(size: str) -> str | None:
    """``-Xmx`` for a Neo4j memory setting (``2g``, ``512m``, ``2GiB``); None if unreadable."""
    match = _MEMORY.match(size)
    if match is None:
        return None
    unit = match["unit"].lower()
    return f"-Xmx{match['number']}{unit}" if unit != "t" else f"-Xmx{int(match['number']) * 1024}g"


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

    # ---- starting neo4j-admin ----------------------------------------------------------

    def _launch(self) -> _Launch:
        """The JVM and its options for ``AdminTool``, as the launcher would start it."""
        home = self._home
        if not (home / "lib").is_dir():
            return _Launch([str(self._settings.neo4j_admin)], {}, None, "bin/neo4j-admin")
        java_home = self._settings.environment.get("JAVA_HOME")
        java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
        if java is None:
            return _Launch([str(self._settings.neo4j_admin)], {}, None, "bin/neo4j-admin")
        conf = neo4j_conf(home)
        heap = (
            self._settings.environment.get("HEAP_SIZE")
            or conf.get("server.memory.heap.max_size", [""])[-1]
        )
        options = [
            "-cp",
            ":".join(str(home / folder / "*") for folder in ("plugins", "conf", "lib")),
            *conf.get("server.jvm.additional", []),
            "-Dfile.encoding=UTF-8",
            *filter(None, [_heap_option(heap)]),
        ]
        environment = {"NEO4J_HOME": str(home), "NEO4J_CONF": str(home / "conf")}
        return _Launch([java, *options], environment, self._archive(java, options), "AdminTool")

    def _archive(self, java: str, options: list[str]) -> Path:
        """Where the class-data archive of this home, Neo4j version, JVM and options lives."""
        versions = sorted(p.name for p in (self._home / "lib").glob("neo4j-kernel-*.jar"))
        binary = Path(java).resolve()
        stat = binary.stat()
        identity = json.dumps(
            [str(self._home.resolve()), versions, str(binary), stat.st_size, stat.st_mtime, options]
        )
        digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
        return self._settings.cache_dir / f"neo4j-admin-{digest}.jsa"

    def _class_data(self, launch: _Launch) -> tuple[list[str], Path | None, list[str]]:
        """The JVM options for the archive: use it if the JVM accepts it, else make it.

        Returns the options, the temporary file a new archive is written to (renamed into place
        after a good import) and notes for the user.
        """
        archive = launch.archive
        if archive is None:
            return [], None, []
        notes = []
        if archive.exists():
            probe = subprocess.run(
                [
                    launch.command[0],
                    "-Xshare:on",
                    f"-XX:SharedArchiveFile={archive}",
                    *launch.command[1:],
                    "-version",
                ],
                capture_output=True,
                check=False,
            )
            if probe.returncode == 0:
                return [f"-XX:SharedArchiveFile={archive}"], None, []
            notes.append(
                f"the JVM refused the class-data archive {archive}: importing without it, and "
                "making it again"
            )
            archive.unlink(missing_ok=True)
        archive.parent.mkdir(parents=True, exist_ok=True)
        dump = archive.with_name(f"{archive.stem}.{os.getpid()}.tmp")
        return [f"-XX:ArchiveClassesAtExit={dump}"], dump, notes

    def import_into(self, database: str, request: ImportRequest) -> AdminImport:
        """Run ``neo4j-admin database import full`` into ``database``; raise if it fails."""
        report_file, log_file, tolerance = request.report_file, request.log_file, request.tolerance
        launch = self._launch()
        class_data, dump, notes = self._class_data(launch)
        if launch.started == "AdminTool":
            started = "AdminTool, " + (
                "a new class-data archive" if dump else "with the class-data archive"
            )
            prefix = [*launch.command, *class_data, "org.neo4j.cli.AdminTool"]
        else:
            started, prefix = launch.started, launch.command
        command = [
            *prefix,
            "database",
            "import",
            "full",
            # The database first: --nodes and --relationships take several files each, and
            # a name after them would be read as one more file.
            database,
            "--verbose",
            "--overwrite-destination=true",
            "--id-type=actual",
            f"--report-file={report_file}",
            f"--bad-tolerance={tolerance}",
            f"--array-delimiter=U+{ord(ARRAY_DELIMITER):04X}",
            *_multiline_options(request.multiline),
            *[f"--nodes={label}={path}" for label, path in request.nodes],
            *[f"--relationships={kind}={path}" for kind, path in request.relationships],
        ]
        try:
            with log_file.open("w") as log:
                returncode = _run_process_group(command, log, launch.environment)
            if returncode == 0 and dump is not None and dump.exists():
                os.replace(dump, launch.archive)  # type: ignore[arg-type]
        finally:
            if dump is not None:
                dump.unlink(missing_ok=True)
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
            started=started,
            notes=tuple(notes),
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


@dataclass(frozen=True)
class _Launch:
    """How neo4j-admin is started: the command before its arguments, its environment."""

    command: list[str]
    environment: dict[str, str]
    archive: Path | None
    started: str


def _run_process_group(command: list[str], log: IO[str], environment: dict[str, str]) -> int:
    """Run ``command`` in a process group of its own; an interruption stops the whole group."""
    process = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        # Inherited as by any child process, with the Neo4j home made explicit.
        env={**os.environ, **environment},
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


_PLAIN_PATH = re.compile(r"[\w./-]+")
_V2_LIMIT = 4 << 20
"""neo4j-admin's v2 multi-line parser fails on a file over 4 MiB with a chunk holding no quote
("Weird input data"); larger files go through v1, which parses every file as multi-line."""


def _multiline_options(files: Sequence[Path]) -> list[str]:
    """Only files with a line break in a value need the multi-line parser, which is slower
    (on the Customer 360 sample, v1 for every file took 4.8-5.4 s, v2 for the one file with
    line breaks 3.2-3.5 s)."""
    if not files:
        return ["--multiline-fields=false"]
    # v2 reads the list as regular expressions: a path of plain characters matches itself.
    if all(f.stat().st_size <= _V2_LIMIT and _PLAIN_PATH.fullmatch(str(f)) for f in files):
        return [
            "--multiline-fields-format=v2",
            f"--multiline-fields={','.join(str(f) for f in files)}",
        ]
    return ["--multiline-fields=true"]


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
