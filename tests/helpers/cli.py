"""The real ``bulk360`` command line in a child process, as cron runs it (output to a file or a
pipe) or as a person runs it (a pseudo-terminal, where rich draws its progress bars)."""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bulk360.settings import Settings

__all__ = ["CliResult", "bulk360_cli", "bulk360_process", "cli_env", "run_cli", "summary_counts"]

_ANSI = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07]*\x07|[()][0-9A-B])")


def cli_env(settings: Settings, import_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI child process using ``settings``' control database."""
    return {
        **os.environ,
        "ETL_DB_NAME": settings.etl_db_name,
        "NEO4J_URI": settings.neo4j_uri,
        "BULK360_IMPORT_DIR": str(import_dir),
        "COLUMNS": "250",  # wide enough that rich does not cut the table cells asserted on
        **extra,
    }


@dataclass(frozen=True)
class CliResult:
    """What a CLI process printed and how it ended. On a terminal, stdout and stderr are one
    stream (``stdout``; ``stderr`` empty) with the terminal's control sequences removed."""

    returncode: int
    stdout: str
    stderr: str
    terminal: bool

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(
    settings: Settings,
    import_dir: Path,
    *args: str,
    terminal: bool = False,
    env: dict[str, str] | None = None,
    timeout: float = 900,
    interrupt_when: Callable[[str], bool] | None = None,
) -> CliResult:
    """Run ``bulk360 <args>`` against ``settings``' control database.

    ``terminal``: on a pseudo-terminal 200 columns wide (else stdout and stderr are pipes).
    ``interrupt_when``: a test of the output so far; once true, the process gets SIGTERM.
    """
    environment = {**cli_env(settings, import_dir), **(env or {})}
    command = [sys.executable, "-m", "bulk360", *args]
    if not terminal:
        environment.pop("TERM", None)
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        if interrupt_when is None:
            stdout, stderr = process.communicate(timeout=timeout)
            return CliResult(process.returncode, stdout, stderr, False)
        return _watch_pipe(process, interrupt_when, timeout)
    environment.pop("COLUMNS", None)  # the terminal's size says it
    environment["TERM"] = "xterm-256color"
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    process = subprocess.Popen(
        command, stdin=child, stdout=child, stderr=child, env=environment, close_fds=True
    )
    os.close(child)
    chunks: list[bytes] = []
    interrupted = False
    deadline = time.monotonic() + timeout
    try:
        while True:
            assert time.monotonic() < deadline, f"bulk360 {' '.join(args)} ran over {timeout} s"
            ready, _, _ = select.select([main], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                data = os.read(main, 65536)
            except OSError as exc:  # EIO: the child closed the terminal
                if exc.errno != errno.EIO:
                    raise
                break
            if not data:
                break
            chunks.append(data)
            if interrupt_when and not interrupted and interrupt_when(_plain(b"".join(chunks))):
                process.send_signal(signal.SIGTERM)
                interrupted = True
        process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(main)
        if process.poll() is None:
            process.kill()
    return CliResult(process.returncode, _plain(b"".join(chunks)), "", True)


def _watch_pipe(
    process: subprocess.Popen[str], interrupt_when: Callable[[str], bool], timeout: float
) -> CliResult:
    """Read a piped process's stdout line by line and interrupt it when asked."""
    assert process.stdout is not None and process.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        lines.append(line)
        if interrupt_when("".join(lines)):
            process.send_signal(signal.SIGTERM)
            break
    rest, stderr = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
    return CliResult(process.returncode, "".join(lines) + rest, stderr, False)


def _plain(data: bytes) -> str:
    """A terminal's bytes as the text a person reads: control sequences and carriage returns
    removed."""
    text = _ANSI.sub("", data.decode("utf-8", errors="replace"))
    return text.replace("\r\n", "\n").replace("\r", "\n")


def summary_counts(output: str) -> dict[tuple[str, str], int]:
    """The ``nodes`` and ``relationships`` rows of a run's summary table, and its ``rows ...``
    totals (kind ``rows``), by (kind, name)."""
    counts: dict[tuple[str, str], int] = {}
    for line in output.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line)]
        cells = [c for c in cells if c != ""]
        if len(cells) == 3 and cells[0] in ("nodes", "relationships"):
            counts[(cells[0], cells[1])] = int(cells[2].replace(",", ""))
        elif (
            len(cells) == 2 and cells[0].startswith("rows ") and cells[1].replace(",", "").isdigit()
        ):
            counts[("rows", cells[0].removeprefix("rows "))] = int(cells[1].replace(",", ""))
    return counts


def bulk360_cli(settings: Settings, import_dir: Path, *args: str) -> CliResult:
    """``bulk360 <args>`` as cron runs it (output to pipes)."""
    return run_cli(settings, import_dir, *args)


def bulk360_process(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m bulk360 <args>`` with pipes, for the commands that need no service."""
    return subprocess.run(
        [sys.executable, "-m", "bulk360", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
