"""Headless Chromium for browser tests: Debian's chromium and chromedriver
driven by Selenium 4, nothing downloaded at run time.

Without them the tests are skipped with a message saying how to install
them; when the environment variable ``CI`` is set, they fail instead.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import pytest

INSTALL = ("apt-get install chromium chromium-driver, and pip install "
           "-e '.[testing]' (selenium)")
ARGUMENTS = (
    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
    "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--window-size=1100,900",
    # Windows in the background keep their timers (the pages poll).
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
)


def require_chromium() -> tuple[str, str]:
    """(chromium, chromedriver) paths; skips, or under CI fails, without them."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", chromium), ("chromedriver", driver))
               if path is None]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium")
    if missing:
        message = f"browser tests need {', '.join(missing)}: {INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return chromium, driver


def start_chromium():
    """A new headless Chromium session with a fresh profile, and that
    profile's directory (remove it after ``quit()``)."""
    from selenium import webdriver

    chromium, driver = require_chromium()
    profile = tempfile.mkdtemp(prefix="upload-progress-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ARGUMENTS:
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    session = webdriver.Chrome(options=options, service=webdriver.ChromeService(driver))
    session.set_page_load_timeout(20)
    session.set_script_timeout(10)
    return session, profile


def quit_chromium(session, profile: str) -> None:
    session.quit()
    shutil.rmtree(profile, ignore_errors=True)
