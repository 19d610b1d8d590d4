"""Neo4j at a distance in the tests: settings through the ``distance`` fixture's proxy, and the
proxy cutting every connection while bulk360 writes."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace

from neo4j import Driver

from benchmarks.latency import LatencyProxy
from bulk360.settings import Settings
from tests.helpers.cli import cli_env
from tests.helpers.services import cypher

__all__ = ["distant", "drop_connections_while_writing"]


def distant(settings: Settings, proxy: LatencyProxy) -> Settings:
    """``settings`` with Neo4j reached through ``proxy``."""
    return replace(settings, neo4j_uri=proxy.uri)


def drop_connections_while_writing(
    settings: Settings, proxy: LatencyProxy, driver: Driver, mode: str, written: str
) -> tuple[int, str, str]:
    """Run ``bulk360 run --mode <mode>`` through ``proxy`` with one writer and batches of 5;
    as soon as the Cypher ``written`` (returning one boolean, asked directly) says it has
    written, the proxy cuts every connection and refuses new ones until the run ends (its
    retries last 2 s). The run's exit code, stdout and stderr."""
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "bulk360", "run", "--mode", mode),
            *("--batch-size", "5", "--workers", "1", "--retry-seconds", "2"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(distant(settings, proxy), settings.import_dir),
    )
    try:
        deadline = time.monotonic() + 120
        while not next(iter(cypher(driver, written)[0].values())):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, f"the {mode} run wrote nothing in two minutes"
            time.sleep(0.2)
        proxy.refuse(300)
        proxy.drop()
        stdout, stderr = process.communicate(timeout=300)
    finally:
        proxy.refuse(0)
        if process.poll() is None:
            process.kill()
    return process.returncode, stdout, stderr
