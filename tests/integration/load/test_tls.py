"""Bolt over TLS as on Aura, against the local Neo4j: `scripts/services` gives its Bolt connector a
certificate for `localhost` signed by a local certificate authority (`.local/tls/ca.crt`), beside
plain Bolt. Trusting that authority (SSL_CERT_FILE, as for any OpenSSL client) makes `neo4j+s://`
and `bolt+s://` verify as they would against Aura; `+ssc` accepts the certificate unverified.

The module has its own control database and copies of the Customer 360 sources (a test changes a
row), and leaves the graph built over TLS by bolt mode from those copies.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from neo4j import Driver

from bulk360.settings import Settings
from tests.helpers.cli import CliResult, run_cli
from tests.helpers.databases import sample_control
from tests.helpers.services import cypher
from tests.helpers.serving import serving

TLS_CONTROL_DB = "bulk360_test_tls_control"
PREFIX = "bulk360_test_tls_"
CA = Path(__file__).resolve().parents[3] / ".local" / "tls" / "ca.crt"


@pytest.fixture(scope="module")
def tls_settings(
    settings: Settings, pg_conninfo: dict[str, object], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    assert CA.is_file(), f"{CA} is missing: scripts/services makes it when it starts Neo4j"
    return sample_control(
        settings, TLS_CONTROL_DB, tmp_path_factory.mktemp("tls"), PREFIX, "customer360"
    )


def port(settings: Settings) -> int:
    return urlsplit(settings.neo4j_uri).port or 7687


def over(settings: Settings, uri: str, *args: str, ca: Path | None = CA) -> CliResult:
    """``bulk360 <args>`` with ``NEO4J_URI=uri``, trusting ``ca`` (None: the system's CAs)."""
    env = {"NEO4J_URI": uri}
    if ca is not None:
        env["SSL_CERT_FILE"] = str(ca)
    return run_cli(settings, settings.import_dir, *args, env=env)


def nodes(driver: Driver) -> int:
    return int(cypher(driver, "MATCH (n) RETURN count(n) AS n")[0]["n"])


def test_bolt_sync_follow_verify_and_check_run_over_tls(
    tls_settings: Settings, neo4j_driver: Driver
) -> None:
    """The graph written over neo4j+s://, checked over bolt+s://, a change synced over TLS,
    `check` over +ssc (no authority trusted at all), then a change followed over TLS (after the
    check: a follow session keeps the graph newer than any manifest)."""
    secure = f"neo4j+s://localhost:{port(tls_settings)}"
    built = over(tls_settings, secure, "run", "--mode", "bolt", "--clear")
    assert built.returncode == 0, built.output
    profiles = {**tls_settings.control_conninfo(), "dbname": PREFIX + "profiles_db"}
    with psycopg.connect(**profiles, autocommit=True) as conn:  # type: ignore[arg-type]
        (accounts,) = conn.execute("SELECT count(*) FROM accounts").fetchone()  # type: ignore[misc]
    assert cypher(neo4j_driver, "MATCH (a:Account) RETURN count(a) AS n") == [{"n": accounts}]
    verified = over(tls_settings, f"bolt+s://localhost:{port(tls_settings)}", "verify")
    assert verified.returncode == 0, verified.output

    with psycopg.connect(**profiles, autocommit=True) as conn:  # type: ignore[arg-type]
        conn.execute("UPDATE accounts SET full_name = 'Over TLS' WHERE account_id = 1")
    synced = over(tls_settings, secure, "run", "--mode", "sync")
    assert synced.returncode == 0, synced.output
    assert cypher(neo4j_driver, "MATCH (a:Account {account_id: 1}) RETURN a.full_name AS n") == [
        {"n": "Over TLS"}
    ]

    checked = over(tls_settings, f"neo4j+ssc://127.0.0.1:{port(tls_settings)}", "check", ca=None)
    assert checked.returncode == 0, checked.output
    assert "ok   neo4j" in checked.stdout and "ok   graph counts" in checked.stdout

    started = over(tls_settings, secure, "follow", "--once", "--clear")
    assert started.returncode == 0, started.output
    try:
        with psycopg.connect(**profiles, autocommit=True) as conn:  # type: ignore[arg-type]
            conn.execute("UPDATE accounts SET full_name = 'Followed over TLS' WHERE account_id = 2")
        followed = over(tls_settings, secure, "follow", "--once")
        assert followed.returncode == 0, followed.output
        found = cypher(neo4j_driver, "MATCH (a:Account {account_id: 2}) RETURN a.full_name AS n")
        assert found == [{"n": "Followed over TLS"}]
    finally:
        over(tls_settings, secure, "follow", "stop", "--drop")


def test_the_api_answers_its_health_over_tls(tls_settings: Settings) -> None:
    with serving(
        tls_settings, NEO4J_URI=f"neo4j+s://localhost:{port(tls_settings)}", SSL_CERT_FILE=str(CA)
    ) as url:
        health = httpx.get(url + "/health", timeout=30)
    assert health.status_code == 200 and health.json() == {"ok": True}, health.text


def test_a_wrong_certificate_or_host_name_is_one_line_and_exit_4(
    tls_settings: Settings, neo4j_driver: Driver, tmp_path: Path
) -> None:
    """A certificate no trusted authority signed, and the right certificate reached by a name it
    does not hold: each one line, exit 4, nothing written."""
    other = tmp_path / "other-ca.crt"
    key = tmp_path / "other-ca.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=another authority",
            "-keyout",
            str(key),
            "-out",
            str(other),
        ],
        check=True,
        capture_output=True,
    )
    before = nodes(neo4j_driver)
    cases = [
        (
            f"neo4j+s://localhost:{port(tls_settings)}",
            other,
            "has a TLS certificate that is not trusted",
        ),
        (
            f"bolt+s://localhost:{port(tls_settings)}",
            None,
            "has a TLS certificate that is not trusted",
        ),
        (
            f"neo4j+s://127.0.0.1:{port(tls_settings)}",
            CA,
            "has a TLS certificate for another host name",
        ),
    ]
    for uri, ca, expected in cases:
        result = over(tls_settings, uri, "run", "--mode", "bolt", "--clear", ca=ca)
        assert result.returncode == 4, (uri, result.output)
        assert expected in result.stderr and uri in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
    assert nodes(neo4j_driver) == before
