"""Run one submitted notebook in a fresh kernel, under time limits, to see whether it runs.

The grader starts this file as its own process for every notebook
(``python .../resnet_lab/grade/worker.py JOB.json RESULT.json``), so a submission that hangs or kills
its kernel can at worst lose its own result; the grader kills the process when it overruns. The file
imports nothing from resnet_lab (so not torch either): the worker starts in a blink, and only the
kernel imports the course's code. No checker runs in the kernel: see :mod:`resnet_lab.grade.answers`.

The kernel runs in an empty temporary folder with downloads pointed at a closed port (offline),
``MPLBACKEND=Agg`` and, unless asked for the full mode, ``RESNET_LAB_FAST=1``.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import queue
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


def _load_notebook_cells() -> Any:
    """resnet_lab/notebook_cells.py, loaded by its path: importing it as ``resnet_lab.notebook_cells``
    would import the package, and with it torch, into a process that only reads JSON and drives a kernel."""
    path = Path(__file__).resolve().parent.parent / "notebook_cells.py"
    spec = importlib.util.spec_from_file_location("resnet_lab_notebook_cells", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_cells = _load_notebook_cells()
cell_source, parse_cell = _cells.cell_source, _cells.parse_cell

MISSING, PENDING = "missing", "pending"  # pending: the cell ran; the answer process gives the verdict
NOTEBOOK_FAILED, TIMED_OUT, ERROR = "notebook failed", "timed out", "error"
_HINT_RE = re.compile(r"Hint (\d+) of \d+ for (\w+)")
_SOLUTION_RE = re.compile(r"Solution for (\w+) \(from ")
_OFFLINE_PROXY = "http://127.0.0.1:9"  # the discard port: any download fails at once
# an exercise's counts before (or without) any check; its "seconds" are added by the caller
_NOTHING_CHECKED: dict[str, Any] = {
    "checks_passed": 0,
    "checks_total": 0,
    "hidden_passed": 0,
    "hidden_total": 0,
    "hints_used": 0,
    "solution_revealed": False,
}


@dataclass
class Limits:
    notebook_seconds: float = 600.0  # all of the student's cells together
    cell_seconds: float = 120.0  # one cell
    check_seconds: float = 120.0  # one exercise's checker
    quick: bool = False  # run only the imports and the exercise cells
    fast: bool = True  # RESNET_LAB_FAST=1 in the kernel


@dataclass
class CellRun:
    index: int
    status: str  # "ok", "error", "timeout", "dead"
    seconds: float
    error: str = ""
    stdout: str = ""


@dataclass
class NotebookRun:
    run: str = "ok"  # what happened to the notebook as a whole, in one line
    seconds: float = 0.0
    exercises: list[dict[str, Any]] = field(default_factory=list)


# --------------------------------------------------------------------------------------
# Reading the submission
# --------------------------------------------------------------------------------------


def _defines(source: str) -> list[tuple[str, str]]:
    """(name, "class"/"function") for each top-level def/class of a cell."""
    tree = parse_cell(source)
    found = []
    for node in tree.body if tree else []:
        if isinstance(node, ast.ClassDef):
            found.append((node.name, "class"))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.append((node.name, "function"))
    return found


def _only_imports(source: str) -> bool:
    tree = parse_cell(source)
    return bool(tree and tree.body) and all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in tree.body)


def usage_in_text(text: str, usage: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Hints and solutions a text shows (``Hint 2 of 3 for basic_block``, ``Solution for basic_block (from``)."""
    usage = {} if usage is None else usage
    for level, name in _HINT_RE.findall(text):
        entry = usage.setdefault(name, {"hints": 0, "solution": False})
        entry["hints"] = max(entry["hints"], int(level))
    for name in _SOLUTION_RE.findall(text):
        usage.setdefault(name, {"hints": 0, "solution": False})["solution"] = True
    return usage


