"""Neo4j in the integration tests: admin builds checked by ``neo4j-admin database check``."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from bulk360 import RunOptions, RunSummary
from bulk360.pipeline import run
from bulk360.settings import Settings
from tests.helpers.services import run_services

__all__ = ["build_with_admin_mode", "check_store"]


def check_store(settings: Settings, folder: Path) -> str:
    """``neo4j-admin database check`` of the target database (Neo4j stopped): it must find nothing.

    Under ``--id-type=actual`` neo4j-admin validates nothing, so a repeated id or a dangling
    relationship end would only show here.
    """
    result = subprocess.run(
        [
            str(settings.neo4j_admin),
            *("database", "check", settings.neo4j_database),
            f"--report-path={folder}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "inconsisten" not in output.lower(), output[-3000:]
    assert not any(folder.iterdir()), [p.name for p in folder.iterdir()]  # no report written
    return output


def build_with_admin_mode(settings: Settings, package_format: str = "csv") -> RunSummary:
    """Stop Neo4j, import ``settings``' control rows with the real neo4j-admin (from a package
    of ``package_format``), check the store it built, and start Neo4j again."""
    run_services("neo4j", "stop")
    try:
        options = RunOptions(
            mode="admin",
            overwrite=True,
            workers=3,
            package_format=package_format,  # type: ignore[arg-type]
        )
        summary = run(settings, options)
        with tempfile.TemporaryDirectory() as reports:
            check_store(settings, Path(reports))
        return summary
    finally:
        run_services("neo4j", "start")
