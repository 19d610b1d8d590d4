"""Neo4j in the integration tests: admin builds checked by ``neo4j-admin database check``, and
a server stopped while bulk360 writes."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from neo4j import Driver

from bulk360 import RunOptions, RunSummary
from bulk360.pipeline import run
from bulk360.settings import Settings
from tests.helpers.cli import cli_env
from tests.helpers.services import cypher, run_services

__all__ = ["build_with_admin_mode", "check_store", "stop_neo4j_while_writing"]


def stop_neo4j_while_writing(
    settings: Settings, driver: Driver, mode: str, written: str
) -> tuple[int, str, str]:
    """Run ``bulk360 run --mode <mode>`` with one writer and batches of 5, stop Neo4j as soon
    as the Cypher ``written`` (returning one boolean) says it has written, start Neo4j again;
    the run's exit code, stdout and stderr."""
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "bulk360", "run", "--mode", mode),
            *("--batch-size", "5", "--workers", "1", "--retry-seconds", "2"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(settings, settings.import_dir),
    )
    try:
        deadline = time.monotonic() + 120
        while not next(iter(cypher(driver, written)[0].values())):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, f"the {mode} run wrote nothing in two minutes"
            time.sleep(0.2)
        run_services("neo4j", "stop")
        stdout, stderr = process.communicate(timeout=300)
    finally:
        run_services("neo4j", "start")
        if process.poll() is None:
            process.kill()
    return process.returncode, stdout, stderr


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


def build_with_admin_mode(settings: Settings) -> RunSummary:
    """Stop Neo4j, import ``settings``' control rows with the real neo4j-admin, check the
    store it built, and start Neo4j again."""
    run_services("neo4j", "stop")
    try:
        summary = run(settings, RunOptions(mode="admin", overwrite=True, workers=3))
        with tempfile.TemporaryDirectory() as reports:
            check_store(settings, Path(reports))
        return summary
    finally:
        run_services("neo4j", "start")
