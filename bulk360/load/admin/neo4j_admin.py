"""``neo4j-admin database import full``, started as fast as it can start.

The files carry dense global node ids (:mod:`bulk360.plan.ids`), so the import runs with
``--id-type=actual``: neo4j-admin uses them as the node records and skips its own id work.
It starts ``org.neo4j.cli.AdminTool`` in one JVM, with the class path and JVM options the
launcher would use (read from ``NEO4J_HOME``), instead of ``bin/neo4j-admin``, whose launcher
starts a JVM only to start a second one; and with a class-data archive (AppCDS) made by the
first import of each Neo4j home and version, so that the JVM loads Neo4j's classes from a
memory-mapped archive; admin mode starts that JVM while it extracts, to wait for the import's
arguments (:mod:`.warm_start`). A home without ``lib/`` is run through ``bin/neo4j-admin``.
neo4j-admin runs in a process group of its own: an interrupted run stops every JVM of it.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bulk360.errors import IntegrityError, TargetError
from bulk360.load.admin.warm_start import WaitingAdmin, warm_start_jar
from bulk360.plan.types import ARRAY_DELIMITER
from bulk360.settings import Settings

__all__ = ["AdminImport", "ImportRequest", "Neo4jAdmin", "neo4j_conf"]

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
    started: str = ""
    """How neo4j-admin was started (the JVM directly, with or without the class-data archive)."""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImportRequest:
    """What neo4j-admin imports, and where its report and output go."""

    nodes: Sequence[tuple[str, Path]]
    """(labels, file) pairs; labels ``A`` or ``A:B``."""
    relationships: Sequence[tuple[str, Path]]
    """(type, file) pairs."""
    multiline: Sequence[Path]
    """Files whose text may hold line breaks."""
    report_file: Path
    log_file: Path
    tolerance: int
    """Bad entries neo4j-admin may report before the import fails."""
    input_type: str = "csv"
    """``csv`` or ``parquet``: what the files are (the package's format)."""


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


def _java(home: Path, java_home: str | None) -> str | None:
    """The JVM for ``home``'s neo4j-admin: the JDK ``scripts/services`` chose for its Neo4j line
    (in ``home/java-home``: 5.26 runs on Java 17, the calendar releases need 21 or newer), else
    ``JAVA_HOME``'s, else the one on the path."""
    chosen = home / "java-home"
    if chosen.is_file():
        java = Path(chosen.read_text().strip()) / "bin" / "java"
        if java.is_file():
            return str(java)
    return str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")


class Neo4jAdmin:
    """The ``neo4j-admin`` of ``settings.neo4j_home``."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._home = settings.neo4j_home
        self._waiting: tuple[WaitingAdmin, _Start] | None = None

    def _launch(self, warm: bool = False) -> _Launch:
        """The JVM and its options for ``AdminTool``, as the launcher would start it; ``warm``:
        with :mod:`.warm_start`'s class on the class path (None if it cannot be compiled)."""
        home = self._home
        if not (home / "lib").is_dir():
            return _Launch([str(self._settings.neo4j_admin)], {}, None, "bin/neo4j-admin")
        java = _java(home, self._settings.environment.get("JAVA_HOME"))
        if java is None:
            return _Launch([str(self._settings.neo4j_admin)], {}, None, "bin/neo4j-admin")
        jar = warm_start_jar(java, self._settings.cache_dir) if warm else None
        conf = neo4j_conf(home)
        heap = (
            self._settings.environment.get("HEAP_SIZE")
            or conf.get("server.memory.heap.max_size", [""])[-1]
        )
        folders = [str(home / folder / "*") for folder in ("plugins", "conf", "lib")]
        options = [
            "-cp",
            ":".join([*folders, *([str(jar)] if jar else [])]),
            *conf.get("server.jvm.additional", []),
            "-Dfile.encoding=UTF-8",
            *filter(None, [_heap_option(heap)]),
        ]
        environment = {"NEO4J_HOME": str(home), "NEO4J_CONF": str(home / "conf")}
        started = "AdminTool, started during extraction" if jar else "AdminTool"
        archive = self._archive(java, options)
        return _Launch([java, *options], environment, archive, started, waits=jar is not None)

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

    def _start(self, warm: bool = False) -> _Start:
        """How this import's JVM starts: its command, class-data archive and notes."""
        launch = self._launch(warm)
        if launch.archive is None:
            return _Start(launch.command, launch.environment, launch.started)
        class_data, dump, notes = self._class_data(launch)
        started = launch.started + (
            ", a new class-data archive" if dump else ", with the class-data archive"
        )
        command = [*launch.command, *class_data]
        return _Start(
            command, launch.environment, started, launch.archive, dump, notes, launch.waits
        )

    def warm_up(self) -> None:
        """Start neo4j-admin's JVM now, to wait for :meth:`import_into` (:mod:`.warm_start`);
        nothing if it cannot wait (``bin/neo4j-admin``, no ``javac``)."""
        if self._waiting is not None:
            return
        start = self._start(warm=True)
        if start.waits:
            self._waiting = (WaitingAdmin(start.command, start.environment), start)

    def close(self) -> None:
        """Stop a JVM :meth:`warm_up` started that no import used."""
        if self._waiting is not None:
            _discard(self._waiting)
            self._waiting = None

    def _run(self, arguments: list[str], log_file: Path) -> tuple[int, _Start]:
        """neo4j-admin with ``arguments`` and its exit status: in the JVM :meth:`warm_up`
        started if it still waits, else in one started now."""
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            process, start = waiting
            log_file.unlink(missing_ok=True)
            if process.alive and process.send(arguments, log_file):
                returncode = _keeping_archive(start, lambda: _wait_for_group(process.process))
                # It opens the log once it has read its arguments: without one, it died before
                # (while the arguments were sent), and the import starts in a JVM of its own.
                if log_file.exists():
                    process.keep_early_output(log_file)
                    return returncode, start
            _discard(waiting)
        start = self._start()
        command = [*start.command, *(["org.neo4j.cli.AdminTool"] if start.archive else [])]
        with log_file.open("w") as log:
            run = [*command, *arguments]
            returncode = _keeping_archive(
                start, lambda: _run_process_group(run, log, start.environment)
            )
        return returncode, start

    def import_into(self, database: str, request: ImportRequest) -> AdminImport:
        """Run ``neo4j-admin database import full`` into ``database``; raise if it fails."""
        report_file, log_file, tolerance = request.report_file, request.log_file, request.tolerance
        arguments = [
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
            *(
                _multiline_options(request.multiline)
                if request.input_type == "csv"
                else [f"--input-type={request.input_type}"]
            ),
            *[f"--nodes={label}={path}" for label, path in request.nodes],
            *[f"--relationships={kind}={path}" for kind, path in request.relationships],
        ]
        returncode, start = self._run(arguments, log_file)
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
            started=start.started,
            notes=tuple(start.notes),
        )


