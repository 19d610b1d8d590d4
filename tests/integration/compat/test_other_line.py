"""The other Neo4j line, beside the suite's: 5.26 LTS when the suite runs on the default
calendar release (2026.08.1), that release when the suite runs on the LTS (NEO4J_VERSION=5.26.30).

`scripts/services` assembles the other line's release from Maven Central into its own folder
(`.local/neo4j` for the LTS, `.local/neo4j-<version>` for another) with the JDK that line needs
(17 for 5.26, 21 or newer for a calendar release: Temurin 25 here), and starts it on ports of its
own. bulk360 then runs on it, through its command line, what a user of that line needs: admin
mode from a CSV and from a Parquet package (the staging store and its swap), verify, bolt, sync, follow, and the seed's ten questions
under both Cypher 5 and, where the server offers it, Cypher 25. The server is stopped at the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from neo4j import Driver, GraphDatabase

from bulk360.apps.analytics import DEFAULT_PARAMETERS, questions
from bulk360.settings import NEO4J_DEFAULT, NEO4J_LTS, Settings, neo4j_version
from tests.helpers.cli import CliResult, run_cli
from tests.helpers.databases import add_type_probe, sample_control
from tests.helpers.services import ROOT, cypher, run_services, services_process
from tests.helpers.snapshots import Snapshot

SUITE = neo4j_version(ROOT / ".env")
"""The release the suite's own server runs (as bulk360's settings read it)."""
VERSION = NEO4J_DEFAULT if SUITE == NEO4J_LTS else NEO4J_LTS
CALENDAR = not VERSION.startswith("5.")
BOLT, HTTP = 7691, 7478
LINE = {
    "NEO4J_VERSION": VERSION,
    "NEO4J_BOLT_PORT": str(BOLT),
    "NEO4J_HTTP_PORT": str(HTTP),
    "NEO4J_URI": f"bolt://127.0.0.1:{BOLT}",
}
HOME = ROOT / ".local" / ("neo4j" if VERSION == NEO4J_LTS else f"neo4j-{VERSION}")
CONTROL_DB = "bulk360_test_compat_control"
PREFIX = "bulk360_test_compat_"


def services(*args: str) -> None:
    run_services(*args, env=LINE)


@pytest.fixture(scope="module")
def line(settings: Settings, neo4j_driver: Driver) -> Iterator[Driver]:
    """The calendar release running on its own ports (stopped afterwards)."""
    services("neo4j", "start")
    try:
        with GraphDatabase.driver(
            LINE["NEO4J_URI"], auth=(settings.neo4j_username, settings.neo4j_password)
        ) as driver:
            yield driver
    finally:
        services("neo4j", "stop")


@pytest.fixture(scope="module")
def compat(
    settings: Settings,
    control_settings: Settings,
    pg_conninfo: dict[str, object],
    tmp_path_factory: pytest.TempPathFactory,
) -> Settings:
    """The Customer 360 sample and the type probe (whose database ``control_settings`` made)."""
    ours = sample_control(
        settings, CONTROL_DB, tmp_path_factory.mktemp("compat"), PREFIX, "customer360"
    )
    add_type_probe(ours)
    return ours


def on_line(settings: Settings, *args: str) -> CliResult:
    # NEO4J_HOME is left to its default, which NEO4J_VERSION names.
    return run_cli(settings, settings.import_dir, *args, env=LINE)


def test_the_line_is_the_release_asked_for_on_its_own_jdk(line: Driver) -> None:
    (kernel,) = cypher(
        line,
        "CALL dbms.components() YIELD name, versions, edition "
        "WHERE name = 'Neo4j Kernel' RETURN versions, edition",
    )
    assert kernel == {"versions": [VERSION], "edition": "community"}
    # A calendar release lists its Cypher versions (5 and 25); 5.26 lists none and speaks 5.
    languages = cypher(
        line, "CALL dbms.components() YIELD name, versions WHERE name = 'Cypher' RETURN versions"
    )
    offered = set(languages[0]["versions"]) if languages else {"5"}
    assert offered == ({"5", "25"} if CALENDAR else {"5"}), offered
    java = Path((HOME / "java-home").read_text().strip())
    release = (java / "release").read_text()
    major = int(release.split('JAVA_VERSION="')[1].split(".")[0].split('"')[0])
    assert major >= 21 if CALENDAR else major == 17, release
    assert bool(list((HOME / "plugins").glob("apoc*.jar"))) != CALENDAR  # APOC on 5.26 only


def admin_build(compat: Settings, line: Driver, *options: str) -> tuple[dict[str, Any], Snapshot]:
    """An admin run on the line (server stopped for it), and the graph it built."""
    services("neo4j", "stop")
    try:
        built = on_line(compat, "run", "--mode", "admin", "--overwrite", "--json", *options)
    finally:
        services("neo4j", "start")
    assert built.returncode == 0, built.output
    summary = json.loads(built.stdout)
    assert summary["status"] == "succeeded" and summary["ledger_balanced"], summary
    return summary, Snapshot.take(line)


def test_admin_mode_builds_the_graph_on_the_line_from_either_package(
    compat: Settings, line: Driver
) -> None:
    """The line's neo4j-admin (run by bulk360 on the line's JDK) imports a CSV package, then a
    Parquet one, into a staging store and swaps it in: the same graph but for the values its
    Parquet reader stores otherwise (empty strings, empty arrays; named by the run), and
    verify finds every count of the manifest."""
    _, from_csv = admin_build(compat, line)
    summary, from_parquet = admin_build(compat, line, "--package-format", "parquet")
    assert any("empty strings" in line for line in summary["values_changed"])
    expected = from_csv.without_empty_strings()
    assert from_parquet.without_empty_arrays().differences(expected) == []
    assert from_parquet.without_empty_arrays() == expected
    verified = on_line(compat, "verify")
    assert verified.returncode == 0, verified.output
    assert "graph matches the manifest" in verified.output


def _rows(driver: Driver, text: str) -> list[str]:
    found = cypher(driver, text, **DEFAULT_PARAMETERS)
    return sorted(json.dumps(r, sort_keys=True, default=str) for r in found)


def test_the_ten_questions_answer_alike_under_cypher_5_and_25(
    compat: Settings, line: Driver
) -> None:
    """On the admin-built graph (previous test): every shipped question returns rows, the same
    rows whether the server parses it as Cypher 5 or (on a calendar release) as Cypher 25;
    `bulk360 query` runs them."""
    for question in questions():
        five = _rows(line, "CYPHER 5 " + question.cypher)
        assert five, question.name
        if CALENDAR:
            assert _rows(line, "CYPHER 25 " + question.cypher) == five, question.name
    asked = on_line(compat, "query", "1")
    assert asked.returncode == 0, asked.output


def test_bolt_sync_and_follow_on_the_calendar_line(compat: Settings, line: Driver) -> None:
    """A bolt build, a change written by sync, and one applied by follow."""
    built = on_line(compat, "run", "--mode", "bolt", "--clear")
    assert built.returncode == 0, built.output
    profiles = {**compat.control_conninfo(), "dbname": PREFIX + "profiles_db"}

    def change(name: str, account: int) -> None:
        with psycopg.connect(**profiles, autocommit=True) as conn:  # type: ignore[arg-type]
            conn.execute(
                "UPDATE accounts SET full_name = %s WHERE account_id = %s", [name, account]
            )

    def name_of(account: int) -> Any:
        found = cypher(
            line, "MATCH (a:Account {account_id: $id}) RETURN a.full_name AS n", id=account
        )
        return found[0]["n"]

    change(f"Synced on {VERSION}", 1)
    synced = on_line(compat, "run", "--mode", "sync")
    assert synced.returncode == 0, synced.output
    assert name_of(1) == f"Synced on {VERSION}"

    started = on_line(compat, "follow", "--once", "--clear")
    assert started.returncode == 0, started.output
    try:
        change(f"Followed on {VERSION}", 2)
        followed = on_line(compat, "follow", "--once")
        assert followed.returncode == 0, followed.output
        assert name_of(2) == f"Followed on {VERSION}"
    finally:
        on_line(compat, "follow", "stop", "--drop")


def test_a_release_maven_does_not_serve_or_a_store_of_the_other_line_is_one_line(
    line: Driver, neo4j_driver: Driver, settings: Settings
) -> None:
    """Nothing is half-installed for a version Maven Central does not serve, and a home whose
    store one line wrote is not turned into the other's; the running servers answer."""
    unknown = "2026.99.9"
    result = services_process(
        "neo4j", "start", env={**LINE, "NEO4J_VERSION": unknown, "NEO4J_BOLT_PORT": "7693"}
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"Maven Central does not serve Neo4j {unknown}" in lines[0], lines
    assert not (ROOT / ".local" / f"neo4j-{unknown}").exists()

    result = services_process(
        "neo4j", "start", env={**LINE, "NEO4J_HOME": str(settings.neo4j_home)}
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"holds a store written by Neo4j {SUITE}" in lines[0], lines
    assert cypher(neo4j_driver, "RETURN 1 AS one") == [{"one": 1}]
    assert cypher(line, "RETURN 1 AS one") == [{"one": 1}]
