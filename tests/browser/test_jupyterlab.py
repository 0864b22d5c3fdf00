"""JupyterLab in Chromium, started exactly as `make lab` starts it (on a copy of the repository, so
nothing the test does can touch the committed notebooks): the whole repository in the file browser
with 00_start_here open, no news prompt, 00 runs top to bottom through the UI on a fresh kernel with
no error, the glossary link opens and its Chinese is drawn with a CJK font, and a student copy's check
cell answers an unfinished exercise with the friendly hint rather than a wall of traceback."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from browser_helpers import REPO, UI_TIMEOUT_MS, VENV, assert_cjk_font, fonts_rendering, skip_or_fail, watch

RUN_TIMEOUT_MS = int(os.environ.get("RESNET_LAB_RUN_TIMEOUT_MS", 240_000))
COPY_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "artifacts",
    "__pycache__",
    ".ipynb_checkpoints",
    "*.egg-info",
    ".pytest_cache",
    "FashionMNIST",
    "cifar-10-batches-py",
    "checkpoints",
)


@dataclass
class Lab:
    open_url: str  # what `make lab` hands the learner's browser
    base_url: str
    token: str
    root: Path
    output: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory, chromium_path: str) -> Iterator[Lab]:
    if shutil.which("make") is None:
        skip_or_fail("`make` is not installed")
    if not (VENV / "bin" / "jupyter").exists():
        skip_or_fail(f"no jupyter in {VENV} (make setup installs it)")
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "resnet-lab"
    shutil.copytree(REPO, root, ignore=COPY_IGNORE)
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    # Keep the tester's own Jupyter config, settings and workspaces out; the course's .jupyter/ still applies.
    for name, sub in (
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTERLAB_SETTINGS_DIR", "settings"),
        ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
    ):
        (tmp / sub).mkdir()
        env[name] = str(tmp / sub)
    env.pop("JUPYTER_CONFIG_PATH", None)
    lab_args = (
        f"--port={port} --ServerApp.port_retries=0 --ServerApp.ip=127.0.0.1 "
        f'--IdentityProvider.token={token} --ServerApp.browser="echo RESNET_LAB_OPEN %s"'
    )
    process = subprocess.Popen(
        ["make", "--no-print-directory", "-o", "setup", "lab", f"VENV={VENV}", f"LAB_ARGS={lab_args}"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    opened = threading.Event()

    def read() -> None:
        for line in process.stdout:
            output.append(line.rstrip())
            if line.startswith("RESNET_LAB_OPEN "):
                opened.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not opened.wait(120):
            pytest.fail("make lab did not open a browser within 120 s:\n" + "\n".join(output[-40:]), pytrace=False)
        open_url = next(line.split(" ", 1)[1] for line in output if line.startswith("RESNET_LAB_OPEN "))
        yield Lab(open_url=open_url, base_url=f"http://127.0.0.1:{port}", token=token, root=root, output=output)
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # our own process group: make and the server it started
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


class KernelErrors:
    """Error messages the kernel sends to the browser (iopub `error`, `execute_reply` with status error),
    read from the page's websocket frames (JSON, or the binary v1.kernel.websocket.jupyter.org protocol)."""

    def __init__(self, page) -> None:
        self.errors: list[str] = []
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))

    def _frame(self, payload) -> None:
        try:
            msg_type, content = self._decode(payload)
        except Exception:  # noqa: BLE001 - a frame that is not a kernel message
            return
        if msg_type == "error" or (msg_type == "execute_reply" and content.get("status") == "error"):
            self.errors.append(f"{msg_type}: {content.get('ename')}: {content.get('evalue')}")

    @staticmethod
    def _decode(payload) -> tuple[str, dict]:
        if isinstance(payload, str):
            message = json.loads(payload)
            return message["header"]["msg_type"], message.get("content", {})
        count = int.from_bytes(payload[:8], "little")
        offsets = [int.from_bytes(payload[8 * (i + 1) : 8 * (i + 2)], "little") for i in range(count)]
        parts = [payload[offsets[i] : offsets[i + 1]] for i in range(count - 1)]
        # parts: channel, header, parent_header, metadata, content, buffers...
        return json.loads(parts[1])["msg_type"], json.loads(parts[4])


def open_notebook(page, url: str, name: str) -> None:
    page.goto(url)
    page.wait_for_url(re.compile(r"/lab"), timeout=UI_TIMEOUT_MS)
    page.locator(".lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel", has_text=name).wait_for(timeout=UI_TIMEOUT_MS)
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").first.wait_for(timeout=UI_TIMEOUT_MS)
    wait_for_idle_kernel(page)


def wait_for_idle_kernel(page) -> None:
    """The status bar says `Python 3 (ipykernel) | Idle`: the kernel is up, connected and not busy."""
    page.locator(".jp-StatusBar-Widget").get_by_text(re.compile(r"\| Idle$")).first.wait_for(timeout=UI_TIMEOUT_MS)


