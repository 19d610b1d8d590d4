"""The serve tests' control database: the Customer 360 sample, csv runs and a failed run."""

from __future__ import annotations

import psycopg
import pytest

from bulk360 import RunOptions, RunSummary
from bulk360.errors import Bulk360Error
from bulk360.pipeline import run
from bulk360.settings import Settings
from tests.helpers.databases import sample_control

METRICS_CONTROL_DB = "bulk360_test_metrics"
PREFIX = "bulk360_test_metrics_"


@pytest.fixture(scope="package")
def metrics_settings(
    settings: Settings, pg_conninfo: dict[str, object], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """A control database of its own with the Customer 360 sample."""
    import_dir = tmp_path_factory.mktemp("metrics")
    return sample_control(settings, METRICS_CONTROL_DB, import_dir, PREFIX, "customer360")


@pytest.fixture(scope="package")
def csv_run(metrics_settings: Settings) -> RunSummary:
    """Runs that stop after the files (no Neo4j needed): one that succeeds, one that fails (a
    label mapped to a table that does not exist), one that succeeds again (the newest)."""
    run(metrics_settings, RunOptions(mode="csv"))
    with psycopg.connect(**metrics_settings.control_conninfo(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO node_label_mappings (source_name, table_name, label)"
            " VALUES ('profiles', 'no_such_table', 'Ghost')"
        )
        with pytest.raises(Bulk360Error, match="no_such_table"):
            run(metrics_settings, RunOptions(mode="csv"))
        conn.execute("DELETE FROM node_label_mappings WHERE label = 'Ghost'")
    summary = run(metrics_settings, RunOptions(mode="csv"))
    assert summary.status == "succeeded"
    return summary
