"""The run dashboard (``/ui``) in a real headless Chromium: every page loads without a console
error, its figures are the control database's, a failed run shows its error, and with a token
the pages ask for it once and never put it in an address. Screenshots go to the test's folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from selenium.webdriver.common.by import By

from bulk360 import RunSummary
from bulk360.settings import Settings
from tests.helpers.browser import chromium, console_errors, screenshot, submit
from tests.helpers.serving import serving


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as found:
        yield found


@pytest.fixture(scope="module")
def dashboard(csv_run: RunSummary, metrics_settings: Settings) -> Iterator[str]:
    with serving(metrics_settings) as url:
        yield url


def runs_in(settings: Settings) -> list[dict[str, Any]]:
    with psycopg.connect(**settings.control_conninfo(), row_factory=dict_row) as conn:
        return conn.execute("SELECT * FROM etl_run_logs ORDER BY run_id DESC").fetchall()


def cells(browser: Any, row: Any) -> list[str]:
    return [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]


def test_the_runs_page_lists_every_run_and_a_failed_run_s_error(
    browser: Any, dashboard: str, metrics_settings: Settings, tmp_path: Path
) -> None:
    browser.get(dashboard + "/ui")
    assert browser.title == "bulk360 — runs"
    assert console_errors(browser) == []
    screenshot(browser, tmp_path, "runs")
    shown = {
        int(row.get_attribute("data-run")): cells(browser, row)
        for row in browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr")
    }
    logged = runs_in(metrics_settings)
    assert sorted(shown) == sorted(r["run_id"] for r in logged)
    for run in logged:
        run_id, mode, _, status, _, _, nodes, relationships, read, *_, error = shown[run["run_id"]]
        assert (int(run_id), mode, status) == (run["run_id"], run["mode"], run["status"])
        if run["status"] == "succeeded":
            assert nodes == f"{run['nodes_written']:,}"
            assert relationships == f"{run['relationships_written']:,}"
            assert read == f"{run['rows_read']:,}" and error == ""
        else:
            lines = [line.strip() for line in run["error_text"].splitlines()]
            assert error == " ".join(lines) and "no_such_table" in error


def test_a_run_page_shows_its_ledger_and_steps(
    browser: Any, dashboard: str, csv_run: RunSummary, metrics_settings: Settings, tmp_path: Path
) -> None:
    browser.get(f"{dashboard}/ui/runs/{csv_run.run_id}")
    assert console_errors(browser) == []
    screenshot(browser, tmp_path, "run")
    assert browser.find_element(By.ID, "status").text == "succeeded"
    assert browser.find_element(By.ID, "nodes").text == f"{sum(csv_run.nodes.values()):,}"
    with psycopg.connect(**metrics_settings.control_conninfo(), row_factory=dict_row) as conn:
        logged = conn.execute(
            "SELECT * FROM etl_table_logs WHERE run_id = %s", [csv_run.run_id]
        ).fetchall()
        steps = conn.execute(
            "SELECT step_seconds FROM etl_run_logs WHERE run_id = %s", [csv_run.run_id]
        ).fetchone()
    labels = {
        row.get_attribute("data-label"): cells(browser, row)
        for row in browser.find_elements(By.CSS_SELECTOR, "#labels tbody tr")
    }
    nodes = [t for t in logged if t["object_kind"] == "node"]
    assert labels.keys() == {t["label"] for t in nodes}
    for t in nodes:
        _, _, status, read, written, rejected, duplicate, equation = labels[t["label"]]
        assert (status, read, written) == (
            t["status"],
            f"{t['rows_processed']:,}",
            f"{t['rows_written']:,}",
        )
        assert (rejected, duplicate) == (f"{t['rows_rejected']:,}", f"{t['rows_duplicate']:,}")
        assert equation == "holds"
    mappings = {
        row.get_attribute("data-mapping"): cells(browser, row)
        for row in browser.find_elements(By.CSS_SELECTOR, "#mappings tbody tr")
    }
    relationships = [t for t in logged if t["object_kind"] == "relationship"]
    assert len(mappings) == len(relationships) > 0
    for t in relationships:
        shown = mappings[f"{t['relationship_type']}.{t['mapping_id']}"]
        assert shown[4:9] == [
            f"{t[k]:,}"
            for k in (
                "rows_processed",
                "rows_fanout",
                "rows_written",
                "rows_rejected",
                "rows_orphaned",
            )
        ]
        assert shown[9] == "holds"
    bars = browser.find_elements(By.CSS_SELECTOR, "#steps rect")
    assert steps is not None and len(bars) == len(steps["step_seconds"]) > 3


def test_the_model_and_customer_pages(
    browser: Any, dashboard: str, metrics_settings: Settings, tmp_path: Path
) -> None:
    browser.get(dashboard + "/ui/model")
    assert console_errors(browser) == []
    screenshot(browser, tmp_path, "model")
    picture = browser.find_element(By.CSS_SELECTOR, "#model svg").text
    for label in ("Account", "PlayEvent", "Ticket"):
        assert f":{label}" in picture
    assert "WATCHED" in picture and "hashed_password" in picture
    # The header's form goes to a customer's page; no list is stored for this control database.
    browser.get(dashboard + "/ui")
    browser.find_element(By.NAME, "id").send_keys("42")
    submit(
        browser,
        browser.find_element(By.CSS_SELECTOR, "header button"),
        lands_on=dashboard + "/ui/customer?id=42",
    )
    assert "No stored list" in browser.find_element(By.ID, "none").text
    browser.get(dashboard + "/ui/runs/999999")
    assert browser.find_element(By.ID, "message").text == "no run 999999"


def test_with_a_token_the_pages_ask_for_it_once_and_never_show_it(
    metrics_settings: Settings, csv_run: RunSummary, tmp_path: Path
) -> None:
    token = "dashboard-token-for-the-test"
    with serving(metrics_settings, BULK360_API_TOKEN=token) as url, chromium() as browser:
        browser.get(url + "/ui/runs/1")
        assert browser.current_url == url + "/ui/login"
        browser.find_element(By.NAME, "token").send_keys("not-it")
        submit(browser, browser.find_element(By.CSS_SELECTOR, "main button"), url + "/ui/token")
        assert browser.find_element(By.ID, "wrong").text == "That is not the token."
        browser.find_element(By.NAME, "token").send_keys(token)
        submit(browser, browser.find_element(By.CSS_SELECTOR, "main button"), url + "/ui")
        assert browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr")
        browser.get(f"{url}/ui/runs/{csv_run.run_id}")
        assert browser.find_element(By.ID, "status").text == "succeeded"
        assert token not in browser.page_source and token not in browser.current_url
        cookie = browser.get_cookie("bulk360_token")
        assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert console_errors(browser) == []
