"""The ``bulk360`` command line: parses options, calls the library, prints.

This is the one place that turns an expected error (:class:`bulk360.errors.Bulk360Error`) into
a one-line message and an exit code. ``--debug`` shows the traceback as well; local variables
are never shown, since they may hold passwords.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from bulk360 import __version__
from bulk360.errors import Bulk360Error, Interrupted, one_line
from bulk360.settings import Settings, check_settings_file, load_settings

__all__ = ["app", "main"]

app = typer.Typer(
    name="bulk360",
    help="Turn several PostgreSQL databases into one Neo4j graph, driven by a control database.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Wide enough that a table piped to a file or a log keeps every cell whole.
_PIPED_WIDTH = 1000


def _console(stderr: bool = False) -> Console:
    """Rich's console; when the output is not a terminal (and COLUMNS does not say), tables
    take their natural width instead of being squeezed into 80 columns."""
    console = Console(stderr=stderr)
    if console.is_terminal or "COLUMNS" in os.environ:
        return console
    return Console(stderr=stderr, width=_PIPED_WIDTH)


console = _console()
errors = _console(stderr=True)


@dataclass
class CliState:
    """Options every command shares, set by the top-level callback."""

    env_file: Path | None = None
    debug: bool = False

    def settings(self) -> Settings:
        """Resolve the settings once for the command being run."""
        return load_settings(self.env_file)


def _show_version(value: bool) -> None:
    if value:
        console.print(f"bulk360 {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    env_file: Annotated[
        Path | None, typer.Option("--env-file", help="Settings file (default: nearest .env).")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    if env_file is not None:
        check_settings_file(env_file)
    ctx.obj = CliState(env_file=env_file, debug=debug)


def state(ctx: typer.Context) -> CliState:
    """The shared options of the running command."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, CliState) else CliState()


def _optional_value(args: list[str], option: str, missing: str) -> list[str]:
    """``--resume`` alone means ``--resume=<missing>``: Click options cannot take an optional
    value, so a bare one gets its default here, before Click parses the line."""
    fixed = list(args)
    for i, arg in enumerate(fixed):
        following = fixed[i + 1] if i + 1 < len(fixed) else None
        if arg == option and (following is None or following.startswith("-")):
            fixed[i] = f"{option}={missing}"
    return fixed


def _interrupted(signum: int, frame: object) -> None:
    # Unwinds the command, so that a run is logged as failed and neo4j-admin stopped.
    raise Interrupted(signal.Signals(signum).name)


def main() -> None:
    """Entry point of the ``bulk360`` console script."""
    debug = "--debug" in sys.argv[1:]
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupted)
    # Typer handles usage errors itself (standalone mode); our own errors propagate to here.
    try:
        app(args=_optional_value(sys.argv[1:], "--resume", "newest"))
    except Bulk360Error as exc:
        if debug:
            traceback.print_exc()
        errors.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except Interrupted as exc:
        if debug:
            traceback.print_exc()
        errors.print(f"interrupted ({exc.args[0]}); a run under way is logged as failed")
        sys.exit(130)
    except Exception as exc:  # a bug: one line on a cron log, the traceback with --debug
        if debug:
            traceback.print_exc()
            sys.exit(1)
        errors.print(
            f"[bold red]error:[/] unexpected {type(exc).__name__}: {escape(one_line(exc))}; "
            "this is a bug in bulk360: run again with --debug for the traceback",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)


# The commands register themselves on `app` when their modules are imported.
from bulk360.cli import apps as _apps  # noqa: E402,F401
from bulk360.cli import experiments as _experiments  # noqa: E402,F401
from bulk360.cli import follow as _follow  # noqa: E402,F401
from bulk360.cli import graph as _graph  # noqa: E402,F401
from bulk360.cli import history as _history  # noqa: E402,F401
from bulk360.cli import mappings as _mappings  # noqa: E402,F401
from bulk360.cli import run as _run  # noqa: E402,F401
