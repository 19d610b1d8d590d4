"""The ``bulk360`` command line: parses options, calls the library, prints.

This is the one place that turns an expected error (:class:`bulk360.errors.Bulk360Error`) into
a one-line message and an exit code. ``--debug`` shows the traceback as well; local variables
are never shown, since they may hold passwords.
"""

from __future__ import annotations

import signal
import sys
import traceback

from rich.markup import escape

# The commands register themselves on `app` (bulk360.cli.root) when their modules are imported.
from bulk360.cli import apps as _apps  # noqa: F401
from bulk360.cli import experiments as _experiments  # noqa: F401
from bulk360.cli import follow as _follow  # noqa: F401
from bulk360.cli import graph as _graph  # noqa: F401
from bulk360.cli import history as _history  # noqa: F401
from bulk360.cli import mappings as _mappings  # noqa: F401
from bulk360.cli import run as _run  # noqa: F401
from bulk360.cli.root import app, errors
from bulk360.errors import Bulk360Error, Interrupted, one_line

__all__ = ["app", "main"]


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
