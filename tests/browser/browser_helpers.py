"""Helpers shared by the browser tests: finding the system Chromium, skipping (or failing under CI)
when a piece is missing, recording a page's problems, and asking Chromium which fonts draw a text."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
# How long a page may take to show something before the test fails. These limits catch a page that never
# shows it, not a slow one: on a 2-core machine shared with notebook kernels, the grader's kernels and
# torchrun, JupyterLab took tens of seconds to draw what an idle machine draws in one or two. Every
# action and wait without its own limit gets this one (Playwright's default is 30 s).
UI_TIMEOUT_MS = 90_000
VENV = Path(sys.prefix)  # the environment running pytest (.venv under `make test`)

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",  # CI and containers run as root
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
]
CJK_FONT_WORDS = ("CJK", "Han Sans", "Han Serif", "WenQuanYi", "Droid Sans Fallback", "Hei", "Song", "Ming", "Gothic")


def find_chromium() -> str | None:
    """Path of the system Chromium: $RESNET_LAB_CHROMIUM, else the first of CHROMIUM_CANDIDATES on PATH."""
    configured = os.environ.get("RESNET_LAB_CHROMIUM")
    if configured:
        return configured if Path(configured).is_file() else None
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def skip_or_fail(reason: str) -> None:
    """Skip with `reason`; under CI (CI=true), fail instead: CI must run the browser tests."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must run the browser tests, but {reason}", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason}")


@dataclass
class PageProblems:
    """What went wrong while a page was shown: console errors, uncaught exceptions, failed or external requests."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)

    def all(self) -> list[str]:
        return (
            [f"console error: {m}" for m in self.console_errors]
            + [f"uncaught exception: {m}" for m in self.page_errors]
            + [f"failed request: {m}" for m in self.failed_requests]
            + [f"request to the internet (must work offline): {m}" for m in self.external_requests]
        )

    def clear(self) -> None:
        for problems in (self.console_errors, self.page_errors, self.failed_requests, self.external_requests):
            problems.clear()


# Console errors that JupyterLab itself logs in a race that a slow machine loses, and that say nothing about
# the course. Each is matched whole, never by a fragment. When "Restart Kernel and Run All" comes while the
# debugger extension is still asking the freshly connected kernel for its state (a debug_request, sent on
# every kernel connection), the restart cancels that request and the extension logs this line; nothing is
# shown to the learner and the restarted kernel runs normally. Seen once in a CI run on a loaded 2-core machine.
JUPYTERLAB_RACES = frozenset(
    {
        "Could not restore the debugger state: Canceled future for debug_request message before replies were done",
    }
)


def watch(page, allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> PageProblems:
    """Record the page's problems; block (and record) every request that leaves this machine."""
    problems = PageProblems()

    def console(msg) -> None:
        if msg.type == "error" and msg.text.strip() not in JUPYTERLAB_RACES:
            problems.console_errors.append(msg.text)

    page.on("console", console)
    page.on("pageerror", lambda exc: problems.page_errors.append(str(exc)))

    def request_failed(request) -> None:
        # ERR_ABORTED: the browser dropped the request because the test moved on to the next page
        if request.url not in problems.external_requests and "ERR_ABORTED" not in (request.failure or ""):
            problems.failed_requests.append(f"{request.url} ({request.failure})")

    page.on("requestfailed", request_failed)
    page.on(
        "response",
        lambda response: (
            problems.failed_requests.append(f"{response.url} (HTTP {response.status})")
            if response.status >= 400
            else None
        ),
    )

    def route(route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in allowed_hosts:
            problems.external_requests.append(url)
            route.abort()
        else:
            route.continue_()

    page.route("**/*", route)
    return problems


def fonts_rendering(page, selector_text: str) -> list[str]:
    """Names of the fonts Chromium actually uses to draw the first text node containing `selector_text`
    (DevTools CSS.getPlatformFontsForNode): tells a real CJK font from empty boxes."""
    handle = page.evaluate_handle(
        """(needle) => {
            const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
            for (let node = walker.nextNode(); node; node = walker.nextNode()) {
                if (node.textContent.includes(needle) && node.parentElement.offsetParent !== null) return node.parentElement;
            }
            return null;
        }""",
        selector_text,
    )
    element = handle.as_element()
    assert element is not None, f"no visible text {selector_text!r} on the page"
    element.evaluate("(el) => el.setAttribute('data-font-probe', '1')")
    cdp = page.context.new_cdp_session(page)
    try:
        root = cdp.send("DOM.getDocument", {"depth": -1, "pierce": True})
        node = cdp.send("DOM.querySelector", {"nodeId": root["root"]["nodeId"], "selector": "[data-font-probe]"})
        cdp.send("CSS.enable")
        fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node["nodeId"]})["fonts"]
    finally:
        cdp.detach()
        element.evaluate("(el) => el.removeAttribute('data-font-probe')")
    return [font["familyName"] for font in fonts]


def assert_cjk_font(fonts: list[str], text: str) -> None:
    assert any(word.lower() in font.lower() for font in fonts for word in CJK_FONT_WORDS), (
        f"{text!r} is drawn with {fonts}, none of them a CJK font: learners see empty boxes. "
        "Install one (Debian/Ubuntu: sudo apt-get install fonts-noto-cjk)."
    )
