"""Health that tells the truth: ``/health`` and ``bulk360 check`` against each real failure.

Every condition is produced for real: Neo4j stopped, the ``neo4j`` database offline (a store
file removed, so the server starts but the database does not), a database that does not exist,
a wrong password, the control database refusing connections, the API stopped. The store is put
back, and Neo4j started, whatever happens.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql

from bulk360 import RunOptions, RunSummary
from bulk360.health import neo4j_driver, neo4j_problem
from bulk360.pipeline import run
from bulk360.settings import Settings
from tests.helpers.cli import bulk360_cli, cli_env
from tests.helpers.services import run_services
from tests.helpers.serving import free_port, fuzz_api, serving


def check(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``bulk360 check`` with ``env`` changes; its FAIL lines are asserted on."""
    return subprocess.run(
        [sys.executable, "-m", "bulk360", "check", *args],
        capture_output=True,
        text=True,
        env={**cli_env(settings, settings.import_dir), **env},
        check=False,
        timeout=300,
    )


def failed_lines(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """The FAIL lines of a check, by check name; the run must be a clean exit 6."""
    assert result.returncode == 6, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    found = {}
    for line in result.stdout.splitlines():
        if line.startswith("FAIL"):
            name, _, detail = line[4:].strip().partition("  ")
            found[name.strip()] = detail.strip()
    return found


@pytest.fixture(scope="module")
def api(admin_run: RunSummary, control_settings: Settings) -> Iterator[str]:
    """A healthy deployment: the newest run succeeded (other modules end with failed ones)."""
    assert run(control_settings, RunOptions(mode="csv")).status == "succeeded"
    with serving(control_settings) as url:
        yield url


def test_healthy_first(api: str, control_settings: Settings) -> None:
    result = check(control_settings, "--api-url", api)
    assert result.returncode == 0, result.stdout + result.stderr
    assert httpx.get(api + "/health").json() == {"ok": True}
    assert httpx.get(api + "/health/ready").json() == {"ok": True}


def test_an_unknown_database_and_a_wrong_password_are_named(
    api: str, control_settings: Settings
) -> None:
    unknown = failed_lines(check(control_settings, NEO4J_DATABASE="nosuchdb"))
    assert unknown["neo4j"] == (
        f"database 'nosuchdb' does not exist on Neo4j at {control_settings.neo4j_uri} "
        "(NEO4J_DATABASE)"
    )
    assert "graph counts" in unknown

    wrong = failed_lines(check(control_settings, NEO4J_PASSWORD="not-the-password"))
    assert wrong["neo4j"] == (
        f"Neo4j at {control_settings.neo4j_uri} refused user 'neo4j': check NEO4J_USERNAME and "
        "NEO4J_PASSWORD"
    )
    with serving(control_settings, NEO4J_PASSWORD="not-the-password") as refused:
        answer = httpx.get(refused + "/health", timeout=30)
        assert answer.status_code == 503
        assert answer.json() == {"ok": False, "failed": {"neo4j": wrong["neo4j"]}}
    # Neo4j locks the user for a few seconds after failed logins: the next tests log in.
    driver = neo4j_driver(control_settings)
    try:
        deadline = time.monotonic() + 60
        while neo4j_problem(driver, control_settings) is not None:
            assert time.monotonic() < deadline, "Neo4j still refuses the right password"
            time.sleep(1)
    finally:
        driver.close()


def test_the_api_stopped_is_named(control_settings: Settings) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    failed = failed_lines(check(control_settings, "--api-url", url))
    assert list(failed) == ["api"]
    assert failed["api"].startswith(f"{url}/health does not answer")


@contextmanager
def control_database_closed(settings: Settings) -> Iterator[None]:
    admin = {**settings.control_conninfo(), "dbname": "postgres"}
    name = sql.Identifier(settings.etl_db_name)
    with psycopg.connect(**admin, autocommit=True) as conn:  # type: ignore[arg-type]
        conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(name))
        try:
            yield
        finally:
            conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(name))


def test_the_control_database_refusing_connections_is_named(
    api: str, control_settings: Settings
) -> None:
    with control_database_closed(control_settings):
        answer = httpx.get(api + "/health", timeout=30)
        runs = httpx.get(api + "/runs", timeout=30)
        failed = failed_lines(check(control_settings))
    assert answer.status_code == 503 and list(answer.json()["failed"]) == ["postgres"]
    assert "cannot connect to the control database" in answer.json()["failed"]["postgres"]
    assert runs.status_code == 503 and "cannot connect" in runs.json()["detail"]
    assert failed["control database"].startswith("cannot connect to the control database")
    assert control_settings.etl_db_password not in answer.text + runs.text


