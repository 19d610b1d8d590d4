"""neo4j-admin's JVM started while bulk360 extracts, so that its start costs the run nothing.

neo4j-admin spends over a second starting before it reads a file: the JVM, Neo4j's command
line tool and the import command's set-up. Admin mode starts it when the run's checks have
passed (:meth:`bulk360.load.admin.AdminLoader.preflight`), as ``AdminWarmStart.java`` (next to
this file): it builds the import command once, then waits on standard input for the import's
arguments, which :meth:`WaitingAdmin.send` sends when the package is published. Everything else is
as neo4j-admin started directly (:mod:`.neo4j_admin`): the same JVM, options, class-data archive
and process group, the same log.

The class is compiled on first use, by the ``javac`` beside the chosen JVM, into bulk360's cache
folder; a JVM without a ``javac`` (a runtime, not a development kit) starts neo4j-admin when the
import begins, as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import tempfile
import zipfile
from pathlib import Path
from typing import IO

__all__ = ["WaitingAdmin", "warm_start_jar"]

SOURCE = Path(__file__).with_name("AdminWarmStart.java")
MAIN_CLASS = "AdminWarmStart"
_RELEASE = "17"
"""The oldest Java a supported Neo4j line runs on (5.26 LTS)."""


def warm_start_jar(java: str, cache_dir: Path) -> Path | None:
    """The jar of :data:`MAIN_CLASS`, compiled once per source and JDK; None without ``javac``.

    A jar, not a folder: the JVM's class-data archive refuses a class path with a folder in it.
    """
    javac = Path(java).resolve().parent / "javac"
    if not os.access(javac, os.X_OK):
        return None
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source + str(javac).encode() + _RELEASE.encode()).hexdigest()[:16]
    jar = cache_dir / f"admin-warm-start-{digest}.jar"
    if jar.is_file():
        return jar
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as folder:
        compiled = subprocess.run(
            [str(javac), "--release", _RELEASE, "-d", folder, str(SOURCE)],
            capture_output=True,
            check=False,
        )
        if compiled.returncode != 0:
            return None
        built = Path(folder) / jar.name
        with zipfile.ZipFile(built, "w") as archive:
            for path in sorted(Path(folder).glob("*.class")):
                archive.write(path, path.name)
        os.replace(built, jar)
    return jar


class WaitingAdmin:
    """A neo4j-admin JVM that waits for its arguments (:data:`MAIN_CLASS`)."""

    def __init__(self, command: list[str], environment: dict[str, str]) -> None:
        # What the JVM itself prints before the import's log is open (the class-data archive's
        # warnings): kept here, and put at the head of the log.
        self._early: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed once read)
        self.process = subprocess.Popen(
            [*command, MAIN_CLASS],
            stdin=subprocess.PIPE,
            stdout=self._early,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **environment},
        )

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, arguments: list[str], log_file: Path) -> bool:
        """Start the import; False if the JVM is gone (it is then started the usual way)."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.write("\0".join([str(log_file), *arguments]).encode())
            self.process.stdin.close()
        except BrokenPipeError:
            return False
        return True

    def keep_early_output(self, log_file: Path) -> None:
        """Put what the JVM printed before the log was open at the head of the log."""
        self._early.seek(0)
        early = self._early.read()
        self._early.close()
        if early:
            logged = log_file.read_bytes() if log_file.exists() else b""
            log_file.write_bytes(early + logged)

    def discard(self) -> None:
        """Not needed after all (the run failed before its import, or the JVM is gone)."""
        if self.process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._early.close()
