"""``bulk360 plan --graph``: the graph model drawn from the control rows of both samples."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import psycopg
import pytest

from bulk360 import RunSummary
from bulk360.control.history import graph_counts
from bulk360.settings import Settings
from tests.helpers.cli import bulk360_cli
from tests.helpers.databases import sample_control

PICTURE_CONTROL_DB = "bulk360_test_picture"
PREFIX = "bulk360_test_picture_"


@pytest.fixture(scope="module")
def both_samples(
    settings: Settings, pg_conninfo: dict[str, object], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    import_dir = tmp_path_factory.mktemp("picture")
    ours = sample_control(
        settings, PICTURE_CONTROL_DB, import_dir, PREFIX, "customer360", "ecommerce"
    )
    return ours


def mapped(settings: Settings) -> tuple[set[str], set[str], list[str]]:
    """Labels, relationship types and excluded columns of the control rows."""
    with psycopg.connect(**settings.control_conninfo()) as conn:
        labels = {r[0] for r in conn.execute("SELECT label FROM node_label_mappings").fetchall()}
        types = {r[0] for r in conn.execute("SELECT relationship_type FROM relationship_mappings")}
        excluded = [r[0] for r in conn.execute("SELECT column_name FROM field_exclusion_rules")]
    return labels, types, excluded


def svg_text(path: Path) -> str:
    """Every text the SVG shows, joined (it must be well-formed XML)."""
    return " ".join(t for t in ET.parse(path).getroot().itertext() if t.strip())


def test_the_picture_names_every_label_and_type_of_both_samples(
    both_samples: Settings, tmp_path: Path
) -> None:
    labels, types, excluded = mapped(both_samples)
    assert len(labels) >= 13 and len(types) >= 10 and "hashed_password" in excluded
    for name in ("model.svg", "model.png", "model.mmd"):
        drawn = bulk360_cli(
            both_samples, both_samples.import_dir, "plan", "--graph", str(tmp_path / name)
        )
        assert drawn.returncode == 0, drawn.output
        assert f"graph model drawn in {tmp_path / name}" in drawn.stdout
    text = svg_text(tmp_path / "model.svg")
    assert "no run yet" in text
    for label in labels:
        assert f":{label}" in text, label
    for kind in types:
        assert kind in text, kind
    assert all(column in text for column in excluded)
    assert (tmp_path / "model.png").read_bytes()[:4] == b"\x89PNG"
    mermaid = (tmp_path / "model.mmd").read_text()
    assert mermaid.startswith("flowchart LR\n")
    assert all(f":{label}" in mermaid for label in labels)
    assert all(kind in mermaid for kind in types)


def test_the_picture_has_the_counts_of_the_newest_run(
    admin_run: RunSummary, control_settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "model.svg"
    drawn = bulk360_cli(control_settings, tmp_path, "plan", "--graph", str(path))
    assert drawn.returncode == 0, drawn.output
    text = svg_text(path)
    # The newest run that built the graph: the admin build, or a later test's run.
    run_id, labels, mappings = graph_counts(control_settings)
    assert run_id is not None and run_id >= admin_run.run_id
    assert f"counts of run {run_id}" in text
    assert labels["PlayEvent"] > 0 and f"{labels['PlayEvent']:,}" in text
    watched = next(n for name, n in mappings.items() if name.startswith("WATCHED."))
    assert watched > 0 and "WATCHED #" in text and f"{watched:,}" in text


def test_a_picture_in_an_unknown_format_is_one_line_before_anything(
    control_settings: Settings, tmp_path: Path
) -> None:
    drawn = bulk360_cli(control_settings, tmp_path, "plan", "--graph", str(tmp_path / "m.jpeg"))
    assert drawn.returncode != 0
    assert drawn.output.strip() == (
        f"error: --graph {tmp_path / 'm.jpeg'}: the picture is written as .svg, .png or .mmd "
        "(Mermaid), not .jpeg"
    )