def stored_usage(nb: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Hints and solutions shown while the student worked, from the outputs saved in the notebook."""
    usage: dict[str, dict[str, Any]] = {}
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) or []:
            text = output.get("text", "")
            usage_in_text("".join(text) if isinstance(text, list) else text, usage)
    return usage


def plan(nb: dict[str, Any], exercises: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each exercise, which name to check and where it is defined, noting renames and deleted cells.

    ``exercises``: dicts with ``exercise``, ``target``, ``kind`` and ``cell_id`` from the lesson.
    Adds ``lookup`` (the name to check), ``cell`` (index of the defining cell or None) and ``note``.
    """
    cells = nb.get("cells", [])
    code = [(i, c) for i, c in enumerate(cells) if c.get("cell_type") == "code"]
    plans = []
    for ex in exercises:
        p = {**ex, "lookup": ex["target"], "cell": None, "note": ""}
        defining = [i for i, c in code if (ex["target"], ex["kind"]) in _defines(cell_source(c))]
        by_id = next((i for i, c in code if ex.get("cell_id") and c.get("id") == ex["cell_id"]), None)
        if defining:
            p["cell"] = defining[-1]
        elif by_id is not None:
            same_kind = [n for n, kind in _defines(cell_source(cells[by_id])) if kind == ex["kind"]]
            p["cell"] = by_id
            if same_kind:
                p["lookup"] = same_kind[0]
                p["note"] = f"renamed {ex['target']} to {same_kind[0]}; graded under the new name"
            else:
                p["note"] = f"the exercise cell no longer defines {ex['target']}"
        else:
            p["note"] = f"the exercise cell was deleted and no cell defines {ex['target']}"
        plans.append(p)
    return plans


def cells_to_run(nb: dict[str, Any], plans: list[dict[str, Any]], quick: bool) -> list[int]:
    """Indices of the code cells to execute: all, or (quick) the first cell, import cells and exercise cells."""
    code = [i for i, c in enumerate(nb.get("cells", [])) if c.get("cell_type") == "code"]
    if not quick:
        return code
    wanted = {p["cell"] for p in plans if p["cell"] is not None}
    cells = nb["cells"]
    return [i for n, i in enumerate(code) if n == 0 or i in wanted or _only_imports(cell_source(cells[i]))]


# --------------------------------------------------------------------------------------
# Talking to the kernel
# --------------------------------------------------------------------------------------


class Kernel:
    """A fresh IPython kernel (this interpreter) in ``cwd``; code runs with a time limit and is interrupted after it."""

    def __init__(self, cwd: str, env: dict[str, str]) -> None:
        from jupyter_client.kernelspec import KernelSpec
        from jupyter_client.manager import KernelManager

        self.km = KernelManager()
        self.km._kernel_spec = KernelSpec(  # this interpreter, whatever kernelspecs are installed
            argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            language="python",
            display_name="resnet-lab grader",
        )
        self.km.start_kernel(cwd=cwd, env=env)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)

    def alive(self) -> bool:
        return bool(self.km.is_alive())

    def run(self, code: str, index: int, timeout: float) -> CellRun:
        """Execute ``code``; on timeout interrupt the kernel and wait briefly for it to come back."""
        start = time.monotonic()
        msg_id = self.kc.execute(code, allow_stdin=False, store_history=True)
        stdout: list[str] = []
        error = ""
        status = "ok"
        deadline = start + timeout
        interrupted_at: float | None = None
        while True:
            now = time.monotonic()
            if interrupted_at is None and now > deadline:
                self.km.interrupt_kernel()
                interrupted_at = now
                status = "timeout"
            if interrupted_at is not None and now > interrupted_at + 10:
                return CellRun(
                    index, "dead", now - start, "the kernel did not respond to an interrupt", "".join(stdout)
                )
            try:
                msg = self.kc.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                if not self.alive():
                    return CellRun(index, "dead", time.monotonic() - start, "the kernel died", "".join(stdout))
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                stdout.append(content.get("text", ""))
            elif kind == "error" and status != "timeout":
                status = "error"
                evalue = (content.get("evalue") or "").strip()
                error = f"{content.get('ename')}: {evalue.splitlines()[0] if evalue else ''}"
            elif kind == "status" and content.get("execution_state") == "idle":
                break
        return CellRun(index, status, time.monotonic() - start, error, "".join(stdout))

    def close(self) -> None:
        try:
            self.kc.stop_channels()
            self.km.shutdown_kernel(now=True)
        except Exception:  # noqa: BLE001 - a dead kernel is fine to leave
            pass


