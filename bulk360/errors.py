"""The errors bulk360 raises on purpose, each with an exit code.

Every expected problem is one of these; the CLI prints its message on one line and exits with
its code. Anything else is a bug and shows a traceback only with ``--debug``::

    Bulk360Error                    exit 1   base of all expected problems
    ├── ConfigError                 exit 2   settings or control rows are wrong
    │   ├── ValidationFailed        exit 2   the configuration check found problems (all listed)
    │   │   └── SchemaDrift         exit 2   a mapped table changed since the last succeeded run
    │   ├── NoSuchRun               exit 2   a run id that etl_run_logs does not hold
    │   └── StateError              exit 2   follow's state is missing, damaged, or of other
    │                                        control rows (`bulk360 follow --clear` rebuilds it)
    ├── SourceError                 exit 3   a source PostgreSQL database failed or is unreachable
    ├── TargetError                 exit 4   Neo4j, neo4j-admin or the import folder failed
    │   └── TargetRunning           exit 4   admin mode found the Neo4j server running
    ├── InternalError               exit 1   an unexpected exception (a bug) stopped a run; its
    │                                        traceback is kept in the run row
    ├── IntegrityError              exit 5   rows went missing, were rejected beyond tolerance,
    │                                        the ledger does not balance, or values would change
    │                                        under --strict-values
    └── CheckFailed                 exit 6   `bulk360 check` found the deployment unhealthy

    Interrupted (a BaseException)   exit 130 Ctrl-C or SIGTERM: a run is logged as failed and
                                             stops its neo4j-admin process tree

Messages never hold a password: they name the setting or the environment variable instead.
"""

from __future__ import annotations

__all__ = [
    "Bulk360Error",
    "CheckFailed",
    "ConfigError",
    "IntegrityError",
    "InternalError",
    "Interrupted",
    "NoSuchRun",
    "SchemaDrift",
    "SourceError",
    "StateError",
    "TargetError",
    "TargetRunning",
    "ValidationFailed",
    "one_line",
]


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line (a driver's may span several), at most ``limit`` long."""
    text = " ".join(str(exc).split())
    text = text or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Bulk360Error(Exception):
    """Base of every expected failure; ``exit_code`` is what the CLI returns."""

    exit_code = 1


class ConfigError(Bulk360Error):
    """Raised when a setting or a control row is missing, malformed or contradictory."""

    exit_code = 2


class ValidationFailed(ConfigError):
    """Raised when the check of the control rows against the live catalogs finds problems.

    ``problems`` holds one line per problem, each naming the mapping row it comes from.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(
            f"the configuration has {count} problem{'s' if count != 1 else ''}; "
            f"nothing was written:\n{lines}"
        )


class NoSuchRun(ConfigError):
    """Raised when a command names a run that ``etl_run_logs`` does not hold."""


class StateError(ConfigError):
    """Raised when follow's state cannot be used: its file is missing while the sources are
    followed, damaged, written by another bulk360 or for other control rows. The message names
    the file and the fix (``bulk360 follow --clear``)."""


class SchemaDrift(ValidationFailed):
    """Raised when a mapped table gained a column without a rule, or a column changed type.

    ``problems`` holds one line per column, naming it and the SQL that keeps or excludes it.
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems)
        count = len(self.problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        self.args = (
            f"{count} schema change{'s' if count != 1 else ''} since the last succeeded run "
            f"stop{'' if count != 1 else 's'} the run before anything is read (add a rule for "
            f"each new column, or pass --accept-schema-changes):\n{lines}",
        )


class SourceError(Bulk360Error):
    """Raised when a source database cannot be reached or a read from it fails."""

    exit_code = 3


class TargetError(Bulk360Error):
    """Raised when Neo4j cannot be reached, refuses a write, neo4j-admin fails, or the
    import folder cannot be written (a full disk)."""

    exit_code = 4


class TargetRunning(TargetError):
    """Raised when admin mode would import while the Neo4j server is running."""


class InternalError(Bulk360Error):
    """Raised in place of an exception bulk360 did not expect (a bug) that stopped a run.

    Its message names the step and the run in one line; the original exception is its
    ``__cause__`` (``--debug`` shows it), and its traceback is in the run row.
    """


class IntegrityError(Bulk360Error):
    """Raised when rows were rejected or lost beyond the stated tolerance, a ledger does not
    balance, or ``--strict-values`` finds values Neo4j cannot hold as they are."""

    exit_code = 5


class CheckFailed(Bulk360Error):
    """``bulk360 check`` found at least one thing wrong (each is listed above the error)."""

    exit_code = 6


class Interrupted(BaseException):
    """Raised by the CLI's SIGINT and SIGTERM handlers (``args[0]`` names the signal).

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` swallows it; its own
    class, so that the CLI framework does not turn it into a silent exit.
    """
