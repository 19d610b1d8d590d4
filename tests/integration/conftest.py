"""A test control database with the Customer 360 sample and a type probe, built into Neo4j once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from neo4j import Driver
from psycopg import sql

from bulk360.pipeline import RunOptions, RunSummary, run
from bulk360.samples import load_sample
from bulk360.settings import Settings
from tests.conftest import cypher, run_services
from tests.integration.snapshots import Snapshot

TEST_CONTROL_DB = "bulk360_test_control"
PROBE_DB = "bulk360_type_probe"


def cli_env(settings: Settings, import_dir: Path) -> dict[str, str]:
    """The environment of a CLI child process using the test control database."""
    return {
        **os.environ,
        "ETL_DB_NAME": settings.etl_db_name,
        "BULK360_IMPORT_DIR": str(import_dir),
        "COLUMNS": "250",  # wide enough that rich does not cut the table cells asserted on
    }


def bulk360_cli(
    settings: Settings, import_dir: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a child process against the test control database."""
    env = cli_env(settings, import_dir)
    return subprocess.run(
        [sys.executable, "-m", "bulk360", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


PROBE_SQL = """
CREATE TABLE all_types (
    id integer PRIMARY KEY, small smallint, big bigint, real_value real, double_value double precision,
    exact numeric(10, 3), flag boolean, body text, short varchar(20), code char(4), day date,
    local_moment timestamp, moment timestamptz, clock time, span interval, numbers integer[],
    words text[], uid uuid, doc jsonb, address inet, raw bytea, nothing text
);
INSERT INTO all_types VALUES
    (1, -32768, 9007199254740993, 1.5, 2.718281828459045, 1234.567, true,
     E'She said "hi", then left;\\nline two, café ☕ — 日本', '', '0042', DATE '2024-02-29',
     TIMESTAMP '2024-03-10 02:30:15.123456', TIMESTAMPTZ '2024-03-10 02:30:15.5+02', TIME '23:59:58',
     INTERVAL '1 month 2 days 03:04:05', '{1,2,3}', '{"a","b;c","d,e"}',
     'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"k": [1, 2]}', '192.168.0.1', '\\xdeadbeef', NULL),
    (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, NULL, NULL);
-- Values Neo4j cannot hold as they are: counted and named by every run, never changed silently.
CREATE TABLE edge_values (
    id integer PRIMARY KEY, wide numeric(38, 10), loose numeric, approx numeric(38, 10),
    cents numeric(6, 2), whole numeric(12, 0), price money, tags text[], grid integer[]
);
INSERT INTO edge_values VALUES
    (1, 99999999999999999999999999.9999999999, 12345678901234567890.5,
     99999999999999999999999999.9999999999, 12.34, 123456789012, 12.5, '{NULL,a,NULL}',
     '{{1,2},{3,4}}'),
    (2, 1.5, 1, 0.5, 0.10, 7, NULL, '{}', '{}'),
    (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"""
EDGE_VALUE_CHANGES = {
    "tags": {"null_elements": 1, "empty_arrays": 1},
    "grid": {"nested_arrays": 1, "empty_arrays": 1},
    "approx": {"rounded": 1},
}
"""What a run counts in edge_values (``approx`` has a double override)."""


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(settings: Settings, *args: str, **env: str) -> Iterator[str]:
    """``bulk360 serve`` in a child process on a free port; yields its base URL.

    ``args`` go to ``serve``, ``env`` into its environment (``NEO4J_PASSWORD=...``). What the
    server logged must never hold the control database's password.
    """
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        log_path = Path(folder) / "serve.log"
        with log_path.open("w") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "bulk360", "serve", "--port", str(port), *args],
                env={**cli_env(settings, settings.import_dir), **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            url = f"http://127.0.0.1:{port}"
            try:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        httpx.get(url + "/", timeout=2)
                        break
                    except httpx.TransportError:
                        assert server.poll() is None, log_path.read_text()
                        assert time.monotonic() < deadline, "the API did not start within 60 s"
                        time.sleep(0.3)
                yield url
            finally:
                server.terminate()
                server.wait(timeout=30)
        assert settings.etl_db_password not in log_path.read_text()


def recreate_database(settings: Settings, database: str) -> None:
    """Drop ``database`` (closing its sessions) and create it empty."""
    with psycopg.connect(**settings.control_conninfo(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


@pytest.fixture(scope="session")
def control_settings(
    settings: Settings, pg_conninfo: dict[str, object], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """Settings of a fresh control database holding the sample rows and the type probe."""
    recreate_database(settings, TEST_CONTROL_DB)
    test_settings = replace(
        settings, etl_db_name=TEST_CONTROL_DB, import_dir=tmp_path_factory.mktemp("import")
    )
    load_sample(test_settings, "customer360")
    recreate_database(settings, PROBE_DB)
    with psycopg.connect(**{**settings.control_conninfo(), "dbname": PROBE_DB}) as conn:
        conn.execute(PROBE_SQL)  # type: ignore[arg-type]
    with psycopg.connect(**test_settings.control_conninfo()) as conn:
        conn.execute(
            "INSERT INTO source_databases (name, db_host, db_port, db_name, db_user, db_password_env)"
            " VALUES ('probe', %s, %s, %s, %s, 'ETL_DB_PASSWORD')",
            [settings.etl_db_host, settings.etl_db_port, PROBE_DB, settings.etl_db_user],
        )
        conn.execute(
            "INSERT INTO node_label_mappings (source_name, table_name, label)"
            " VALUES ('probe', 'all_types', 'TypeProbe'), ('probe', 'edge_values', 'EdgeValue')"
        )
        conn.execute(
            "INSERT INTO column_type_overrides (source_name, table_name, column_name, neo4j_type,"
            " reason) VALUES ('probe', 'edge_values', 'approx', 'double', 'used in arithmetic')"
        )
    return test_settings


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


@pytest.fixture(scope="session")
def admin_build(control_settings: Settings, neo4j_driver: Driver) -> tuple[RunSummary, Snapshot]:
    """The test control rows imported by the real neo4j-admin, and the graph it built."""
    summary = build_with_admin_mode(control_settings)
    return summary, Snapshot.take(neo4j_driver)


@pytest.fixture(scope="session")
def admin_run(admin_build: tuple[RunSummary, Snapshot]) -> RunSummary:
    """The admin run of the test control rows, Neo4j running again afterwards."""
    return admin_build[0]


@pytest.fixture(scope="session")
def admin_graph(admin_build: tuple[RunSummary, Snapshot]) -> Snapshot:
    """Every element of the graph a clean admin run of the test control rows builds."""
    return admin_build[1]


@pytest.fixture(scope="session")
def import_dir(admin_run: RunSummary) -> Path:
    assert admin_run.import_dir is not None
    return admin_run.import_dir


def fuzz_api(
    url: str,
    folder: Path,
    max_examples: int,
    headers: dict[str, str] | None = None,
    exclude: tuple[str, ...] = (),
    **values: list[Any],
) -> str:
    """Schemathesis against ``url`` with all its checks but ``exclude``; returns its output,
    fails on any failure.

    ``values`` are real parameter values (``customer_id=["5"]``) that half of the generated
    cases use, so that the fuzzer reaches past the 404s. The seed is fixed, so that CI is
    reproducible. Its working files go to ``folder``.
    """
    lines = ["seed = 360"]
    if headers:
        lines.append(
            f"headers = {{ {', '.join(f'{k} = {json.dumps(v)}' for k, v in headers.items())} }}"
        )
    lines += ["[generation]", f"max-examples = {max_examples}"]
    for name, chosen in values.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(chosen)}"]
    if values:
        lines.append("[parameters]")
        lines += [f'{name} = {{ dictionary = "{name}", probability = 0.5 }}' for name in values]
    (folder / "schemathesis.toml").write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [
            *(str(Path(sys.executable).parent / "schemathesis"), "run", f"{url}/openapi.json"),
            *("--checks", "all", "--no-color"),
            *(("--exclude-checks", ",".join(exclude)) if exclude else ()),
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    return result.stdout
