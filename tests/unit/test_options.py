"""RunOptions refuses impossible combinations itself, so a library caller gets the CLI's lines."""

from __future__ import annotations

import pytest

from bulk360 import ConfigError, RunOptions


@pytest.mark.parametrize(
    ("options", "line"),
    [
        ({"mode": "fast"}, "--mode must be one of admin, bolt, csv, sync, not 'fast'"),
        ({"engine": "duckdb"}, "--engine must be one of local, spark, not 'duckdb'"),
        ({"mode": "admin", "clear": True}, "--clear is for --mode bolt"),
        ({"mode": "bolt", "full": True}, "--full is for --mode sync"),
        ({"mode": "bolt", "overwrite": True}, "--overwrite is for --mode admin"),
        ({"mode": "csv", "batch_size": 10}, "--batch-size is for --mode bolt or sync"),
        (
            {"spark_master": "spark://h:7077"},
            "--spark-master and --spark-conf are for --engine spark",
        ),
        ({"workers": 0}, "--workers must be at least 1"),
        ({"retry_seconds": -1}, "--retry-seconds must not be negative"),
        ({"resume_run": 3}, "a run to resume is given without --resume"),
    ],
)
def test_impossible_combinations_are_one_line(options: dict[str, object], line: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RunOptions(**options)  # type: ignore[arg-type]
    assert str(caught.value) == line


def test_what_a_mode_takes_is_recorded_and_repeated_on_resume() -> None:
    from bulk360.settings import Settings

    settings = Settings("h", 5432, "db", "u", "p")
    bolt = RunOptions(mode="bolt", clear=True, batch_size=100)
    assert bolt.recorded(settings) | {} == {
        "workers": 4,
        "overwrite": False,
        "tolerance": 0,
        "strict_values": False,
        "neo4j_database": "neo4j",
        "engine": "local",
        "batch_size": 100,
        "clear": True,
    }
    # --resume with a batch size of its own: the failed run's mode decides what fits.
    resumed = RunOptions(resume=True, batch_size=50).resuming("bolt", bolt.recorded(settings))
    assert (resumed.mode, resumed.clear, resumed.batch_size) == ("bolt", True, 50)
    with pytest.raises(ConfigError, match="--batch-size is for --mode bolt or sync"):
        RunOptions(resume=True, batch_size=50).resuming("admin", {})
