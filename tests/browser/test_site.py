"""The course website (`make site`) in Chromium: every page loads cleanly and offline, each lesson
shows all of its notebook's figures and its math rendered, the glossary link works and its Chinese
is drawn with a real CJK font, search finds lessons. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_helpers import REPO, UI_TIMEOUT_MS, VENV, assert_cjk_font, fonts_rendering, skip_or_fail, watch

LESSONS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
IMAGE_MIME_TYPES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
MATH = re.compile(r"\$[^$\s][^$]*\$")


def image_outputs(notebook: Path) -> int:
    """Number of figures (image outputs) committed in the notebook."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return sum(
        1
        for cell in cells
        for output in cell.get("outputs", [])
        if any(mime in output.get("data", {}) for mime in IMAGE_MIME_TYPES)
    )


def has_math(notebook: Path) -> bool:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    prose = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return bool(MATH.search(re.sub(r"`[^`]*`", "", prose)))


@pytest.fixture(scope="session")
def site(tmp_path_factory, chromium_path: str) -> Path:
    """Build the site exactly as `make site` does (build + link check), into a temporary folder."""
    try:
        import myst_nb  # noqa: F401
        import sphinx  # noqa: F401
    except ImportError:
        skip_or_fail("the site tools are not installed (pip install -r requirements-site.txt)")
    if shutil.which("make") is None:
        skip_or_fail("`make` is not installed")
    out = tmp_path_factory.mktemp("site") / "html"
    started = time.perf_counter()
    result = subprocess.run(
        ["make", "--no-print-directory", "-o", "setup-site", "site", f"VENV={VENV}", f"SITE_DIR={out}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(f"make site: {time.perf_counter() - started:.1f} s")
    assert result.returncode == 0, f"make site failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return out


@pytest.fixture(scope="session")
def site_url(site: Path) -> Iterator[str]:
    """Serve the built site on 127.0.0.1 (a free port) for the length of the session."""

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


def wait_for_mathjax(page) -> None:
    """Wait until MathJax (bundled, version 3) has typeset the page, if the page loads it."""
    page.wait_for_function(
        """() => new Promise((resolve) => {
            const done = () => window.MathJax.startup.promise.then(() => resolve(true));
            if (!document.querySelector('script[src*="mathjax"]')) resolve(true);
            else if (window.MathJax && window.MathJax.startup && window.MathJax.startup.promise) done();
            else setTimeout(() => resolve(false), 100);
        })""",
        timeout=UI_TIMEOUT_MS,
        polling=200,
    )


def test_every_page_loads_without_errors_and_offline(site: Path, site_url: str, page) -> None:
    problems = watch(page)
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html") if "_static" not in p.parts)
    assert "index.html" in pages and len(pages) >= len(LESSONS) + 3
    failures = []
    for relative in pages:
        problems.clear()
        response = page.goto(f"{site_url}/{relative}", wait_until="load")
        wait_for_mathjax(page)
        if response is None or response.status != 200:
            failures.append(f"{relative}: HTTP {response.status if response else 'no response'}")
        failures += [f"{relative}: {problem}" for problem in problems.all()]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("notebook", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_page_shows_its_figures_and_math(site_url: str, page, notebook: Path) -> None:
    problems = watch(page)
    page.goto(f"{site_url}/notebooks/{notebook.stem}.html", wait_until="load")
    wait_for_mathjax(page)
    title = page.title()
    assert notebook.stem[:2] in title, f"page title {title!r} does not name the lesson"

    expected = image_outputs(notebook)
    figures = page.locator(".cell_output img")
    assert figures.count() == expected, (
        f"{figures.count()} figures on the page, {expected} image outputs in the notebook"
    )
    for i in range(expected):
        figure = figures.nth(i)
        figure.scroll_into_view_if_needed()
        size = figure.evaluate("(img) => [img.complete, img.naturalWidth, img.naturalHeight]")
        assert size[0] and size[1] > 0 and size[2] > 0, f"figure {i + 1} did not load: {size}"

    math = page.locator("span.math, div.math")
    if has_math(notebook):
        assert math.count() > 0, "the notebook's prose has math but the page has none"
        unrendered = page.evaluate(
            """() => [...document.querySelectorAll('span.math, div.math')]
                   .filter((el) => !el.querySelector('mjx-container')
                                   || el.getBoundingClientRect().width === 0)
                   .map((el) => el.textContent.slice(0, 60))"""
        )
        assert not unrendered, f"math left unrendered: {unrendered}"
        assert page.locator("mjx-merror").count() == 0, "MathJax reported an error in a formula"
    assert not problems.all(), "\n".join(problems.all())


def test_glossary_link_opens_glossary_with_chinese(site_url: str, page, artifacts: Path) -> None:
    problems = watch(page)
    page.goto(f"{site_url}/notebooks/00_start_here.html", wait_until="load")
    link = page.locator("article a[href*='glossary']").first
    link.click()
    page.wait_for_load_state("load")
    assert page.url.endswith("docs/glossary.html"), page.url
    assert "glossary" in page.locator("h1").first.inner_text().lower()
    assert_cjk_font(fonts_rendering(page, "残差"), "残差")
    page.screenshot(path=str(artifacts / "site-glossary.png"))
    assert not problems.all(), "\n".join(problems.all())


def test_search_finds_a_lesson(site_url: str, page) -> None:
    problems = watch(page)
    page.goto(f"{site_url}/search.html?q=bottleneck", wait_until="load")
    results = page.locator("#search-results li a")
    results.first.wait_for(timeout=UI_TIMEOUT_MS)
    hrefs = [results.nth(i).get_attribute("href") for i in range(results.count())]
    assert any("03_bottleneck_block" in (href or "") for href in hrefs), hrefs
    assert not problems.all(), "\n".join(problems.all())


def test_screenshots(site_url: str, page, artifacts: Path) -> None:
    """Home page and two lessons, at a figure or at the math, for a person to look at."""
    page.goto(f"{site_url}/index.html", wait_until="load")
    page.screenshot(path=str(artifacts / "site-home.png"))
    page.goto(f"{site_url}/notebooks/01_residual_unit.html", wait_until="load")
    wait_for_mathjax(page)
    page.locator("span.math").nth(4).scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "site-01_residual_unit.png"))
    page.goto(f"{site_url}/notebooks/08_train_a_resnet.html", wait_until="load")
    page.locator(".cell_output img").nth(1).scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "site-08_train_a_resnet.png"))
    for name in ("site-home.png", "site-01_residual_unit.png", "site-08_train_a_resnet.png"):
        assert (artifacts / name).stat().st_size > 10_000, f"{name} looks empty"
