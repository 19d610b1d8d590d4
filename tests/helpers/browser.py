"""A real headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by Selenium,
for the dashboard's pages. Nothing is downloaded: both binaries are the system's."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.helpers.services import service_missing

__all__ = ["chromium", "console_errors", "screenshot", "submit"]


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium that keeps the pages' console messages."""
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not look for a driver online
    from selenium import webdriver

    binary, driver_binary = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver_binary is None:
        service_missing(
            "Chromium", FileNotFoundError("chromium, chromedriver (scripts/services test-tools)")
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(binary)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1400,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(
        options=options, service=webdriver.ChromeService(executable_path=str(driver_binary))
    )
    try:
        yield browser
    finally:
        browser.quit()


def console_errors(browser: Any) -> list[str]:
    """The console's errors since the last call (a page that failed to load a part, a script
    error, a refused resource)."""
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def screenshot(browser: Any, folder: Path, name: str) -> Path:
    """The whole page as PNG in ``folder`` (the test's output folder)."""
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, max(1000, int(height) + 140))
    path = folder / f"{name}.png"
    browser.save_screenshot(str(path))
    return path


def submit(browser: Any, button: Any, lands_on: str, seconds: float = 15) -> None:
    """Click a form's button and wait until the page it loads is ``lands_on`` (a click returns
    before the browser has navigated; reading the address at once races with the answer)."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    old = browser.find_element("tag name", "html")
    button.click()
    WebDriverWait(browser, seconds).until(expected_conditions.staleness_of(old))
    WebDriverWait(browser, seconds).until(expected_conditions.url_to_be(lands_on))
