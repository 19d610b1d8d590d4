"""Faults injected into real runs: each fails in one line, leaves the run row failed (or, with
the control database gone, a failure.json), no folder that looks complete, the graph intact,
and a rerun or ``--resume`` completes.

The runs use a control database of their own that maps the same sources as the main test
control database, plus a small source of its own (``faultsrc``) with a slow view to kill a
reader on, and a database to drop mid-run. Admin-mode faults stop Neo4j once for the group.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from neo4j import Driver
from psycopg import sql
from psycopg.rows import dict_row

from bulk360 import RunOptions, SilentReporter
from bulk360.errors import ConfigError, SourceError, TargetError
from bulk360.load.admin.warm_start import MAIN_CLASS
from bulk360.package.paths import published_runs
from bulk360.pipeline import run
from bulk360.settings import Settings
from tests.helpers.cli import cli_env
from tests.helpers.databases import recreate_database, sample_control
from tests.helpers.services import IN_CI, command_lines, run_services, wait_for
from tests.helpers.snapshots import Snapshot

FAULTS_CONTROL_DB = "bulk360_test_faults_control"
FAULT_SOURCE_DB = "bulk360_test_faultsrc"
COPIED_TABLES = {
    "source_databases": "name, db_host, db_port, db_name, db_user, db_password, db_password_env,"
    " schema_name, is_active",
    "field_exclusion_rules": "source_name, table_name, column_name, is_excluded, reason",
    "node_label_mappings": "source_name, table_name, label, key_columns, is_active",
    "relationship_mappings": "relationship_type, from_label, from_alias, to_label, to_alias,"
    " join_condition, link_source, link_table, link_alias, property_columns, is_active",
    "column_type_overrides": "source_name, table_name, column_name, neo4j_type, reason",
}
FAULT_SOURCE_SQL = """
CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL);
INSERT INTO items SELECT n, 'item ' || n FROM generate_series(1, 500) AS n;
-- About 10 s to read: a reader is still copying it when the test terminates its backend.
CREATE VIEW slow_items AS
    SELECT n AS id, (pg_sleep(0.002) IS NULL)::text AS pause FROM generate_series(1, 5000) AS n;
"""


def create_fault_source(settings: Settings) -> None:
    recreate_database(settings, FAULT_SOURCE_DB)
    with psycopg.connect(**{**settings.control_conninfo(), "dbname": FAULT_SOURCE_DB}) as conn:
        conn.execute(FAULT_SOURCE_SQL)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def faults(control_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A control database with the main test control rows and the fault source (inactive)."""
    settings = sample_control(
        control_settings, FAULTS_CONTROL_DB, tmp_path_factory.mktemp("faults")
    )
    create_fault_source(settings)
    with (
        psycopg.connect(**control_settings.control_conninfo()) as main,
        psycopg.connect(**settings.control_conninfo(), autocommit=True) as conn,
    ):
        for table, columns in COPIED_TABLES.items():
            rows = main.execute(f"SELECT {columns} FROM {table}").fetchall()  # type: ignore[arg-type]
            marks = ", ".join(["%s"] * len(columns.split(",")))
            with conn.cursor() as cur:
                cur.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)  # type: ignore[arg-type]
        conn.execute(
            "INSERT INTO source_databases (name, db_host, db_port, db_name, db_user,"
            " db_password_env) VALUES ('faultsrc', %s, %s, %s, %s, 'ETL_DB_PASSWORD')",
            [settings.etl_db_host, settings.etl_db_port, FAULT_SOURCE_DB, settings.etl_db_user],
        )
        conn.execute(
            "INSERT INTO node_label_mappings (source_name, table_name, label, key_columns,"
            " is_active) VALUES ('faultsrc', 'items', 'Item', NULL, false),"
            " ('faultsrc', 'slow_items', 'SlowItem', '{id}', false)"
        )
    return settings


