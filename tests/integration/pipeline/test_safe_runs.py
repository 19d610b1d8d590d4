"""Runs that are safe to leave alone: shared import folders, the schema-drift gate, strict
values, and a ledger that fails a run whose graph does not hold what was written.

Real PostgreSQL and Neo4j. The schema changes are made in the sample's own source databases and
undone in ``finally`` blocks; the ledger test rebuilds the graph over Bolt when it is done.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from neo4j import Driver

from bulk360 import RunOptions, RunSummary, SilentReporter
from bulk360.errors import IntegrityError
from bulk360.package.paths import published_runs
from bulk360.pipeline import run
from bulk360.settings import Settings
from tests.helpers.cli import bulk360_cli
from tests.helpers.databases import sample_control
from tests.helpers.services import cypher

OTHER_CONTROL_DB = "bulk360_test_other_control"


def make_control(settings: Settings, name: str, import_dir: Path) -> Settings:
    """A new control database mapping only the type probe, sharing ``import_dir``."""
    other = sample_control(settings, name, import_dir)
    with psycopg.connect(**other.control_conninfo(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO source_databases (name, db_host, db_port, db_name, db_user,"
            " db_password_env) VALUES ('probe', %s, %s, 'bulk360_type_probe', %s, 'ETL_DB_PASSWORD')",
            [settings.etl_db_host, settings.etl_db_port, settings.etl_db_user],
        )
        conn.execute(
            "INSERT INTO node_label_mappings (source_name, table_name, label)"
            " VALUES ('probe', 'all_types', 'TypeProbe')"
        )
    return other


def last_run(settings: Settings) -> dict[str, Any]:
    with psycopg.connect(**settings.control_conninfo(), row_factory=psycopg.rows.dict_row) as conn:
        row = conn.execute("SELECT * FROM etl_run_logs ORDER BY run_id DESC LIMIT 1").fetchone()
    assert row is not None
    return row


def test_control_databases_sharing_an_import_folder_never_collide(
    admin_run: RunSummary, control_settings: Settings
) -> None:
    shared = control_settings.import_dir
    before = {p.name for p in published_runs(shared)}
    assert before  # the main control database's runs, numbered from 1 like the other's
    other = make_control(control_settings, OTHER_CONTROL_DB, shared)
    for _ in range(3):
        result = bulk360_cli(other, shared, "run", "--mode", "csv")
        assert result.returncode == 0, result.stderr
    after = {p.name for p in published_runs(shared)}
    assert before <= after  # nothing of the first control database was pruned
    theirs = sorted(after - before)
    assert [name.split("-")[1] for name in theirs] == ["2", "3"]  # the newest two of its own
    assert (shared / "current").resolve() == (shared / theirs[-1]).resolve()

    # Created again, the control database numbers its runs from 1 again: a new folder.
    again = make_control(control_settings, OTHER_CONTROL_DB, shared)
    result = bulk360_cli(again, shared, "run", "--mode", "csv")
    assert result.returncode == 0, result.stderr
    newest = {p.name for p in published_runs(shared)} - after
    assert [name.split("-")[1] for name in newest] == ["1"]
    assert before | set(theirs) <= {p.name for p in published_runs(shared)}
    manifest = json.loads((shared / newest.pop() / "manifest.json").read_text())
    assert manifest["control"]["database"] == OTHER_CONTROL_DB


@contextmanager
def source_sql(settings: Settings, database: str, *undo: str) -> Iterator[psycopg.Connection]:
    """A connection to a source database; ``undo`` statements run when the block ends."""
    conninfo = {**settings.control_conninfo(), "dbname": database}
    with psycopg.connect(**conninfo, autocommit=True) as conn:  # type: ignore[arg-type]
        try:
            yield conn
        finally:
            for statement in undo:
                conn.execute(statement)  # type: ignore[arg-type]


def test_a_new_source_column_stops_the_run_until_a_rule_covers_it(
    admin_run: RunSummary, control_settings: Settings, tmp_path: Path
) -> None:
    settings = control_settings
    undo = (
        "ALTER TABLE accounts DROP COLUMN IF EXISTS ssn",
        "ALTER TABLE accounts DROP COLUMN IF EXISTS nickname",
        "ALTER TABLE accounts DROP COLUMN IF EXISTS secret_note",
        "ALTER TABLE plans ALTER COLUMN max_devices TYPE integer",
    )
    control = psycopg.connect(**settings.control_conninfo(), autocommit=True)
    try:
        with source_sql(settings, "profiles_db", *undo) as profiles:
            profiles.execute("ALTER TABLE accounts ADD COLUMN ssn text DEFAULT '078-05-1120'")
            out = tmp_path / "import"
            stopped = bulk360_cli(settings, out, "run", "--mode", "csv")
            assert stopped.returncode == 2, stopped.stdout + stopped.stderr
            assert "Traceback" not in stopped.stderr
            assert stopped.stderr.startswith(
                "error: 1 schema change since the last succeeded run stops the run before "
                "anything is read"
            )
            assert (
                "source 'profiles', table public.accounts: new column 'ssn' (text) since run"
                in stopped.stderr
            )
            assert "VALUES ('profiles', 'accounts', 'ssn', false, 'reviewed')" in stopped.stderr
            assert not out.exists() or not any(out.iterdir())  # nothing was read or written
            assert last_run(settings)["status"] == "failed"
            plan = bulk360_cli(settings, out, "plan")
            assert plan.returncode == 2 and "STOPS A RUN: source 'profiles'" in plan.stdout

            # An exclusion rule covers it: the run goes through and the column stays home.
            control.execute(
                "INSERT INTO field_exclusion_rules (source_name, table_name, column_name, reason)"
                " VALUES ('profiles', 'accounts', 'ssn', 'personal data')"
            )
            excluded = bulk360_cli(settings, out, "run", "--mode", "csv")
            assert excluded.returncode == 0, excluded.stderr
            folder = Path(last_run(settings)["import_dir"])
            assert b"078-05-1120" not in (folder / "nodes" / "Account.csv").read_bytes()

            # A keep rule covers another; a third without a rule is let through knowingly.
            profiles.execute("ALTER TABLE accounts ADD COLUMN nickname text DEFAULT 'nick'")
            profiles.execute("ALTER TABLE accounts ADD COLUMN secret_note text DEFAULT 'psst'")
            control.execute(
                "INSERT INTO field_exclusion_rules"
                " (source_name, table_name, column_name, is_excluded, reason)"
                " VALUES ('profiles', 'accounts', 'nickname', false, 'reviewed')"
            )
            accepted = bulk360_cli(settings, out, "run", "--mode", "csv", "--accept-schema-changes")
            assert accepted.returncode == 0, accepted.stderr
            row = last_run(settings)
            assert len(row["accepted_schema_changes"]) == 1
            assert "new column 'secret_note'" in row["accepted_schema_changes"][0]
            with (Path(row["import_dir"]) / "nodes" / "Account.csv").open() as accounts:
                header = accounts.readline()
            assert "nickname:string" in header and "secret_note:string" in header
            shown = bulk360_cli(settings, out, "runs", "show", str(row["run_id"]))
            assert "accepted schema change: source 'profiles'" in shown.stdout

            # A changed type stops the next run too.
            profiles.execute("ALTER TABLE plans ALTER COLUMN max_devices TYPE bigint")
            changed = bulk360_cli(settings, out, "run", "--mode", "csv")
            assert changed.returncode == 2
            assert "column 'max_devices' changed type from integer to bigint" in changed.stderr
    finally:
        control.execute(
            "DELETE FROM field_exclusion_rules WHERE column_name IN ('ssn', 'nickname')"
        )
        control.close()
    # With the columns gone again, the next run only notes that they were dropped.
    again = bulk360_cli(settings, tmp_path / "again", "run", "--mode", "csv")
    assert again.returncode == 0, again.stderr
    assert "column 'secret_note' was dropped since run" in again.stdout


def test_strict_values_fails_before_anything_is_published(
    admin_run: RunSummary, control_settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "import"
    result = bulk360_cli(control_settings, out, "run", "--mode", "csv", "--strict-values")
    assert result.returncode == 5, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: --strict-values: 3 columns hold values")
    assert "probe.public.edge_values.tags had NULL elements: dropped" in result.stderr
    assert published_runs(out) == [] and not any(p.name.endswith(".partial") for p in out.iterdir())
    assert last_run(control_settings)["status"] == "failed"


class _DeleteATagOnceWritten(SilentReporter):
    """Another writer deletes a node between bolt mode's node and relationship batches."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver

    @contextmanager
    def rows_progress(self, totals: dict[str, int]) -> Iterator[Callable[[str, int], None]]:
        done: dict[str, int] = {}

        def advance(name: str, rows: int) -> None:
            done[name] = done.get(name, 0) + rows
            if name == "Tag" and done[name] == totals[name]:
                cypher(self.driver, "MATCH (t:Tag {tag_id: 1}) DETACH DELETE t")

        yield advance


def test_a_graph_that_does_not_hold_what_was_written_fails_the_ledger(
    admin_run: RunSummary, control_settings: Settings, neo4j_driver: Driver
) -> None:
    options = RunOptions(mode="bolt", clear=True, workers=2)
    with pytest.raises(IntegrityError, match="does not balance") as caught:
        run(control_settings, options, _DeleteATagOnceWritten(neo4j_driver))
    message = str(caught.value)
    assert ":Tag read 8" in message and "(graph holds 7)" in message
    assert "[:TAGGED_WITH] 481 written but the graph holds" in message
    row = last_run(control_settings)
    assert (row["status"], row["ledger_balanced"]) == ("failed", False)
    with psycopg.connect(**control_settings.control_conninfo()) as conn:
        unbalanced = conn.execute(
            "SELECT coalesce(relationship_type, label) FROM etl_table_logs"
            " WHERE run_id = %s AND NOT ledger_balanced ORDER BY 1",
            [row["run_id"]],
        ).fetchall()
    assert unbalanced == [("TAGGED_WITH",), ("Tag",)]
    rebuilt = run(control_settings, options)
    assert rebuilt.ledger_balanced is True and rebuilt.status == "succeeded"
