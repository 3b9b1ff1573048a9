"""Headless Chromium, driven with selenium, for looking at the evidence report as a reader would.

Used by the browser test, the report benchmark and the README's screenshot. It needs the Debian
packages `chromium` and `chromium-driver` (`.ci/run` installs them) and the `selenium` package.
Chromium runs with a fresh profile and with every background service off, so that the only
requests it makes are the page's own: the test asserts that those are all file:// URLs.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars")
BINARIES = {"chromium": ("chromium", "chromium-browser"), "chromedriver": ("chromedriver",)}


class BrowserMissing(RuntimeError):
    """Chromium, its driver or selenium is not installed."""


def find_binary(kind: str) -> str:
    for name in BINARIES[kind]:
        if found := shutil.which(name):
            return found
    raise BrowserMissing(f"{kind} not found: install the Debian packages chromium and chromium-driver "
                         f"(apt-get install -y chromium chromium-driver)")


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 1000) -> Iterator:
    """A headless Chromium WebDriver with network logging on, closed afterwards."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as e:
        raise BrowserMissing("selenium is not installed: pip install -e '.[dev]'") from e
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = find_binary("chromium")
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        driver = webdriver.Chrome(service=Service(find_binary("chromedriver")), options=options)
        try:
            driver.get("about:blank")
            driver.get_log("performance")  # drop what the start-up tab loaded (chrome://new-tab-page)
            yield driver
        finally:
            driver.quit()


def open_page(driver, page: Path) -> None:
    driver.get(Path(page).resolve().as_uri())


def load_every_image(driver, timeout_s: float = 30.0) -> None:
    """Scroll each lazily loaded image into view, then wait until every one has finished loading."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("for (const img of document.images) { img.loading = 'eager'; }")
    WebDriverWait(driver, timeout_s).until(
        lambda d: d.execute_script("return Array.from(document.images).every(i => i.complete)"))


def requested_urls(driver) -> list[str]:
    """Every URL the browser asked for since the last call: the DevTools log and the page's own record."""
    logged = [json.loads(entry["message"])["message"] for entry in driver.get_log("performance")]
    sent = [m["params"]["request"]["url"] for m in logged if m.get("method") == "Network.requestWillBeSent"]
    resources = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".concat(performance.getEntriesByType('navigation').map(e => e.name))")
    return sent + resources