def restart_and_run_all(page) -> None:
    """Kernel > Restart Kernel and Run All Cells…, confirmed: a fresh kernel runs every cell from the top."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Kernel$")).click()
    page.locator(".lm-Menu-itemLabel", has_text="Restart Kernel and Run All Cells").click()
    page.locator(".jp-Dialog .jp-mod-accept").click()
    page.locator(".jp-Dialog").wait_for(state="detached")
    page.wait_for_function(
        """() => {
            const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map((p) => p.textContent);
            const status = panel.querySelector('.jp-Notebook-ExecutionIndicator')?.getAttribute('data-status');
            return prompts.length > 0 && !prompts.some((p) => p.includes('*')) && prompts.some((p) => /\\d/.test(p))
                   && status === 'idle';
        }""",
        timeout=RUN_TIMEOUT_MS,
        polling=500,
    )


def code_cells(page, notebook: Path) -> list[dict]:
    """Source (from the notebook file), prompt and output text (from the page) of every code cell of the
    open notebook. The page's cells come in the file's order; editors of cells out of view may be empty."""
    shown = page.evaluate(
        """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell')].map((cell) => ({
            code: cell.classList.contains('jp-CodeCell'),
            prompt: cell.querySelector('.jp-InputArea-prompt')?.textContent ?? '',
            output: [...cell.querySelectorAll('.jp-OutputArea-output')].map((o) => o.textContent).join('\\n'),
        }))"""
    )
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    assert len(shown) == len(cells), f"the page shows {len(shown)} cells, {notebook.name} has {len(cells)}"
    return [
        {"source": "".join(cell["source"]), **view} for cell, view in zip(cells, shown, strict=True) if view["code"]
    ]


def news_toasts(page) -> list[str]:
    return [text for text in page.locator(".Toastify__toast").all_inner_texts() if "news" in text.lower()]


def test_make_lab_shows_the_repo_and_runs_00_without_errors(lab: Lab, page, artifacts: Path) -> None:
    problems = watch(page)
    kernel = KernelErrors(page)
    assert lab.open_url.startswith("file://")
    open_notebook(page, lab.open_url, "00_start_here.ipynb")
    assert "/lab/tree/notebooks/00_start_here.ipynb" in page.url, page.url

    # the file browser is in notebooks/, and its root (the home breadcrumb) is the whole repository
    listing = page.locator(".jp-DirListing-content .jp-DirListing-itemName")
    listing.filter(has_text="00_start_here.ipynb").first.wait_for()
    page.locator(".jp-BreadCrumbs-home").first.click()
    listing.filter(has_text="README.md").first.wait_for(timeout=UI_TIMEOUT_MS)
    names = set(listing.all_inner_texts())
    assert {"README.md", "docs", "data", "notebooks"} <= names, f"file browser root shows {sorted(names)}"

    started = time.perf_counter()
    restart_and_run_all(page)
    print(f"00_start_here run all: {time.perf_counter() - started:.1f} s")
    cells = code_cells(page, lab.root / "notebooks" / "00_start_here.ipynb")
    tracebacks = [
        c["source"][:60] for c in cells if "Traceback" in c["output"] or "Error" in c["output"].split("\n")[-1]
    ]
    assert not kernel.errors and not tracebacks, f"errors while running 00: {kernel.errors} in cells {tracebacks}"
    unnumbered = [c["source"][:60] for c in cells if not re.search(r"\[\d+\]", c["prompt"])]
    assert not unnumbered, f"cells that did not run: {unnumbered}"
    figures = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output img")
    assert figures.count() >= 1, "the figure is missing"
    assert not news_toasts(page), f"JupyterLab asks about news: {news_toasts(page)}"
    page.screenshot(path=str(artifacts / "lab-00_start_here-run-all.png"))

    # the glossary link in 00 opens docs/glossary.md, and its Chinese is drawn with a real CJK font
    link = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-RenderedMarkdown a[href*='glossary']").first
    link.scroll_into_view_if_needed()
    link.click()
    page.locator(".lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel", has_text="glossary.md").wait_for(
        timeout=UI_TIMEOUT_MS
    )
    page.locator(".jp-MainAreaWidget:not(.lm-mod-hidden)").get_by_text("残差").first.wait_for(timeout=UI_TIMEOUT_MS)
    assert_cjk_font(fonts_rendering(page, "残差"), "残差")
    assert not page.locator(".jp-Dialog").filter(has_text=re.compile("not found|Cannot open", re.I)).count()
    page.screenshot(path=str(artifacts / "lab-glossary.png"))
    assert not news_toasts(page)
    assert not problems.all(), "\n".join(problems.all())


def test_student_copy_check_cell_gives_a_friendly_hint(lab: Lab, page, artifacts: Path) -> None:
    problems = watch(page)
    url = f"{lab.base_url}/lab/tree/notebooks/student/01_residual_unit.ipynb?token={lab.token}"
    open_notebook(page, url, "01_residual_unit.ipynb")
    try:
        restart_and_run_all(page)  # stops at the first check cell: its exercise is not done
    finally:
        page.screenshot(path=str(artifacts / "lab-student-check-hint.png"))
    cells = code_cells(page, lab.root / "notebooks" / "student" / "01_residual_unit.ipynb")
    checks = [c for c in cells if "checks.residual_unit(" in c["source"]]
    assert checks, "no check cell for the residual-unit exercise"
    check = checks[0]
    assert re.search(r"\[\d+\]", check["prompt"]), "the check cell did not run"
    output = check["output"]
    assert "not done yet" in output and "fill in the cell above" in output, f"no friendly hint:\n{output}"
    lines = [line for line in output.splitlines() if line.strip()]
    internal = [line for line in lines if "checks.py" in line or "_call(" in line or "site-packages" in line]
    assert len(lines) <= 12 and not internal, f"a wall of traceback ({len(lines)} lines) around the hint:\n{output}"
    # The screenshot shows the check cell and its hint. JupyterLab draws only the cells in view
    # (windowing), so wait until the hint itself is painted after scrolling, not just present.
    cell = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell", has_text="checks.residual_unit(").first
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-OutputArea-output", has_text="not done yet").first.wait_for(
        state="visible", timeout=UI_TIMEOUT_MS
    )
    page.wait_for_timeout(500)  # let the scroll settle before the picture
    page.screenshot(path=str(artifacts / "lab-student-check-hint.png"))
    assert not problems.all(), "\n".join(problems.all())