@dataclass(frozen=True)
class _Launch:
    """How neo4j-admin is started: the command before its arguments, its environment."""

    command: list[str]
    environment: dict[str, str]
    archive: Path | None
    started: str
    waits: bool = False
    """Whether the JVM waits for its arguments (:mod:`.warm_start`'s class on its class path)."""


@dataclass(frozen=True)
class _Start:
    """A launch made ready: the command before ``AdminTool``'s arguments (the class-data
    archive's options included), and the archive's temporary dump to keep after a good import."""

    command: list[str]
    environment: dict[str, str]
    started: str
    archive: Path | None = None
    dump: Path | None = None
    notes: list[str] = field(default_factory=list)
    waits: bool = False


def _keeping_archive(start: _Start, run: Callable[[], int]) -> int:
    """``run()``'s exit status; the class-data archive the JVM dumped is kept after a good
    import, and its temporary dump removed whatever happened (an interruption too)."""
    returncode = None
    try:
        returncode = run()
        return returncode
    finally:
        if start.dump is not None:
            if returncode == 0 and start.dump.exists():
                os.replace(start.dump, start.archive)  # type: ignore[arg-type]
            start.dump.unlink(missing_ok=True)


def _discard(waiting: tuple[WaitingAdmin, _Start]) -> None:
    """A waiting JVM stopped, and the class-data archive it would have made removed."""
    process, start = waiting
    process.discard()
    if start.dump is not None:
        start.dump.unlink(missing_ok=True)


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
    return _wait_for_group(process)


def _wait_for_group(process: subprocess.Popen[bytes]) -> int:
    """The exit status of ``process``; an interruption stops its whole process group."""
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
