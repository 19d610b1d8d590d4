"""The command line's root: the Typer app every command registers on, its consoles, and the
options every command shares (``--env-file``, ``--debug``, ``--version``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bulk360.settings import Settings, check_settings_file, load_settings
from bulk360.version import __version__

__all__ = ["CliState", "app", "console", "errors", "state"]

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
