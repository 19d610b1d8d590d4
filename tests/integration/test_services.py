"""The local services that scripts/services starts: real PostgreSQL, real Neo4j 5.26."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import uuid
from dataclasses import replace
from pathlib import Path

import httpx
import psycopg
import pytest
from dotenv import dotenv_values
from neo4j import Driver
from psycopg import sql

from bulk360.load.admin.neo4j_admin import ImportRequest, Neo4jAdmin
from bulk360.load.admin.warm_start import MAIN_CLASS
from bulk360.settings import NEO4J_DEFAULT, NEO4J_LTS, Settings
from tests.helpers.services import ROOT, command_lines, cypher, run_services, wait_for


def test_postgres_answers_and_a_database_can_be_created_and_dropped(
    pg_conninfo: dict[str, object],
) -> None:
    name = f"bulk360_probe_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(**pg_conninfo, autocommit=True) as conn:  # type: ignore[arg-type]
        assert conn.info.server_version >= 130000
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        exists = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [name])
        assert exists.fetchone() == (1,)
        conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
        gone = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [name])
        assert gone.fetchone() == (0,)


def test_neo4j_is_the_release_asked_for(neo4j_driver: Driver, settings: Settings) -> None:
    """NEO4J_VERSION's release (the default's), with APOC on the LTS line only."""
    records = cypher(neo4j_driver, "CALL dbms.components() YIELD name, versions")
    versions = {r["name"]: r["versions"][0] for r in records}
    asked = settings.environment.get("NEO4J_VERSION") or NEO4J_DEFAULT
    assert versions["Neo4j Kernel"] == asked
    procedures = cypher(neo4j_driver, "SHOW PROCEDURES YIELD name WHERE name STARTS WITH 'apoc.'")
    assert bool(procedures) == (asked == NEO4J_LTS)


def test_neo4j_admin_imports_csv_into_a_stopped_database(
    neo4j_driver: Driver, settings: Settings, tmp_path: Path, stopped_neo4j: None
) -> None:
    people = tmp_path / "people.csv"
    people.write_text('id:ID(Person),name,born:int\n1,"Ada, Countess",1815\n2,Alan,1912\n')
    knows = tmp_path / "knows.csv"
    knows.write_text(":START_ID(Person),:END_ID(Person),:TYPE,since:int\n1,2,KNOWS,1936\n")
    result = subprocess.run(
        [
            str(settings.neo4j_admin),
            "database",
            "import",
            "full",
            f"--nodes=Person={people}",
            f"--relationships={knows}",
            "--overwrite-destination=true",
            f"--report-file={tmp_path / 'import.report'}",
            settings.neo4j_database,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    run_services("neo4j", "start")

    nodes = cypher(
        neo4j_driver,
        "MATCH (n) RETURN labels(n) AS labels, n.name AS name, n.born AS born ORDER BY born",
    )
    assert [(r["labels"], r["name"], r["born"]) for r in nodes] == [
        (["Person"], "Ada, Countess", 1815),
        (["Person"], "Alan", 1912),
    ]
    rels = cypher(
        neo4j_driver,
        "MATCH (a)-[r]->(b) RETURN a.name AS a, type(r) AS type, r.since AS since, b.name AS b",
    )
    assert [(r["a"], r["type"], r["since"], r["b"]) for r in rels] == [
        ("Ada, Countess", "KNOWS", 1936, "Alan")
    ]


def waiting_admins(home: Path) -> list[int]:
    """Pids of neo4j-admin JVMs of ``home`` that wait for their import (admin mode's warm start)."""
    return [
        pid for pid, text in command_lines().items() if str(home) in text and MAIN_CLASS in text
    ]


def small_import(tmp_path: Path) -> ImportRequest:
    people = tmp_path / "Person.csv"
    people.write_text(":ID(Person),id:long,name:string\n1,1,Ada\n2,2,Grace\n3,3,Édouard\n")
    knows = tmp_path / "KNOWS.csv"
    knows.write_text(":START_ID(Person),:END_ID(Person),since:int\n1,2,1970\n2,3,1999\n")
    return ImportRequest(
        nodes=[("Person", people)],
        relationships=[("KNOWS", knows)],
        multiline=[],
        report_file=tmp_path / "report",
        log_file=tmp_path / "log",
        tolerance=0,
    )


def drop_probe_database(settings: Settings) -> None:
    for folder in ("databases", "transactions"):
        shutil.rmtree(settings.neo4j_home / "data" / folder / "bulk360probe", ignore_errors=True)


@pytest.mark.usefixtures("stopped_neo4j_for_class")
class TestNeo4jAdminOfAStoppedServer:
    """neo4j-admin as admin mode runs it, into a probe database (one stop for the class)."""

    def test_admin_loader_imports_large_files_with_and_without_quoted_line_breaks(
        self, settings: Settings, tmp_path: Path
    ) -> None:
        # Over 4 MiB without a single quote: neo4j-admin's per-file multiline format (v2) fails on
        # such a file; bulk360 must import it next to a file whose text holds line breaks.
        plain = tmp_path / "Plain.csv"
        with plain.open("w") as handle:
            handle.write(":ID(Plain),id:long,name:string\n")
            handle.writelines(
                f"{i},{i},row number {i} of a file without quotes\n" for i in range(120_000)
            )
        assert plain.stat().st_size > 4 * 2**20
        notes = tmp_path / "Note.csv"
        notes.write_text(
            ':ID(Note),id:long,body:string\n1,1,"two\nlines"\n2,2,"a ""quote"""\n3,3,\n'
        )
        neo4j_admin = Neo4jAdmin(replace(settings, neo4j_database="bulk360probe"))
        request = ImportRequest(
            nodes=[("Plain", plain), ("Note", notes)],
            relationships=[],
            multiline=[plain, notes],
            report_file=tmp_path / "report",
            log_file=tmp_path / "log",
            tolerance=0,
        )
        result = neo4j_admin.import_into("bulk360probe", request)
        assert (result.nodes, result.relationships, result.bad_entries) == (120_003, 0, 0)
        assert result.properties == 120_000 * 2 + 2 + 2 + 1
        drop_probe_database(settings)

    def test_neo4j_admin_started_before_its_files_exist_imports_them_when_they_do(
        self, settings: Settings, tmp_path: Path
    ) -> None:
        home = settings.neo4j_home
        neo4j_admin = Neo4jAdmin(replace(settings, neo4j_database="bulk360probe"))
        assert not waiting_admins(home)
        neo4j_admin.warm_up()
        try:
            # Started, and waiting: the files are not written yet.
            [pid] = wait_for(lambda: waiting_admins(home), "the JVM's start", 30)
            request = small_import(tmp_path)
            result = neo4j_admin.import_into("bulk360probe", request)
        finally:
            drop_probe_database(settings)
        assert (result.nodes, result.relationships, result.properties) == (3, 2, 8)
        assert result.started.startswith("AdminTool, started during extraction")
        assert not waiting_admins(home)  # that JVM ran the import and ended
        log = request.log_file.read_text()
        assert "IMPORT DONE" in log and f"{request.nodes[0][1]}" in log

        # A JVM that died while it waited: the import starts one of its own.
        neo4j_admin.warm_up()
        [pid] = wait_for(lambda: waiting_admins(home), "the JVM's start", 30)
        os.kill(pid, signal.SIGKILL)
        try:
            again = neo4j_admin.import_into("bulk360probe", small_import(tmp_path))
        finally:
            drop_probe_database(settings)
        assert (again.nodes, again.relationships) == (3, 2)
        assert not again.started.startswith("AdminTool, started during extraction")

        # A run that fails before its import stops the JVM that waited for it.
        neo4j_admin.warm_up()
        wait_for(lambda: waiting_admins(home), "the JVM's start", 30)
        neo4j_admin.close()
        assert not waiting_admins(home)
        assert not list(settings.cache_dir.glob("neo4j-admin-*.tmp"))


def our_processes() -> list[str]:
    """Command lines of running processes that belong to this checkout's services (the Spark
    session the test process itself holds, a client, is not one of them)."""
    marker = str(ROOT / ".local")
    return [
        text
        for text in command_lines().values()
        if marker in text and "org.apache.spark.deploy.SparkSubmit" not in text
    ]


def test_up_twice_then_down_leaves_nothing_running(
    pg_conninfo: dict[str, object], neo4j_driver: Driver
) -> None:
    run_services("up")
    second = run_services("up")
    assert "PostgreSQL: running" in second.stdout
    assert "Neo4j: running" in second.stdout
    assert "starting" not in second.stdout
    try:
        run_services("down")
        assert our_processes() == []
        status = subprocess.run(
            [str(ROOT / "scripts" / "services"), "status"], capture_output=True, text=True
        )
        assert status.returncode != 0
        assert "stopped" in status.stdout
    finally:
        run_services("up")
    neo4j_driver.verify_connectivity()


def test_neo4j_browser_answers_on_loopback_and_nothing_listens_beyond_it(
    neo4j_driver: Driver, settings: Settings
) -> None:
    env = dotenv_values(ROOT / ".env") if (ROOT / ".env").exists() else {}
    port = int(os.environ.get("NEO4J_HTTP_PORT") or env.get("NEO4J_HTTP_PORT") or 7474)
    page = httpx.get(f"http://127.0.0.1:{port}/browser/", timeout=30)
    assert page.status_code == 200 and "<title>Neo4j Browser</title>" in page.text
    discovery = httpx.get(f"http://127.0.0.1:{port}/", timeout=30).json()
    assert discovery["bolt_direct"].startswith("bolt://") and discovery["neo4j_version"]
    # Every port the server's JVM listens on is a loopback one.
    pid = (settings.neo4j_home / "run" / "neo4j.pid").read_text().strip()
    listening = subprocess.run(
        ["ss", "-Hltnp"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    # IPv4 addresses on a dual-stack socket are shown as [::ffff:127.0.0.1]:port.
    mine = [
        line.split()[3].replace("[::ffff:", "").replace("]", "")
        for line in listening
        if f"pid={pid}," in line
    ]
    assert f"127.0.0.1:{port}" in mine and len(mine) >= 2, listening
    assert all(address.startswith("127.0.0.1:") for address in mine), mine