def test_neo4j_stopped_then_an_offline_database_are_named(
    api: str, control_settings: Settings, tmp_path: Path
) -> None:
    uri = control_settings.neo4j_uri
    store = control_settings.neo4j_home / "data" / "databases" / control_settings.neo4j_database
    kept = store.with_name(f".{store.name}.health-test")
    run_services("neo4j", "stop")
    try:
        down = httpx.get(api + "/health", timeout=30)
        stopped = failed_lines(check(control_settings, "--api-url", api))

        # The store of database neo4j loses a file: the server starts, the database does not.
        shutil.copytree(store, kept, symlinks=True)
        (store / "neostore.nodestore.db").unlink()
        run_services("neo4j", "start")
        offline = httpx.get(api + "/health", timeout=30)
        live = httpx.get(api + "/health/live", timeout=30)
        result = check(control_settings, "--api-url", api)
        # Every answer the API gives with its database down is one its document declares and
        # shapes (not_a_server_error would flag the declared 503 itself). Generated and stateful
        # cases only: the server holds each read of an offline database 2 s before refusing it,
        # and the coverage phase's 400 boundary cases run against the live API in test_shop.
        fuzz_api(
            api,
            tmp_path,
            3,
            exclude=("not_a_server_error",),
            phases=("fuzzing", "stateful"),
            customer_id=["1"],
        )
    finally:
        run_services("neo4j", "stop")
        if kept.exists():
            shutil.rmtree(store, ignore_errors=True)
            kept.rename(store)
        run_services("neo4j", "start")

    assert down.status_code == 503 and list(down.json()["failed"]) == ["neo4j"]
    assert down.json()["failed"]["neo4j"].startswith(f"Neo4j at {uri} does not answer")
    assert stopped["neo4j"].startswith(f"Neo4j at {uri} does not answer")
    assert "api" in stopped  # the API answers, and says Neo4j does not

    expected = f"database 'neo4j' on Neo4j at {uri} is offline (An error occurred! Unable to start"
    assert offline.status_code == 503 and offline.json()["failed"]["neo4j"].startswith(expected)
    assert live.json() == {"ok": True}
    failed = failed_lines(result)
    assert failed["neo4j"].startswith(expected)
    assert {"neo4j", "graph counts", "api"} <= set(failed)
    assert check(control_settings, "--api-url", api).returncode == 0  # the store is back


def test_a_token_guards_everything_but_the_probes(control_settings: Settings) -> None:
    token = "t0ken-for-the-test"
    with serving(control_settings, BULK360_API_TOKEN=token) as url:
        for path in ("/", "/health", "/health/live", "/health/ready", "/openapi.json"):
            assert httpx.get(url + path, timeout=30).status_code == 200, path
        for header in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {token}"}):
            refused = httpx.get(url + "/runs", headers=header)
            assert refused.status_code == 401, header
            assert refused.headers["www-authenticate"] == "Bearer"
        allowed = httpx.get(url + "/runs", headers={"Authorization": f"Bearer {token}"})
        assert allowed.status_code == 200 and allowed.json()
        document = httpx.get(url + "/openapi.json").json()
        assert "HTTPBearer" in document["components"]["securitySchemes"]
        assert "401" in document["paths"]["/runs"]["get"]["responses"]
        assert "401" not in document["paths"]["/health"]["get"]["responses"]
        log = httpx.get(url + "/runs/1", headers={"Authorization": f"Bearer {token}"}).text
        assert token not in log


def test_serve_refuses_a_public_address_without_a_token(
    control_settings: Settings, tmp_path: Path
) -> None:
    refused = bulk360_cli(control_settings, tmp_path, "serve", "--host", "0.0.0.0")
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "error: refusing to serve on 0.0.0.0 without a token: set BULK360_API_TOKEN (clients "
        "then send Authorization: Bearer <token>), or pass --insecure to serve it open"
    )
    with serving(control_settings, "--host", "0.0.0.0", "--insecure") as url:
        assert httpx.get(url + "/health/live").json() == {"ok": True}
