"""``bulk360 mappings``: export, diff and apply through the command line, against real control
databases and the samples' real source databases (nothing here needs Neo4j)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from bulk360 import RunOptions
from bulk360.apps.samples import write_sample_rows
from bulk360.pipeline import run
from bulk360.settings import Settings
from tests.helpers.cli import bulk360_cli
from tests.helpers.databases import sample_control
from tests.helpers.services import ROOT

CONTROL_DB = "bulk360_test_mappings"
PREFIX = "bulk360_test_mappings_"


@pytest.fixture(scope="module")
def typed(
    settings: Settings, pg_conninfo: dict[str, object], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """Both samples, their rows written by their SQL, plus what the samples lack: a keep rule,
    a type override and an inactive label mapping (composite keys, link tables and row
    filters the samples have)."""
    import_dir = tmp_path_factory.mktemp("typed")
    ours = sample_control(settings, CONTROL_DB, import_dir, PREFIX, "customer360", "ecommerce")
    with psycopg.connect(**ours.control_conninfo(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO field_exclusion_rules (source_name, table_name, column_name,"
            " is_excluded, reason) VALUES ('profiles', 'accounts', 'full_name', false,"
            " 'kept knowingly: the name is shown to agents')"
        )
        conn.execute(
            "INSERT INTO column_type_overrides (source_name, table_name, column_name, neo4j_type,"
            " reason) VALUES ('shop', 'products', 'price', 'double', 'prices sort as numbers')"
        )
        conn.execute(
            "INSERT INTO node_label_mappings (source_name, table_name, label, is_active)"
            " VALUES ('streaming', 'media', 'Film', false)"
        )
    return ours


@pytest.fixture
def empty(settings: Settings, tmp_path: Path) -> Settings:
    """A control database with its tables and no rows."""
    name = CONTROL_DB + "_empty"
    return sample_control(settings, name, tmp_path / "import")


def cli(settings: Settings, *args: str) -> tuple[int, str]:
    result = bulk360_cli(settings, settings.import_dir, "mappings", *args)
    assert "Traceback" not in result.output, result.output
    return result.returncode, result.output


def export(settings: Settings, path: Path) -> str:
    code, output = cli(settings, "export", str(path))
    assert code == 0, output
    return path.read_text()


def changes_recorded(settings: Settings) -> list[tuple[str, str, str]]:
    with psycopg.connect(**settings.control_conninfo()) as conn:
        return conn.execute(
            "SELECT table_name, action, row_key FROM mapping_changes ORDER BY change_id"
        ).fetchall()


def test_export_apply_export_gives_the_same_bytes(
    typed: Settings, empty: Settings, tmp_path: Path
) -> None:
    first = export(typed, tmp_path / "first.yaml")
    assert export(typed, tmp_path / "again.yaml") == first
    for text in (
        "key: [ticket_id, tag_id]",
        "type: double",
        "- source: profiles\n  table: accounts\n  column: full_name",
        "active: false",
        "e.event_type = 'view'",
        "link: {source: support, table: ticket_tag_links, alias: l}",
    ):
        assert text in first
    assert "password:" not in first and "ETL_DB_PASSWORD" in first

    code, output = cli(empty, "apply", str(tmp_path / "first.yaml"))
    assert code == 0, output
    assert export(empty, tmp_path / "copy.yaml") == first
    code, output = cli(empty, "diff", str(tmp_path / "first.yaml"))
    assert code == 0 and "equals the control database" in output, output
    rows = sum(1 for line in first.splitlines() if line.startswith("- "))
    recorded = changes_recorded(empty)
    assert len(recorded) == rows and {action for _, action, _ in recorded} == {"added"}
    assert (
        "node_label_mappings",
        "added",
        "support.ticket_tag_links -> :TicketTagLink",
    ) in recorded


@pytest.mark.parametrize("sample", ["customer360", "ecommerce", "movielens"])
def test_each_sample_ships_its_rows_as_yaml(
    typed: Settings, empty: Settings, tmp_path: Path, sample: str
) -> None:
    write_sample_rows(empty, sample, database_prefix=PREFIX)
    exported = export(empty, tmp_path / "sample.yaml").replace(f"database: {PREFIX}", "database: ")
    assert exported == (ROOT / "sql" / "samples" / sample / "mappings.yaml").read_text()


def test_diff_names_each_changed_row_and_the_plan_it_makes(typed: Settings, tmp_path: Path) -> None:
    text = export(typed, tmp_path / "now.yaml")
    edited = (
        text.replace(
            "- source: profiles\n  table: accounts\n  column: hashed_password\n"
            "  reason: 'credential hash: must never leave the source'\n",
            "",
        )
        .replace(
            "join: child.parent_id = parent.id",
            "join: child.parent_id = parent.id\n  active: false",
        )
        .replace(
            "join: a.email = t.customer_email",
            "join: a.email = t.customer_email AND t.priority = 'high'",
        )
    )
    (tmp_path / "edited.yaml").write_text(edited)
    code, output = cli(typed, "diff", str(tmp_path / "edited.yaml"))
    assert code == 1, output
    line = _line_of(edited, "- type: SUBCATEGORY_OF")
    assert (
        f"~ relationships (:Category)-[:SUBCATEGORY_OF]->(:Category): active: (none) → false (line {line})"
        in output
    )
    submitted = _line_of(edited, "- type: SUBMITTED")
    assert (
        '~ relationships (:Account)-[:SUBMITTED]->(:Ticket): join: "a.email = t.customer_email"'
        f" → \"a.email = t.customer_email AND t.priority = 'high'\" (line {submitted})"
    ) in output
    assert "- exclude profiles.accounts.hashed_password" in output
    assert "+ :Account kept hashed_password" in output
    assert "- :Account excluded hashed_password" in output
    assert "- relationship (:Category)-[:SUBCATEGORY_OF]->(:Category)" in output
    # Nothing was written by diff.
    assert export(typed, tmp_path / "after.yaml") == text


def _row_start(text: str, needle: str) -> int:
    """The line of the row (``- ...``) that holds ``needle``."""
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if needle in line)
    return next(i for i in range(at, -1, -1) if lines[i].startswith("- ")) + 1


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines()) if needle in line) + 1


BAD_FILES: dict[str, tuple[Callable[[str], str], str, Callable[[str], int]]] = {
    "bad column": (
        lambda t: t.replace("column: hashed_password", "column: no_such_column"),
        "column 'no_such_column' does not exist in profiles.accounts",
        lambda t: _row_start(t, "column: no_such_column"),
    ),
    "bad join condition": (
        lambda t: t.replace(
            "join: a.account_id = pm.account_id", "join: a.account_id = zz.account_id"
        ),
        "alias 'zz' in 'zz.account_id' is not bound",
        lambda t: _row_start(t, "zz.account_id"),
    ),
    "duplicate label": (
        lambda t: t.replace(
            "labels:\n",
            "labels:\n- source: profiles\n  table: plans\n  label: Account\n",
        ),
        "label 'Account' is already mapped by another row",
        lambda t: _line_of(t, "labels:") + 1,  # the row added, not the one that had the label
    ),
    "password in clear text": (
        lambda t: t.replace(
            "  password_env: ETL_DB_PASSWORD\n", "  password: s3cret-in-the-file\n", 1
        ),
        "has a password in clear text",
        lambda t: _line_of(t, "password: s3cret"),
    ),
    "YAML syntax error": (
        lambda t: t.replace("  host: 127.0.0.1\n", "  host: [127.0.0.1\n", 1),
        "YAML syntax",
        lambda t: _line_of(t, "host: [127.0.0.1") + 1,
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_file_writes_nothing_and_names_the_line(
    typed: Settings, tmp_path: Path, case: str
) -> None:
    edit, message, line_of = BAD_FILES[case]
    text = export(typed, tmp_path / "now.yaml")
    bad = edit(text)
    assert bad != text
    (tmp_path / "bad.yaml").write_text(bad)
    before = changes_recorded(typed)
    code, output = cli(typed, "apply", str(tmp_path / "bad.yaml"))
    assert code == 2, output
    assert message in output, output
    found = [int(n) for n in re.findall(r"bad\.yaml:(\d+)", output)]
    assert found, output
    if case != "YAML syntax error":  # a parser names where it noticed, at or after the mistake
        assert line_of(bad) in found, (line_of(bad), output)
    else:
        assert min(found) >= _line_of(bad, "host: [127.0.0.1"), output
    assert "s3cret" not in output
    assert export(typed, tmp_path / "after.yaml") == text
    assert changes_recorded(typed) == before


def test_a_file_applied_then_run_gives_the_graph_of_rows_typed_by_hand(
    typed: Settings, empty: Settings, tmp_path: Path
) -> None:
    export(typed, tmp_path / "typed.yaml")
    code, output = cli(empty, "apply", str(tmp_path / "typed.yaml"))
    assert code == 0, output
    by_hand = run(typed, RunOptions(mode="csv"))
    from_file = run(empty, RunOptions(mode="csv"))
    assert from_file.nodes == by_hand.nodes and from_file.relationships == by_hand.relationships
    assert sum(by_hand.nodes.values()) > 0 and sum(by_hand.relationships.values()) > 0
    headers = sorted(p.name for p in Path(by_hand.import_dir).glob("*header*"))
    assert headers == sorted(p.name for p in Path(from_file.import_dir).glob("*header*"))
    for name in headers:
        assert (Path(by_hand.import_dir) / name).read_text() == (
            Path(from_file.import_dir) / name
        ).read_text()
