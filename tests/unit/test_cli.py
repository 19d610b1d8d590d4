from __future__ import annotations

import subprocess
import sys

from bulk360 import __version__


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
