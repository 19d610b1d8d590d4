"""``GET /metrics``: what the control database knows, in Prometheus's text format.

Read on every scrape with a handful of cheap queries (a 3 s connection timeout, a 2 s statement
timeout), formatted by ``prometheus_client``. When the control database does not answer, the
scrape still succeeds with ``bulk360_up 0`` and nothing else, so an alert can tell "bulk360 is
blind" from "bulk360 is down". Every metric is listed in the README's table.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bulk360.settings import Settings

__all__ = ["CONTENT_TYPE", "ControlCollector", "scrape"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Per run: the newest run of each mode, and the newest succeeded one (any mode but follow).
_NEWEST_PER_MODE = """
SELECT DISTINCT ON (mode) mode, run_id, status,
       extract(epoch FROM coalesce(finished_at, now()) - started_at) AS seconds,
       step_seconds, transaction_retries
FROM etl_run_logs ORDER BY mode, run_id DESC
"""
_ROWS_OF_NEWEST_SUCCEEDED = """
SELECT object_kind,
       CASE WHEN object_kind = 'node' THEN label ELSE '' END,
       CASE WHEN object_kind = 'relationship' THEN relationship_type ELSE '' END,
       sum(rows_processed), sum(rows_written), sum(rows_rejected), sum(rows_duplicate),
       sum(rows_orphaned)
FROM etl_table_logs
WHERE object_kind IN ('node', 'relationship') AND run_id = (
    SELECT max(run_id) FROM etl_run_logs WHERE status = 'succeeded' AND mode <> 'follow')
GROUP BY 1, 2, 3
"""


class ControlCollector(Collector):
    """The control database's figures, collected when Prometheus scrapes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("bulk360_up", "1 when the control database answered this scrape")
        try:
            conninfo = self.settings.control_conninfo() | {
                "connect_timeout": 3,
                "options": "-c statement_timeout=2000",
            }
            with psycopg.connect(**conninfo) as conn:
                families = list(self._families(conn))
        except psycopg.Error:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self, conn: psycopg.Connection[Any]) -> Iterator[Metric]:
        success = GaugeMetricFamily(
            "bulk360_last_success_timestamp_seconds",
            "When the newest succeeded run of each mode finished (Unix time)",
            labels=["mode"],
        )
        for mode, at in conn.execute(
            "SELECT mode, extract(epoch FROM max(finished_at)) FROM etl_run_logs"
            " WHERE status = 'succeeded' GROUP BY mode ORDER BY mode"
        ):
            success.add_metric([mode], float(at))
        yield success

        runs = CounterMetricFamily(
            "bulk360_runs", "Runs recorded in the control database", labels=["mode", "status"]
        )
        for mode, status, count in conn.execute(
            "SELECT mode, status, count(*) FROM etl_run_logs GROUP BY 1, 2 ORDER BY 1, 2"
        ):
            runs.add_metric([mode, status], count)
        yield runs

        duration = GaugeMetricFamily(
            "bulk360_run_duration_seconds",
            "The newest run of each mode: each step's time, and the whole run (step 'total')",
            labels=["mode", "step"],
        )
        retries = GaugeMetricFamily(
            "bulk360_transaction_retries",
            "The newest run of each mode that wrote over Bolt: transactions the driver ran again",
            labels=["mode"],
        )
        for mode, _, _, seconds, steps, retried in conn.execute(_NEWEST_PER_MODE):
            for step, value in (steps or {}).items():
                duration.add_metric([mode, step], float(value))
            duration.add_metric([mode, "total"], float(seconds))
            if retried is not None:
                retries.add_metric([mode], retried)
        yield duration
        yield retries

        rows = GaugeMetricFamily(
            "bulk360_rows_total",
            "The newest succeeded run's rows per label (nodes) and type (relationships): read, "
            "written, rejected, duplicate, orphaned",
            labels=["kind", "label", "type"],
        )
        for kind, label, kind_name, *counts in conn.execute(_ROWS_OF_NEWEST_SUCCEEDED):
            for name, value in zip(
                ("read", "written", "rejected", "duplicate", "orphaned"), counts, strict=True
            ):
                if kind == "node":
                    rows.add_metric([name, label, ""], int(value))
                else:
                    rows.add_metric([name, "", kind_name], int(value))
        yield rows

        lag = GaugeMetricFamily(
            "bulk360_follow_lag_seconds",
            "Per followed source: seconds since the follower last found nothing left to apply",
            labels=["source"],
        )
        for source, seconds in conn.execute(
            "SELECT source_name, extract(epoch FROM now() - caught_up_at)"
            " FROM etl_follow_sources WHERE caught_up_at IS NOT NULL ORDER BY 1"
        ):
            lag.add_metric([source], float(seconds))
        yield lag

        age = GaugeMetricFamily(
            "bulk360_recommendation_age_seconds",
            "Seconds since the newest succeeded recommendation run finished",
        )
        row = conn.execute(
            "SELECT extract(epoch FROM now() - max(finished_at)) FROM recommendation_runs"
            " WHERE status = 'succeeded'"
        ).fetchone()
        if row and row[0] is not None:
            age.add_metric([], float(row[0]))
        yield age


def scrape(settings: Settings) -> bytes:
    """One scrape's answer."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ControlCollector(settings))
    return bytes(generate_latest(registry))
