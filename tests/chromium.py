"""Headless Chromium for tests, as a Selenium WebDriver: ``with chromium() as driver: ...``.

Debian's ``chromium`` and ``chromium-driver`` packages (``scripts/setup`` installs them when
apt is there). Both paths are passed explicitly, so Selenium never tries to download a
driver. The browser log is on (``browser_errors(driver)``: console errors, uncaught
exceptions, CSP violations). Tests skip with a message when no browser is installed.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--window-size=1280,900",
)


def _which(*names: str) -> str | None:
    return next((found for n in names if (found := shutil.which(n))), None)


def chromium_bin() -> str | None:
    return _which("chromium", "chromium-browser", "google-chrome")


def chromedriver_bin() -> str | None:
    return _which("chromedriver")


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium WebDriver with a throw-away profile; skips if none is installed."""
    binary, driver_bin = chromium_bin(), chromedriver_bin()
    if binary is None or driver_bin is None:
        pytest.skip("chromium and chromedriver are not installed (scripts/setup installs them)")
    with tempfile.TemporaryDirectory(prefix="bc-chromium-") as profile:
        options = Options()
        options.binary_location = binary
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_bin))
        try:
            yield driver
        finally:
            driver.quit()


def browser_errors(driver: Any) -> list[str]:
    """Errors the page logged since the last call: console.error, exceptions, CSP blocks."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
