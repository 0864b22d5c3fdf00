"""The grader's side of the answer process: which cells an answer needs, starting the process, time limits.

Answer processes, and next to each a judge (:mod:`resnet_lab.grade.judge`), are forked from a *fork
server* that imported torch and the checkers once (so each submission costs two forks, not a 3-second
import) and that never runs student code itself. The answer process gets the cells and the exercises;
the judge gets the exercises with the teacher's hidden configurations and never the student's code; the
two talk over a pipe of their own, and only the judge sends outcomes to the grader. Nothing travels
through a file. After the outcomes come back, :mod:`resnet_lab.grade.static` reads the answer's code
(in this process) and can turn a pass into ``needs review`` and a pass or failure into ``reference used``.

Time limits count CPU seconds of the answer process (read from ``/proc``; wall-clock seconds where
there is no ``/proc``), so a busy machine does not turn an honest check into a timeout: an endless loop
burns CPU and is stopped, an honest check on a loaded machine waits for its turn without being charged.
A process that sleeps instead of computing is stopped after ten times the limit in wall-clock time.
When an exercise overruns or kills the process, the remaining exercises are checked in a new process
that skips the cell it was running.
"""

from __future__ import annotations

import ast
import json
import multiprocessing
import multiprocessing.connection
import os
import secrets
import tempfile
import time
from typing import Any

from ..notebook_cells import cell_source, parse_cell
from . import static
from .worker import NOTEBOOK_FAILED, TIMED_OUT, Limits, _env

ERROR = "error"
PASSED, FAILED, REFERENCE_USED, NEEDS_REVIEW = "passed", "failed", "reference used", "needs review"
_DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_STARTUP_SECONDS = 600.0  # wall clock for a fork to report its first event: only a broken machine exceeds it
_context: Any = None


def _definitions(source: str) -> str:
    """The cell's imports, function and class definitions and constants (``NAME = literal``), nothing else.

    This is what an answer may need from a set-up cell; a call such as ``torch.manual_seed(0)``, a training
    loop or ``torch.allclose = ...`` is left out. Statements are kept in order, so a failing import still
    stops the rest of the cell, as it does in the kernel."""
    tree = parse_cell(source)
    if not tree:
        return ""
    kept = []
    for node in tree.body:
        constant = isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Constant)
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if isinstance(node, _DEFINITIONS) or (constant and all(isinstance(t, ast.Name) for t in targets)):
            kept.append(node)
    return ast.unparse(ast.Module(body=kept, type_ignores=[])) if kept else ""


