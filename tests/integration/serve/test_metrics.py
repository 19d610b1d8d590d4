"""``GET /metrics`` scraped by a real Prometheus (Debian's ``prometheus``), read back through
Prometheus's HTTP query API, and compared with the control database."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from bulk360 import RunSummary
from bulk360.serve.metrics import scrape
from bulk360.settings import Settings
from tests.helpers.services import service_missing
from tests.helpers.serving import free_port, serving


@pytest.fixture(scope="module")
def api(csv_run: RunSummary, metrics_settings: Settings) -> Iterator[str]:
    with serving(metrics_settings) as url:
        yield url


@pytest.fixture(scope="module")
def prometheus(api: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prometheus server on a free loopback port scraping the API every second."""
    binary = shutil.which("prometheus")
    if binary is None:
        service_missing("Prometheus", FileNotFoundError("prometheus (apt-get install prometheus)"))
    folder = tmp_path_factory.mktemp("prometheus")
    target = api.removeprefix("http://")
    (folder / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: bulk360\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    port = free_port()
    log = (folder / "prometheus.log").open("w")
    server = subprocess.Popen(
        [
            str(binary),
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: value(url, "bulk360_up") == 1.0, "Prometheus scraping bulk360", 90)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def wait_until(condition: Any, what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if condition():
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds} s"
        time.sleep(0.5)


def query(prometheus: str, expression: str) -> list[dict[str, Any]]:
    """Prometheus's answer to an instant query: its series."""
    answer = httpx.get(prometheus + "/api/v1/query", params={"query": expression}, timeout=10)
    answer.raise_for_status()
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


def value(prometheus: str, expression: str) -> float | None:
    series = query(prometheus, expression)
    return float(series[0]["value"][1]) if series else None


def by_labels(prometheus: str, expression: str, *names: str) -> dict[tuple[str, ...], float]:
    return {
        tuple(s["metric"].get(n, "") for n in names): float(s["value"][1])
        for s in query(prometheus, expression)
    }


def control(settings: Settings, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(**settings.control_conninfo()) as conn:
        return conn.execute(statement, params).fetchall()  # type: ignore[arg-type]


def test_prometheus_reads_what_the_control_database_holds(
    prometheus: str, csv_run: RunSummary, metrics_settings: Settings
) -> None:
    runs = control(
        metrics_settings, "SELECT mode, status, count(*) FROM etl_run_logs GROUP BY 1, 2"
    )
    assert by_labels(prometheus, "bulk360_runs_total", "mode", "status") == {
        (mode, status): float(count) for mode, status, count in runs
    }
    finished = control(
        metrics_settings,
        "SELECT mode, extract(epoch FROM max(finished_at)) FROM etl_run_logs"
        " WHERE status = 'succeeded' GROUP BY 1",
    )
    scraped = by_labels(prometheus, "bulk360_last_success_timestamp_seconds", "mode")
    assert scraped.keys() == {(mode,) for mode, _ in finished}
    for mode, at in finished:
        assert scraped[(mode,)] == pytest.approx(float(at), abs=1e-3)

    newest = control(
        metrics_settings,
        "SELECT run_id FROM etl_run_logs WHERE status = 'succeeded' AND mode <> 'follow'"
        " ORDER BY run_id DESC LIMIT 1",
    )[0][0]
    logged = control(
        metrics_settings,
        "SELECT CASE WHEN object_kind = 'node' THEN label ELSE '' END,"
        " coalesce(relationship_type, ''), sum(rows_processed),"
        " sum(rows_written), sum(rows_rejected), sum(rows_orphaned) FROM etl_table_logs"
        " WHERE run_id = %s AND object_kind IN ('node', 'relationship') GROUP BY 1, 2",
        newest,
    )
    rows = by_labels(prometheus, "bulk360_rows_total", "kind", "label", "type")
    assert len(rows) == 5 * len(logged)
    for label, kind, read, written, rejected, orphaned in logged:
        assert rows[("read", label, kind)] == read
        assert rows[("written", label, kind)] == written
        assert rows[("rejected", label, kind)] == rejected
        assert rows[("orphaned", label, kind)] == orphaned
    assert rows[("written", "PlayEvent", "")] == csv_run.nodes["PlayEvent"] > 0

    steps = control(
        metrics_settings,
        "SELECT step_seconds FROM etl_run_logs WHERE mode = 'csv' ORDER BY run_id DESC LIMIT 1",
    )[0][0]
    durations = by_labels(prometheus, 'bulk360_run_duration_seconds{mode="csv"}', "step")
    assert {step: durations[(step,)] for step in steps} == pytest.approx(steps)
    assert durations[("total",)] >= sum(steps.values())


def test_a_scrape_while_the_control_database_is_down_says_so(
    api: str, metrics_settings: Settings
) -> None:
    nowhere = replace(metrics_settings, etl_db_port=free_port())
    assert scrape(nowhere).decode().splitlines()[-1] == "bulk360_up 0.0"
    with serving(metrics_settings, ETL_DB_PORT=str(nowhere.etl_db_port)) as blind:
        answer = httpx.get(blind + "/metrics", timeout=30)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert "bulk360_up 0.0" in answer.text and "bulk360_runs_total" not in answer.text
    document = httpx.get(api + "/openapi.json", timeout=30).json()
    assert "text/plain" in document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]


def test_the_readme_lists_every_metric(api: str) -> None:
    names = {
        line.split()[2]
        for line in httpx.get(api + "/metrics", timeout=30).text.splitlines()
        if line.startswith("# TYPE")
    }
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    assert names and all(f"`{name}" in readme for name in names), names
