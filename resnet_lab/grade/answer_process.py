"""The answer process: a fresh process that runs a submission's answers and checks each exercise.

It is started by the grader (see :mod:`resnet_lab.grade.answers`) for one notebook, never by the
student's kernel. It imports torch and the course's checkers *before* any student code, keeps its own
references to the checkers, wraps the exercises' references (:mod:`~resnet_lab.grade.references`) and
takes a :mod:`~resnet_lab.grade.tamper` snapshot; then, exercise by exercise, it executes the cells the
answer needs (the first code cell, import and definition-only cells, exercise cells: never the rest of
the notebook) and runs the exercise's checker on the answer, visible configurations first, then the
teacher's hidden ones (which arrive with the job, never through a file the kernel could read).

An exercise is reported ``tampered`` when the grader's tools changed since the first snapshot, and
``reference used`` when the answer is (an alias or subclass of) the package's reference or called it.
Student output goes nowhere; outcomes go to the grader on a private channel, each line signed with a
one-off token the grader chose, so a line printed by the student's code is not taken for an outcome.

Each time the student's code returns to a checker, a small tamper check of what the comparison uses
next runs as well (:func:`guard`). Limits of this design (said plainly in docs/teachers.md): the checker
runs in this process, next to the student's code, so an answer written against the grader's internals
(changing what neither check looks at, or the checks themselves) can still forge a pass.
"""

from __future__ import annotations

import builtins
import contextlib
import inspect
import io
import json
import os
import sys
import time
import traceback
from typing import Any

import torch

try:  # the lessons import it; importing it first keeps its start-up out of the tamper check
    import torchvision  # noqa: F401
except ImportError:  # pragma: no cover - torchvision is in requirements.txt
    pass

from resnet_lab import checks
from resnet_lab.checks import engine

from . import references, tamper

PASSED, FAILED, NOT_ATTEMPTED = "passed", "failed", "not attempted"
TAMPERED, REFERENCE_USED = "tampered", "reference used"
MISSING, ERROR = "missing", "error"
_CHECKERS = dict(checks.CHECKERS)  # our own copy, taken before any student code runs
_COLLECTING = engine.collecting
_NOT_DONE = engine.NotDone


def summary(exc: BaseException) -> str:
    """The message's first line and its first hint: what differs, and the first thing to check."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    first = lines[0] if lines else type(exc).__name__
    hint = next((line for line in lines[1:] if line.startswith("Hint:")), "")
    return f"{first} | {hint}" if hint else first


def _run(checker: Any, obj: Any, calls: list[dict[str, Any]]) -> tuple[int, int, BaseException | None]:
    """Run the checker once per keyword set in ``calls``; count configurations passed and tried."""
    passed = total = 0
    first: BaseException | None = None
    for kwargs in calls:
        with _COLLECTING() as results, contextlib.redirect_stdout(io.StringIO()):
            try:
                checker(obj, **kwargs)
                error: BaseException | None = None
            except Exception as exc:  # noqa: BLE001 - a checker must never stop the grading of the others
                error = exc
        if results:
            passed += sum(err is None for _, err in results)
            total += len(results)
        else:  # a checker that checks one thing (e.g. a whole ResNet of one depth)
            passed += error is None
            total += 1
        first = first or error
    return passed, total, first


def hidden_calls(checker: Any, kwargs: dict[str, Any], hidden: list[Any] | None) -> list[dict[str, Any]]:
    """Keyword sets for the hidden configurations: ``configs=[...]``, or one call per ``depth``."""
    if not hidden:
        return []
    params = inspect.signature(checker).parameters
    if "configs" in params:
        return [{**kwargs, "configs": [tuple(c) if isinstance(c, list) else c for c in hidden]}]
    if "depth" in params:
        return [{**kwargs, "depth": d} for d in hidden]
    return []


class Tampered(BaseException):  # noqa: N818 - not an error of the student's code: checkers must not catch it
    """Raised when the grader's tools changed while the student's code ran (see :func:`guard`)."""


def guard() -> None:
    """Install the tamper check that runs each time the student's code returns to a checker."""
    hot: tamper.Snapshot = {}

    def after_student_code() -> None:
        changed = tamper.changes(hot, tamper.hot_snapshot())
        if changed:
            raise Tampered("; ".join(changed))

    engine.after_student_code = after_student_code
    hot.update(tamper.hot_snapshot())  # taken with the check in place: replacing it is tampering too


