"""Browser tests: the course website and JupyterLab, driven in a real Chromium by Playwright.

Chromium comes from the system (Debian: `apt-get install chromium`), never from Playwright's own
download. Without Chromium, Playwright or the site tools (requirements-site.txt) these tests are
skipped with a message saying what to install; under CI (CI=true) a missing piece is a failure, so CI
can never pass by skipping them. Screenshots land in tests/artifacts/ (not committed).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_helpers import ARTIFACTS, CHROMIUM_ARGS, find_chromium, skip_or_fail


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        skip_or_fail(
            "no Chromium found (Debian/Ubuntu: sudo apt-get install chromium fonts-noto-cjk; "
            "or set RESNET_LAB_CHROMIUM=/path/to/chromium)"
        )
    return path


@pytest.fixture(scope="module")  # closed after each test file: no Chromium left running under nbval
def browser(chromium_path: str) -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail(
            "Playwright for Python is not installed (pip install -r requirements-site.txt; "
            "do not run `playwright install`: the system Chromium is used)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
