from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from bulk360 import __version__
from bulk360.cli import _optional_value
from bulk360.cli.reporting import ConsoleReporter
from bulk360.errors import ConfigError
from bulk360.graph import bolt_uri
from tests.helpers.cli import bulk360_process as bulk360


def test_version() -> None:
    result = bulk360("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"bulk360 {__version__}"


def test_help_lists_options() -> None:
    result = bulk360("--help")
    assert result.returncode == 0
    assert "--env-file" in result.stdout


def test_resume_without_a_run_id_means_the_newest_failed_run() -> None:
    fix = _optional_value
    assert fix(["run", "--resume"], "--resume", "newest") == ["run", "--resume=newest"]
    assert fix(["run", "--resume", "--workers", "2"], "--resume", "newest")[1] == "--resume=newest"
    assert fix(["run", "--resume", "12"], "--resume", "newest") == ["run", "--resume", "12"]
    assert fix(["run"], "--resume", "newest") == ["run"]


def test_a_missing_env_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent.env"
    for args in (("plan",), ("sample", "list"), ("runs",)):
        result = bulk360("--env-file", str(missing), *args)
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stdout == ""
        assert result.stderr.strip() == (
            f"error: the settings file {missing} (--env-file) does not exist"
        )
    folder = bulk360("--env-file", str(tmp_path), "plan")
    assert folder.returncode == 2
    assert folder.stderr.strip() == f"error: the settings file {tmp_path} (--env-file) is a folder"


def test_an_unreadable_env_file_is_one_line(tmp_path: Path) -> None:
    binary = tmp_path / "binary.env"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    result = bulk360("--env-file", str(binary), "plan")
    assert result.returncode == 2
    assert (
        result.stderr.strip() == f"error: the settings file {binary} (--env-file) is not UTF-8 text"
    )


def test_an_unexpected_error_outside_a_run_is_one_line_and_debug_shows_it() -> None:
    # A command with a bug, registered on the real app for this process only.
    script = (
        "import sys; import bulk360.cli as cli\n"
        "@cli.app.command('broken')\n"
        "def broken() -> None:\n"
        "    {}['missing']\n"
        "sys.argv = ['bulk360', *sys.argv[1:]]; cli.main()\n"
    )
    plain = subprocess.run(
        [sys.executable, "-c", script, "broken"], capture_output=True, text=True, check=False
    )
    assert plain.returncode == 1
    assert "Traceback" not in plain.stderr
    assert plain.stderr.strip() == (
        "error: unexpected KeyError: 'missing'; this is a bug in bulk360: run again with "
        "--debug for the traceback"
    )
    debug = subprocess.run(
        [sys.executable, "-c", script, "--debug", "broken"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "KeyError" in debug.stderr


@pytest.mark.parametrize(
    "uri",
    [
        "bolt://127.0.0.1:7687",
        "bolt+s://x.example:7687",
        "bolt+ssc://x",
        "neo4j://x",
        "neo4j+s://abc.databases.neo4j.io",
        "neo4j+ssc://x",
    ],
)
def test_bolt_uris_are_accepted(uri: str) -> None:
    assert bolt_uri(uri) == uri


@pytest.mark.parametrize(
    ("uri", "hint"),
    [
        ("http://localhost:7474", "bolt://localhost:7687"),
        ("https://db.example:7473/browser/", "bolt://db.example:7687"),
        ("localhost:7474", "bolt://localhost:7687"),
        ("ftp://x", None),
    ],
)
def test_other_uris_are_one_line_naming_the_bolt_schemes(uri: str, hint: str | None) -> None:
    with pytest.raises(ConfigError) as caught:
        bolt_uri(uri)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"NEO4J_URI '{uri}' is not a Bolt URI: bulk360 speaks Bolt")
    assert "neo4j+s:// for Aura" in message
    if hint:
        assert f"7474 is Neo4j Browser's HTTP port, Bolt listens on 7687 (e.g. {hint})" in message
    else:
        assert "7474" not in message


def test_a_progress_bar_nobody_announced_is_added_not_a_crash() -> None:
    output = io.StringIO()
    reporter = ConsoleReporter(Console(file=output, force_terminal=True, width=120))
    with reporter.rows_progress({"Account": 10}) as advance:
        advance("Account", 10)
        advance("HAS_SUBSCRIPTION.100 pairs replaced", 3)  # not announced
    assert "HAS_SUBSCRIPTION.100 pairs replaced" in output.getvalue()


def test_the_command_line_imports_only_what_a_command_needs() -> None:
    # ``bulk360 --help`` and the light commands start without the heavy libraries; each command
    # imports what it runs (the pipeline, the driver, FastAPI, igraph, Spark) when it runs.
    heavy = ["polars", "neo4j", "pyspark", "fastapi", "igraph", "pyarrow", "sqlglot", "psycopg"]
    script = f"import sys, bulk360.cli\nprint(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
    assert bulk360("--help").returncode == 0