def _env(fast: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.update(MPLBACKEND="Agg", PYTHONUNBUFFERED="1", RESNET_LAB_DOWNLOAD="0")
    for key in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        env[key] = _OFFLINE_PROXY
    env.pop("no_proxy", None)
    env.pop("NO_PROXY", None)
    if fast:
        env["RESNET_LAB_FAST"] = "1"
    else:
        env.pop("RESNET_LAB_FAST", None)
    return env


def _cell_note(run: CellRun) -> str:
    if run.status == "timeout":
        return f"cell {run.index} timed out after {run.seconds:.0f} s (interrupted)"
    if run.status == "dead":
        return f"cell {run.index}: {run.error}"
    return f"cell {run.index} raised {run.error}"


def grade_notebook(path: Path, exercises: list[dict[str, Any]], limits: Limits) -> NotebookRun:
    """Run one submission in a fresh kernel; say, for each exercise, whether its cell ran.

    No checker runs in the kernel and nothing it prints is read as an outcome: an exercise whose cell ran
    is ``pending`` here, and the grader checks it in an answer process (:mod:`resnet_lab.grade.answers`).
    An exercise whose cell raised, timed out, killed the kernel or was never reached gets its status here.
    """
    start = time.monotonic()
    result = NotebookRun()
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(nb.get("cells"), list):
            raise ValueError("no list of cells")
    except (OSError, ValueError, AttributeError) as exc:
        result.run = f"not a readable notebook: {exc}"
        result.exercises = [
            {"exercise": e["exercise"], "status": NOTEBOOK_FAILED, "detail": result.run, **_NOTHING_CHECKED}
            for e in exercises
        ]
        return result
    usage = stored_usage(nb)
    plans = plan(nb, exercises)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="resnet-lab-grade-") as cwd:
        try:
            kernel = Kernel(cwd, _env(limits.fast))
        except Exception as exc:  # noqa: BLE001
            kernel, runs = None, {}
            notes.append(f"the kernel did not start: {exc}")
        try:
            if kernel is not None:
                runs = _execute(
                    kernel,
                    nb,
                    cells_to_run(nb, plans, limits.quick),
                    time.monotonic() + limits.notebook_seconds,
                    limits,
                    notes,
                )
        finally:
            if kernel is not None:
                kernel.close()
    last = max(runs, default=-1)
    for p in plans:
        run = runs.get(p["cell"]) if p["cell"] is not None else None
        outcome: dict[str, Any] = {"exercise": p["exercise"], **_NOTHING_CHECKED, "detail": p["note"], "plan": p}
        if p["cell"] is None:
            outcome.update(status=MISSING)
        elif run is None and (kernel is None or p["cell"] > last):
            outcome.update(
                status=NOTEBOOK_FAILED, detail="its cell was not run (the notebook stopped before it; see run)"
            )
        elif run is not None and run.status == "dead":
            outcome.update(status=NOTEBOOK_FAILED, detail=f"the kernel died in this exercise's cell ({run.index})")
        elif run is not None and run.status == "timeout":
            outcome.update(status=TIMED_OUT, detail=_cell_note(run))
        elif run is not None and run.status == "error":
            outcome.update(status=ERROR, detail=f"the exercise cell raised {run.error}")
        else:
            outcome.update(status=PENDING)
        if p["note"] and p["note"] not in outcome["detail"]:
            outcome["detail"] = f"{p['note']}; {outcome['detail']}"
        result.exercises.append(outcome)
    live = usage_in_text("".join(r.stdout for r in runs.values()))
    for name, entry in live.items():
        mine = usage.setdefault(name, {"hints": 0, "solution": False})
        mine["hints"] = max(mine["hints"], entry["hints"])
        mine["solution"] = mine["solution"] or entry["solution"]
    for outcome in result.exercises:
        entry = usage.get(outcome["exercise"], {})
        outcome["hints_used"] = entry.get("hints", 0)
        outcome["solution_revealed"] = entry.get("solution", False)
    shown = notes[:3] + ([f"... and {len(notes) - 3} more"] if len(notes) > 3 else [])
    result.run = "; ".join(shown) if notes else "ok"
    result.seconds = round(time.monotonic() - start, 1)
    return result


def _execute(
    kernel: Kernel, nb: dict[str, Any], indices: list[int], budget_end: float, limits: Limits, notes: list[str]
) -> dict[int, CellRun]:
    """Run the cells ``indices`` in order until one kills the kernel or the time is up; note what went wrong."""
    runs: dict[int, CellRun] = {}
    for index in indices:
        remaining = budget_end - time.monotonic()
        if remaining <= 0:
            notes.append(
                f"stopped at cell {index}: the notebook's time limit of {limits.notebook_seconds:.0f} s was used up"
            )
            break
        run = kernel.run(cell_source(nb["cells"][index]), index, min(limits.cell_seconds, remaining))
        runs[index] = run
        if run.status != "ok":
            notes.append(_cell_note(run))
        if run.status == "dead":
            break
    return runs


def main(argv: list[str] | None = None) -> int:
    job_path, out_path = (argv or sys.argv[1:])[:2]
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    result = grade_notebook(Path(job["notebook"]), job["exercises"], Limits(**job["limits"]))
    Path(out_path).write_text(json.dumps(asdict(result)), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
