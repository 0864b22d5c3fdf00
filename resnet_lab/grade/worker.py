"""Grade one submitted notebook in a fresh kernel: run its cells under time limits, then check each exercise.

The grader starts this file as its own process for every notebook
(``python .../resnet_lab/grade/worker.py JOB.json RESULT.json``), so a submission that hangs or kills
its kernel can at worst lose its own result; the grader kills the process when it overruns. The file
imports nothing from resnet_lab (so not torch either): the worker starts in a blink, and only the
kernel imports the course's code.

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

MARK = "@@resnet-lab-grade@@ "  # starts the line the kernel prints with an outcome (see in_kernel.py)
MISSING = "missing"
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


def stored_usage(nb: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Hints and solutions shown while the student worked, from the outputs saved in the notebook."""
    usage: dict[str, dict[str, Any]] = {}
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) or []:
            text = output.get("text", "")
            text = "".join(text) if isinstance(text, list) else text
            for level, name in _HINT_RE.findall(text):
                entry = usage.setdefault(name, {"hints": 0, "solution": False})
                entry["hints"] = max(entry["hints"], int(level))
            for name in _SOLUTION_RE.findall(text):
                usage.setdefault(name, {"hints": 0, "solution": False})["solution"] = True
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
    """Run one submission and check each of its lesson's exercises."""
    start = time.monotonic()
    result = NotebookRun()

    def finish(status: str, detail: str, plans: list[dict[str, Any]] | None = None) -> NotebookRun:
        for p in plans or [dict(e, lookup=e["target"], note="") for e in exercises]:
            result.exercises.append(
                {
                    "exercise": p["exercise"],
                    "status": status,
                    "detail": detail,
                    **_NOTHING_CHECKED,
                    "seconds": 0.0,
                }
            )
        result.seconds = round(time.monotonic() - start, 1)
        return result

    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(nb.get("cells"), list):
            raise ValueError("no list of cells")
    except (OSError, ValueError, AttributeError) as exc:
        result.run = f"not a readable notebook: {exc}"
        return finish(NOTEBOOK_FAILED, result.run)
    usage = stored_usage(nb)
    plans = plan(nb, exercises)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="resnet-lab-grade-") as cwd:
        try:
            kernel = Kernel(cwd, _env(limits.fast))
        except Exception as exc:  # noqa: BLE001
            result.run = f"the kernel did not start: {exc}"
            return finish(NOTEBOOK_FAILED, result.run, plans)
        try:
            budget_end = time.monotonic() + limits.notebook_seconds
            indices = cells_to_run(nb, plans, limits.quick)
            runs = _execute(kernel, nb, indices, budget_end, limits, notes)
            crashed = next((i for i, r in runs.items() if r.status == "dead"), None)
            dead = crashed is not None
            if dead and time.monotonic() < budget_end:
                # Don't lose what came before the crash: run those cells again in a fresh kernel and check there.
                kernel.close()
                kernel = Kernel(cwd, _env(limits.fast))
                before = [i for i in indices if i < crashed]
                again = _execute(kernel, nb, before, budget_end, limits, [])
                runs = {**again, crashed: runs[crashed]}
                dead = not kernel.alive() or any(r.status == "dead" for r in again.values())
                notes.append(
                    f"the cells before cell {crashed} were run again in a fresh kernel to check the "
                    "exercises defined there"
                )
            for p in plans:
                cell_run = runs.get(p["cell"]) if p["cell"] is not None else None
                base = {
                    "exercise": p["exercise"],
                    "checks_passed": 0,
                    "checks_total": 0,
                    "hidden_passed": 0,
                    "hidden_total": 0,
                    "seconds": 0.0,
                }
                if cell_run is not None and cell_run.status == "dead":
                    outcome = {
                        **base,
                        "status": NOTEBOOK_FAILED,
                        "detail": f"the kernel died in this exercise's cell ({cell_run.index})",
                    }
                elif p["cell"] is not None and p["cell"] > max(runs, default=-1):
                    outcome = {
                        **base,
                        "status": NOTEBOOK_FAILED,
                        "detail": "its cell was not run (the notebook stopped before it; see run)",
                    }
                elif dead or not kernel.alive():
                    dead = True
                    outcome = {**base, "status": NOTEBOOK_FAILED, "detail": "the kernel died before this was checked"}
                elif cell_run is not None and cell_run.status == "timeout":
                    outcome = {**base, "status": TIMED_OUT, "detail": _cell_note(cell_run)}
                elif cell_run is not None and cell_run.status == "error":
                    outcome = {**base, "status": ERROR, "detail": f"the exercise cell raised {cell_run.error}"}
                else:
                    spec = {
                        "exercise": p["exercise"],
                        "lookup": p["lookup"],
                        "kwargs": p.get("kwargs") or {},
                        "hidden": p.get("hidden"),
                    }
                    code = f"import resnet_lab.grade.in_kernel as _rl_grade; _rl_grade.report(globals(), {spec!r})"
                    run = kernel.run(code, -1, limits.check_seconds)
                    outcome = _parse_marker(run.stdout)
                    if outcome is None:
                        if run.status == "timeout":
                            detail = (
                                f"the checker did not finish within {limits.check_seconds:.0f} s "
                                "(an endless loop in the student's code?)"
                            )
                            outcome = {**base, "status": TIMED_OUT, "detail": detail}
                        elif run.status == "dead":
                            outcome = {**base, "status": NOTEBOOK_FAILED, "detail": f"while checking: {run.error}"}
                            dead = True
                        else:
                            outcome = {**base, "status": ERROR, "detail": f"the grader could not check it: {run.error}"}
                    if outcome.get("status") == MISSING and p["note"]:
                        outcome["detail"] = p["note"]
                if p["note"] and p["note"] not in outcome["detail"]:
                    outcome["detail"] = f"{p['note']}; {outcome['detail']}" if outcome["detail"] else p["note"]
                result.exercises.append(outcome)
            if not dead and kernel.alive():
                run = kernel.run("import resnet_lab.grade.in_kernel as _rl_grade; _rl_grade.usage_report()", -1, 30)
                live = (_parse_marker(run.stdout) or {}).get("usage", {})
                for name, entry in live.items():
                    mine = usage.setdefault(name, {"hints": 0, "solution": False})
                    mine["hints"] = max(mine["hints"], entry["hints"])
                    mine["solution"] = mine["solution"] or entry["solution"]
        finally:
            kernel.close()
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


def _parse_marker(stdout: str) -> dict[str, Any] | None:
    for line in stdout.splitlines():
        if line.startswith(MARK):
            try:
                return json.loads(line[len(MARK) :])
            except ValueError:
                return None
    return None


def main(argv: list[str] | None = None) -> int:
    job_path, out_path = (argv or sys.argv[1:])[:2]
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    result = grade_notebook(Path(job["notebook"]), job["exercises"], Limits(**job["limits"]))
    Path(out_path).write_text(json.dumps(asdict(result)), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
