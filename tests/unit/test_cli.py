from __future__ import annotations

import subprocess
import sys

from bulk360 import __version__
from bulk360.cli import _optional_value


def bulk360(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bulk360", *args], capture_output=True, text=True, check=False
    )


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
