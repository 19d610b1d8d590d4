"""``make demo`` as a user runs it: each sample twice in a row, on the settings of ``.env``
(and the environment, as the test session reads them).

The README says a demo can be run again at any time; the second run of each must succeed as
the first did (the sample loaded again, the graph rebuilt, the ecommerce week in a new
experiment of its own)."""

from __future__ import annotations

import subprocess

import psycopg
import pytest

from bulk360.settings import Settings
from tests.helpers.services import ROOT


def make_demo(sample: str) -> str:
    result = subprocess.run(
        ["make", "demo", f"SAMPLE={sample}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    assert "graph matches the manifest" in output, output[-4000:]
    return output


@pytest.mark.parametrize("sample", ["customer360", "ecommerce"])
def test_each_demo_runs_twice_in_a_row(
    sample: str, settings: Settings, pg_conninfo: dict[str, object]
) -> None:
    first = make_demo(sample)
    second = make_demo(sample)
    for output in (first, second):
        assert "Look at it:" in output
        if sample == "customer360":
            assert "john.smith@email.com" in output
    if sample == "ecommerce":
        with psycopg.connect(**settings.control_conninfo()) as conn:
            weeks = conn.execute(
                "SELECT experiment, count(*) FROM served_recommendations"
                " WHERE experiment LIKE 'demo-week-%' GROUP BY experiment"
                " ORDER BY experiment DESC LIMIT 2"
            ).fetchall()
        # Two weeks of their own, each with its lists (ids never shared between them).
        assert len(weeks) == 2 and all(count > 100 for _, count in weeks), weeks