def answer_cells(nb: dict[str, Any], plans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The code the answers need, cell by cell: each exercise cell whole, and the definitions
    (:func:`_definitions`) of every code cell before the last of them. Nothing else of the notebook runs
    in the answer process."""
    cells = nb.get("cells", [])
    wanted = {p["cell"] for p in plans if p.get("cell") is not None}
    if not wanted:
        return []
    found = []
    for i, cell in enumerate(cells[: max(wanted) + 1]):
        if cell.get("cell_type") != "code":
            continue
        source = cell_source(cell) if i in wanted else _definitions(cell_source(cell))
        if source.strip():
            found.append({"index": i, "source": source})
    return found


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (and its waited-for children), from /proc; None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _server() -> Any:
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(["resnet_lab.grade.answer_process", "resnet_lab.grade.judge"])
    return _context


def _attempt(job: dict[str, Any], limits: Limits) -> tuple[dict[str, dict[str, Any]], dict[str, Any] | None]:
    """One answer process: outcomes by exercise, and the failure that stopped it early (or None)."""
    from . import answer_process, judge

    ctx = _server()
    token = secrets.token_hex(16)
    receiver, sender = ctx.Pipe(duplex=False)
    verdicts, judge_end = ctx.Pipe(duplex=False)
    answer_end, judge_link = ctx.Pipe(duplex=True)
    # the answer process never gets the hidden configurations (only the arguments the judge's checker
    # passes to the student's code); the judge never gets the student's code
    answering = {**job, "exercises": [{k: v for k, v in s.items() if k != "hidden"} for s in job["exercises"]]}
    answering.pop("seed", None)
    proc = ctx.Process(target=answer_process.main, args=(answering, sender, token, answer_end), daemon=True)
    proc.start()
    judging = {k: v for k, v in job.items() if k != "cells"}
    verdict_token = secrets.token_hex(16)  # the answer process never holds it
    judge_proc = ctx.Process(target=judge.main, args=(judging, judge_link, judge_end, verdict_token), daemon=True)
    judge_proc.start()
    for end in (sender, answer_end, judge_link, judge_end):
        end.close()
    outcomes: dict[str, dict[str, Any]] = {}
    current: str | None = None
    cell: int | None = None
    cpu0, wall0 = 0.0, time.monotonic()
    failure: dict[str, Any] | None = None
    try:
        while True:
            multiprocessing.connection.wait([receiver, verdicts], timeout=0.2)
            if verdicts.poll(0):
                try:
                    raw_verdict = verdicts.recv_bytes().decode(errors="replace")
                    if not raw_verdict.startswith(verdict_token):
                        continue  # not the judge's: something else wrote to its pipe
                    verdict = json.loads(raw_verdict[len(verdict_token) :])
                except (EOFError, OSError):
                    verdict = {"crash": "the judge stopped"}
                if "outcome" in verdict:
                    outcomes[verdict["outcome"]["exercise"]] = verdict["outcome"]
                    current = None
                    if len(outcomes) == len(job["exercises"]):
                        break
                    continue
                if "gone" in verdict:
                    failure = _died(current, cell, proc)
                    break
                failure = {
                    "exercise": current,
                    "cell": cell,
                    "status": ERROR,
                    "detail": "the grader could not check it: "
                    + (str(verdict.get("crash", "")).strip().splitlines() or [""])[-1],
                }
                break
            if receiver.poll(0):
                try:
                    raw = receiver.recv_bytes().decode(errors="replace")
                except (EOFError, OSError):
                    raw = None
                if raw is None:
                    failure = _died(current, cell, proc)
                    break
                if not raw.startswith(token):
                    continue  # not ours: something the student's code wrote to the channel
                event = json.loads(raw[len(token) :])
                if "start" in event:
                    current, cell = event["start"], None
                    cpu0, wall0 = _cpu_seconds(proc.pid) or 0.0, time.monotonic()
                elif "cell" in event:
                    cell = event["cell"]
                elif "cell_done" in event:
                    cell = None
                elif "crash" in event:
                    failure = {
                        "exercise": current,
                        "cell": cell,
                        "status": ERROR,
                        "detail": f"the grader could not check it: {event['crash'].strip().splitlines()[-1]}",
                    }
                    break
                continue
            if not proc.is_alive() and not receiver.poll(0):
                failure = _died(current, cell, proc)
                break
            wall = time.monotonic() - wall0
            if current is None:
                if wall > _STARTUP_SECONDS:
                    failure = {
                        "exercise": None,
                        "cell": None,
                        "status": ERROR,
                        "detail": "the answer process did not start",
                    }
                    break
                continue
            cpu = _cpu_seconds(proc.pid)
            used = wall if cpu is None else cpu - cpu0
            if used > limits.check_seconds or wall > 10 * limits.check_seconds + 30:
                what = "CPU seconds" if cpu is not None and used > limits.check_seconds else "seconds"
                where = f" (running cell {cell})" if cell is not None else ""
                failure = {
                    "exercise": current,
                    "cell": cell,
                    "status": TIMED_OUT,
                    "detail": f"the checker did not finish within {limits.check_seconds:g} {what}{where} "
                    "(an endless loop in the student's code?)",
                }
                break
    finally:
        for process in (proc, judge_proc):
            if process.is_alive():
                process.kill()
            process.join(10)
        receiver.close()
        verdicts.close()
    return outcomes, failure


def _died(current: str | None, cell: int | None, proc: Any) -> dict[str, Any]:
    proc.join(5)
    where = f" in cell {cell}" if cell is not None else " while checking it"
    return {
        "exercise": current,
        "cell": cell,
        "status": NOTEBOOK_FAILED,
        "detail": f"the answer process died{where} (exit code {proc.exitcode})",
    }


def check_answers(
    nb: dict[str, Any],
    plans: list[dict[str, Any]],
    hidden: dict[str, list[Any]],
    limits: Limits,
    seed: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Outcomes of the exercises in ``plans`` (each with ``exercise``, ``lookup``, ``cell``, ``kwargs``).

    ``seed``: for the judge's batch-norm statistics (see :func:`resnet_lab.grade.judge.main`); by default
    the judge draws one that nobody knows in advance."""
    specs = sorted(
        (
            {
                "exercise": p["exercise"],
                "lookup": p["lookup"],
                "cell": p["cell"],
                "kwargs": p.get("kwargs") or {},
                "hidden": hidden.get(p["exercise"]),
            }
            for p in plans
        ),
        key=lambda s: (s["cell"] is None, s["cell"] or 0),
    )
    from .judge import keep_private

    keep_private()  # this process holds the judge's token and reads its verdicts: out of the answers' reach
    cells = answer_cells(nb, plans)
    outcomes: dict[str, dict[str, Any]] = {}
    skip: list[int] = []
    with tempfile.TemporaryDirectory(prefix="resnet-lab-answer-") as cwd:
        while specs:
            job = {
                "cells": cells,
                "exercises": specs,
                "skip_cells": skip,
                "cwd": cwd,
                "env": _env(limits.fast),
                "seed": seed,
            }
            found, failure = _attempt(job, limits)
            outcomes.update(found)
            specs = [s for s in specs if s["exercise"] not in found]
            if failure is None:
                break
            stopped = failure["exercise"] or (specs[0]["exercise"] if specs else None)
            for spec in specs if failure["exercise"] is None else [s for s in specs if s["exercise"] == stopped]:
                outcomes[spec["exercise"]] = {
                    "exercise": spec["exercise"],
                    "status": failure["status"],
                    "detail": failure["detail"],
                }
            specs = [s for s in specs if s["exercise"] not in outcomes]
            if failure["cell"] is not None:
                skip.append(failure["cell"])
    for exercise, (status, detail) in static.review(cells, plans).items():
        outcome = outcomes.get(exercise)
        if outcome is None:
            continue
        if status == REFERENCE_USED and outcome["status"] == REFERENCE_USED:  # both saw it: say both
            outcome["detail"] = f"{detail}; {outcome['detail']}" if outcome.get("detail") else detail
        elif status == REFERENCE_USED and outcome["status"] in (PASSED, FAILED):
            outcome.update(status=status, detail=detail)
        elif status == NEEDS_REVIEW and outcome["status"] == PASSED:
            outcome.update(status=status, detail=detail)
    return outcomes