def control(settings: Settings, query: str, *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(**settings.control_conninfo(), autocommit=True) as conn:
        cur = conn.cursor(row_factory=dict_row)
        cur.execute(query, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def activate(settings: Settings, label: str, active: bool) -> None:
    control(
        settings, "UPDATE node_label_mappings SET is_active = %s WHERE label = %s", active, label
    )


def last_run(settings: Settings) -> dict[str, Any]:
    return control(settings, "SELECT * FROM etl_run_logs ORDER BY run_id DESC LIMIT 1")[0]


def start_cli(
    settings: Settings, import_dir: Path, *args: str, **popen: Any
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bulk360", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(settings, import_dir),
        **popen,
    )


def cli(settings: Settings, import_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    process = start_cli(settings, import_dir, *args)
    stdout, stderr = process.communicate(timeout=600)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line an expected failure prints (and no traceback)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def no_complete_folder_of(settings: Settings, run_id: int) -> None:
    """The failed run left neither a published folder nor a partial one."""
    names = [p.name for p in settings.import_dir.iterdir()] if settings.import_dir.exists() else []
    assert not [n for n in names if n.startswith((f"run-{run_id}-", f".run-{run_id}-"))], names


# ---- faults while reading ----------------------------------------------------------------


def test_a_reader_terminated_mid_copy_fails_and_resume_starts_again(faults: Settings) -> None:
    activate(faults, "SlowItem", True)
    try:
        process = start_cli(faults, faults.import_dir, "run", "--mode", "csv")

        def copying() -> list[dict[str, Any]]:
            return control(
                faults,
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND query LIKE 'COPY%%'",
                FAULT_SOURCE_DB,
            )

        (reader,) = wait_for(copying, "the COPY of slow_items")
        control(faults, "SELECT pg_terminate_backend(%s)", reader["pid"])
        stdout, stderr = process.communicate(timeout=120)
    finally:
        activate(faults, "SlowItem", False)
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert result.returncode == 3, stdout + stderr
    line = error_line(result)
    assert line.startswith(
        "error: source 'faultsrc', table public.slow_items: reading failed: terminating connection"
    )
    failed = last_run(faults)
    assert failed["status"] == "failed" and "slow_items" in failed["error_text"]
    no_complete_folder_of(faults, failed["run_id"])

    # Not published: resuming starts again from the extraction (with the slow view inactive).
    resumed = cli(faults, faults.import_dir, "run", "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    steps = [line for line in resumed.stdout.splitlines() if line.startswith("STEP")]
    assert steps[0].endswith(f"(csv mode), resuming run {failed['run_id']}")
    assert len(steps) == 6 and "extract" in steps[2]
    row = last_run(faults)
    assert (row["status"], row["resumed_from"]) == ("succeeded", failed["run_id"])


class _DropSourceWhenExtracting(SilentReporter):
    """Drops the fault source database between validation and extraction."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def step(self, number: int, total: int, title: str) -> None:
        if title.startswith("extract"):
            with psycopg.connect(**self.settings.control_conninfo(), autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(FAULT_SOURCE_DB))
                )


def test_a_source_dropped_between_validation_and_extraction(faults: Settings) -> None:
    activate(faults, "Item", True)
    try:
        with pytest.raises(SourceError) as caught:
            run(faults, RunOptions(mode="csv"), _DropSourceWhenExtracting(faults))
        message = str(caught.value)
        assert message.startswith(f"source 'faultsrc': cannot connect to {FAULT_SOURCE_DB}")
        assert "does not exist" in message and "\n" not in message
        failed = last_run(faults)
        assert failed["status"] == "failed" and failed["error_text"] == message
        no_complete_folder_of(faults, failed["run_id"])
        create_fault_source(faults)
        again = run(faults, RunOptions(mode="csv"))
        assert again.status == "succeeded" and again.nodes["Item"] == 500
    finally:
        activate(faults, "Item", False)
        create_fault_source(faults)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[tuple[Path, Any]]:
    """A 512 KiB file system (tmpfs) for the import folder; else a 512 KiB file-size limit."""
    mount = tmp_path / "small"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode == 0:
        try:
            yield mount, None
        finally:
            subprocess.run(["umount", str(mount)], check=False)
        return

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (512 << 10, 512 << 10))

    yield mount, limit


def test_a_full_import_folder_fails_cleanly_and_a_rerun_completes(
    faults: Settings, small_disk: tuple[Path, Any]
) -> None:
    folder, limit = small_disk
    process = start_cli(faults, folder, "run", "--mode", "csv", preexec_fn=limit)
    stdout, stderr = process.communicate(timeout=300)
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert result.returncode == 4, stdout + stderr
    line = error_line(result)
    assert "failed: " + ("File too large" if limit else "No space left on device") in line
    assert line.startswith("error: source '") and "free space in the import folder" in line
    failed = last_run(faults)
    assert failed["status"] == "failed"
    assert published_runs(folder) == [] and list(folder.iterdir()) == []
    rerun = cli(faults, faults.import_dir, "run", "--mode", "csv")
    assert rerun.returncode == 0, rerun.stderr


# ---- the control database ----------------------------------------------------------------


@dataclass
class _Connections:
    settings: Settings

    def allow(self, allowed: bool) -> None:
        """Open or close the faults control database (and end its sessions when closing)."""
        with psycopg.connect(
            **{**self.settings.control_conninfo(), "dbname": "postgres"}, autocommit=True
        ) as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
                    sql.Identifier(FAULTS_CONTROL_DB), sql.SQL(str(allowed).lower())
                )
            )
            if not allowed:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    [FAULTS_CONTROL_DB],
                )


def test_the_control_database_unreachable_when_a_run_starts(
    faults: Settings, tmp_path: Path
) -> None:
    gate = _Connections(faults)
    gate.allow(False)
    try:
        result = cli(faults, tmp_path, "run", "--mode", "csv")
    finally:
        gate.allow(True)
    assert result.returncode == 2
    assert error_line(result).startswith(
        f"error: cannot connect to the control database {FAULTS_CONTROL_DB} at "
    )
    assert faults.etl_db_password not in result.stderr
    assert list(tmp_path.iterdir()) == []


class _LoseControlWhenRecording(SilentReporter):
    def __init__(self, gate: _Connections) -> None:
        self.gate = gate

    def step(self, number: int, total: int, title: str) -> None:
        if title.startswith("record"):
            self.gate.allow(False)


def test_the_control_database_lost_when_a_run_ends_then_resume(faults: Settings) -> None:
    gate = _Connections(faults)
    try:
        with pytest.raises(ConfigError) as caught:
            run(faults, RunOptions(mode="csv"), _LoseControlWhenRecording(gate))
    finally:
        gate.allow(True)
    message = str(caught.value)
    assert message.startswith(f"cannot connect to the control database {FAULTS_CONTROL_DB} at ")
    assert "the control database could not record this failure" in message
    stale = last_run(faults)
    assert stale["status"] == "running"  # nothing could say otherwise
    folder = Path(stale["import_dir"])
    failure = json.loads((folder / "failure.json").read_text())
    assert failure["run_id"] == stale["run_id"] and failure["error"] in message

    # A changed file is found before anything is loaded: resuming refuses.
    node_file = folder / "nodes" / "Tag.csv"
    original = node_file.read_bytes()
    node_file.write_bytes(original + b"99,extra\n")
    try:
        tampered = cli(faults, faults.import_dir, "run", "--resume", str(stale["run_id"]))
    finally:
        node_file.write_bytes(original)
    assert tampered.returncode == 5
    assert "differs from its manifest (SHA-256); start a new run" in error_line(tampered)
    # The next run found the stale row and marked it failed with the text of failure.json.
    found = control(faults, "SELECT * FROM etl_run_logs WHERE run_id = %s", stale["run_id"])[0]
    assert found["status"] == "failed" and found["error_text"] == failure["error"]

    resumed = cli(faults, faults.import_dir, "run", "--resume", str(stale["run_id"]))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    steps = [line for line in resumed.stdout.splitlines() if line.startswith("STEP")]
    assert len(steps) == 3 and "verify" in steps[1] and "record" in steps[2]
    assert not (folder / "failure.json").exists()
    done = last_run(faults)
    assert (done["status"], done["resumed_from"]) == ("succeeded", stale["run_id"])


# ---- faults during the admin import --------------------------------------------------------


def admin_processes(home: Path) -> list[int]:
    """Pids of neo4j-admin JVMs (the launcher and the import, or the JVM admin mode started to
    wait for the import) of ``home``."""
    started = ("AdminTool", "Neo4jAdminCommand", MAIN_CLASS)
    return [
        pid
        for pid, text in command_lines().items()
        if str(home) in text and any(name in text for name in started)
    ]


def admin_log_shows(settings: Settings, stage: str) -> bool:
    logs = list(settings.import_dir.glob("run-*/neo4j-admin.log"))
    newest = max(logs, key=lambda p: p.stat().st_mtime, default=None)
    return newest is not None and stage in newest.read_text(errors="replace")


def start_admin_run(settings: Settings) -> subprocess.Popen[str]:
    for log in settings.import_dir.glob("run-*/neo4j-admin.log"):
        log.unlink()
    process = start_cli(settings, settings.import_dir, "run", "--mode", "admin", "--overwrite")
    # Right after its node stage, as a crash or an impatient operator would.
    wait_for(lambda: admin_log_shows(settings, "Relationships, started"), "the node stage")
    return process


def test_an_admin_import_killed_or_interrupted_keeps_the_graph_and_resume_completes(
    faults: Settings, neo4j_driver: Driver, admin_graph: Snapshot
) -> None:
    home = faults.neo4j_home
    before = Snapshot.take(neo4j_driver)  # whatever graph an earlier test left: it must survive
    assert sum(before.nodes.values()) > 0
    run_services("neo4j", "stop")
    try:
        # 1. Both neo4j-admin JVMs killed.
        process = start_admin_run(faults)
        for pid in admin_processes(home):
            os.kill(pid, signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=120)
        killed = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        assert killed.returncode == 4, stdout + stderr
        assert error_line(killed).startswith("error: neo4j-admin import failed")
        assert last_run(faults)["status"] == "failed"

        # 2. SIGTERM to bulk360 alone: it stops the whole neo4j-admin process tree.
        process = start_admin_run(faults)
        assert admin_processes(home)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 130, stdout + stderr
        assert "interrupted (SIGTERM)" in stderr and "Traceback" not in stderr
        wait_for(lambda: not admin_processes(home), "the end of every neo4j-admin JVM", 30)
        interrupted = last_run(faults)
        assert interrupted["status"] == "failed"
        assert interrupted["error_text"] == "interrupted (SIGTERM)"
        leftovers = [p.name for p in (home / "data" / "databases").iterdir()]
        assert sorted(leftovers) == ["neo4j", "store_lock", "system"], leftovers
    finally:
        run_services("neo4j", "start")
    assert Snapshot.take(neo4j_driver) == before  # the previous graph, intact

    run_services("neo4j", "stop")
    try:
        resumed = cli(faults, faults.import_dir, "run", "--resume")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        steps = [
            line.split(" ", 2)[2] for line in resumed.stdout.splitlines() if line.startswith("STEP")
        ]
        assert steps[1].startswith(f"verify run {interrupted['run_id']}'s import folder")
        assert [s.split(" ")[0] for s in steps[2:]] == ["neo4j-admin", "swap", "record"]
    finally:
        run_services("neo4j", "start")
    assert Snapshot.take(neo4j_driver) == admin_graph  # the graph a clean admin run builds


@pytest.fixture
def home_on_a_small_disk(faults: Settings, tmp_path: Path) -> Iterator[Path]:
    """A Neo4j home whose jars are the real ones and whose data folder is a 64 MiB tmpfs."""
    home = tmp_path / "neo4j"
    (home / "data").mkdir(parents=True)
    for folder in ("bin", "lib"):
        (home / folder).symlink_to(faults.neo4j_home / folder)
    (home / "conf").mkdir()
    (home / "run").mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(home / "data")],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        message = f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield home
    finally:
        subprocess.run(["umount", str(home / "data")], check=False)


def test_an_admin_import_that_would_fill_the_disk_is_refused(
    faults: Settings, home_on_a_small_disk: Path
) -> None:
    settings = replace(faults, neo4j_home=home_on_a_small_disk)
    with pytest.raises(TargetError) as caught:
        run(settings, RunOptions(mode="admin", overwrite=True))
    message = str(caught.value)
    assert message.startswith(f"not enough disk space for the import: {home_on_a_small_disk}")
    assert message.endswith("nothing was changed")
    assert list((home_on_a_small_disk / "data").iterdir()) == [
        home_on_a_small_disk / "data" / "databases"
    ]
    failed = last_run(faults)
    assert failed["status"] == "failed" and failed["published_at"] is not None  # resumable