def check(namespace: dict[str, Any], spec: dict[str, Any], before: tamper.Snapshot) -> dict[str, Any]:
    """The outcome of one exercise: status, configurations passed/tried (visible, hidden), detail."""
    out: dict[str, Any] = {"checks_passed": 0, "checks_total": 0, "hidden_passed": 0, "hidden_total": 0, "detail": ""}
    changed = tamper.changes(before, tamper.snapshot())
    if changed:
        return {
            **out,
            "status": TAMPERED,
            "detail": "code run for the answer changed the grader's tools: " + "; ".join(changed),
        }
    obj = namespace.get(spec["lookup"])
    if obj is None:
        return {**out, "status": MISSING, "detail": f"{spec['lookup']} is not defined after running the answer"}
    why = references.static_match(obj, spec["exercise"])
    if why:
        return {**out, "status": REFERENCE_USED, "detail": why}
    checker = _CHECKERS.get(spec["exercise"])
    if checker is None:
        return {**out, "status": ERROR, "detail": f"no checker called {spec['exercise']} in resnet_lab.checks"}
    kwargs = dict(spec.get("kwargs") or {})
    try:
        with references.Watch(spec["exercise"]) as watch:
            passed, total, error = _run(checker, obj, [kwargs])
            out.update(checks_passed=passed, checks_total=total)
            not_done = isinstance(error, _NOT_DONE)
            calls = hidden_calls(checker, kwargs, spec.get("hidden"))
            if calls and not not_done:
                h_passed, h_total, h_error = _run(checker, obj, calls)
                out.update(hidden_passed=h_passed, hidden_total=h_total)
                if error is None and h_error is not None:
                    out["detail"] = "hidden checks: " + summary(h_error)
    except Tampered as exc:
        detail = f"the answer's code changed the grader's tools (caught when it returned to the checker): {exc}"
        return {**out, "status": TAMPERED, "detail": detail}
    changed = tamper.changes(before, tamper.snapshot())
    if changed:
        return {
            **out,
            "status": TAMPERED,
            "detail": "the answer changed the grader's tools while it was checked: " + "; ".join(changed),
        }
    if watch.used:
        detail = f"the answer's code calls resnet_lab's {', '.join(watch.used)}, the reference it is checked against"
        return {**out, "status": REFERENCE_USED, "detail": detail}
    if not_done:
        return {
            **out,
            "status": NOT_ATTEMPTED,
            "detail": "the stub still raises NotImplementedError",
            "checks_passed": 0,
        }
    if error is not None:
        return {**out, "status": FAILED, "detail": summary(error)}
    return {**out, "status": FAILED if out["hidden_passed"] < out["hidden_total"] else PASSED}


def python_source(source: str) -> str:
    """A cell as plain Python: IPython magics (``%...``) and shell lines (``!...``) blanked out."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n"))


def _error_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def run(job: dict[str, Any], emit: Any) -> None:
    """Execute the job's cells in order and check each exercise once its cell has run; ``emit`` each event."""
    torch.set_num_threads(1)
    references.install()
    guard()
    before = tamper.snapshot()
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    cells = [c for c in job["cells"] if c["index"] not in set(job.get("skip_cells", []))]
    errors: dict[int, str] = {}
    done = 0
    for spec in job["exercises"]:
        emit({"start": spec["exercise"]})
        while done < len(cells) and (spec["cell"] is None or cells[done]["index"] <= spec["cell"]):
            cell = cells[done]
            done += 1
            emit({"cell": cell["index"]})
            try:
                code = compile(python_source(cell["source"]), f"<answer cell {cell['index']}>", "exec")
                exec(code, namespace)  # noqa: S102 - running the student's answer is this process's job
            except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt too
                errors[cell["index"]] = _error_line(exc)
            emit({"cell_done": cell["index"]})
        if spec["cell"] in errors:
            outcome = {"status": ERROR, "detail": f"the exercise cell raised {errors[spec['cell']]}"}
        else:
            started = time.perf_counter()
            outcome = check(namespace, spec, before)
            outcome["seconds"] = round(time.perf_counter() - started, 2)
        emit({"outcome": {**outcome, "exercise": spec["exercise"]}})


def main(job: dict[str, Any], channel: Any, token: str) -> None:
    """Entry point in the fresh process: silence the student's output, run the job, report on ``channel``."""
    os.chdir(job["cwd"])
    os.environ.update(job["env"])
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    sys.stdout = sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115

    def emit(event: dict[str, Any]) -> None:
        channel.send_bytes((token + json.dumps(event)).encode())

    try:
        run(job, emit)
    except BaseException:  # noqa: BLE001 - tell the grader what broke, then stop
        emit({"crash": traceback.format_exc(limit=3)[-500:]})
