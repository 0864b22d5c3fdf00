"""The grader's side of the answer process: which cells an answer needs, starting the process, time limits.

Answer processes are forked from a *fork server* that imported torch and the checkers once (so each
submission costs forks, not a 3-second import) and that never runs student code itself; the judge next
to each (:mod:`resnet_lab.grade.judge`) is forked from a second fork server that has never been the
parent of student code (an answer process that changed its own fork server reaches no judge). Both are
non-dumpable from their first import; as root, an answer process becomes user ``nobody`` or drops every
capability before student code runs. Every event the answer process sends is checked (it holds its
token): one out of order is ``tampered`` for what is left, and no exercise is retried twice. The answer process gets the cells and the exercises;
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
import io
import json
import multiprocessing
import multiprocessing.connection
import os
import pwd
import secrets
import tempfile
import time
from multiprocessing import context as _mp_context
from multiprocessing import forkserver as _forkserver
from multiprocessing import popen_forkserver as _popen_forkserver
from multiprocessing import reduction as _reduction
from multiprocessing import spawn as _spawn
from multiprocessing import util as _mp_util
from typing import Any

from ..notebook_cells import cell_source, parse_cell
from . import static
from .worker import NOTEBOOK_FAILED, TIMED_OUT, Limits, _env

ERROR, TAMPERED = "error", "tampered"
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
    """The fork server of the answer processes (student code runs in its children, never in it)."""
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(["resnet_lab.grade.private", "resnet_lab.grade.answer_process"])
    return _context


# The judges' own fork server: it has never been the parent of student code, so an answer process cannot
# have changed it (with gdb, say) before a judge is forked from it; like every grader-side process it is
# non-dumpable from its first import (resnet_lab.grade.private).
_JUDGES = _forkserver.ForkServer()
_JUDGES.set_forkserver_preload(["resnet_lab.grade.private", "resnet_lab.grade.judge"])


class _JudgePopen(_popen_forkserver.Popen):
    def _launch(self, process_obj: Any) -> None:  # popen_forkserver.Popen._launch, through _JUDGES
        prep_data = _spawn.get_preparation_data(process_obj._name)
        buf = io.BytesIO()
        _mp_context.set_spawning_popen(self)
        try:
            _reduction.dump(prep_data, buf)
            _reduction.dump(process_obj, buf)
        finally:
            _mp_context.set_spawning_popen(None)
        self.sentinel, w = _JUDGES.connect_to_new_process(self._fds)
        _parent_w = os.dup(w)
        self.finalizer = _mp_util.Finalize(self, _mp_util.close_fds, (_parent_w, self.sentinel))
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = _forkserver.read_signed(self.sentinel)


class _JudgeProcess(_mp_context.ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        return _JudgePopen(process_obj)


def _others_can_reach(path: str) -> bool:
    """Can a user with no special rights reach ``path`` (every folder on the way searchable by others)?"""
    path = os.path.realpath(path)
    while True:
        try:
            if not os.stat(path).st_mode & 0o001:
                return False
        except OSError:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


def _student_user() -> list[int] | str | None:
    """Who runs student code when the grader runs as root (None: not root, nothing to change).

    ``[uid, gid]`` of user ``nobody`` (or ``$RESNET_LAB_STUDENT_USER``): a process of another user cannot
    ptrace, signal or read the grader's processes. Where that user could not import Python's own modules
    (an installation under /root, say), ``"nocaps"``: the process stays root but drops every capability
    (so it cannot ptrace the grader's non-dumpable processes, nor get a capability back by exec)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(os.environ.get("RESNET_LAB_STUDENT_USER", "nobody"))
    except KeyError:
        return "nocaps"
    import torch  # noqa: PLC0415 - only to find where it is installed

    needed = (os.path.dirname(os.__file__), os.path.dirname(torch.__file__), os.path.dirname(static.__file__))
    if entry.pw_uid == 0 or not all(_others_can_reach(p) for p in needed):
        return "nocaps"
    return [entry.pw_uid, entry.pw_gid]


def _share_with_student(path: str) -> None:
    user = _student_user()
    if isinstance(user, list):
        os.chown(path, user[0], user[1])


def start_servers() -> None:
    """Start both fork servers now (the judges' first), before any student code runs anywhere: they import
    the judge, the checkers and the answer process's code from disk, which student code running as the
    files' owner could otherwise have changed by then."""
    _JUDGES.ensure_running()
    _server()
    _forkserver.ensure_running()


def _attempt(job: dict[str, Any], limits: Limits) -> tuple[dict[str, dict[str, Any]], dict[str, Any] | None]:
    """One answer process: outcomes by exercise, and the failure that stopped it early (or None)."""
    from . import answer_process, judge

    start_servers()
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
    judge_proc = _JudgeProcess(target=judge.main, args=(judging, judge_link, judge_end, verdict_token), daemon=True)
    judge_proc.start()
    for end in (sender, answer_end, judge_link, judge_end):
        end.close()
    outcomes: dict[str, dict[str, Any]] = {}
    unstarted = [s["exercise"] for s in job["exercises"]]
    cell_indices = {c["index"] for c in job["cells"]} - set(job.get("skip_cells", []))
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
                    judge_proc.join(2)
                    failure = {
                        "exercise": current,
                        "cell": cell,
                        "status": TAMPERED,
                        "detail": "the judge process was killed while your code ran "
                        f"(exit code {judge_proc.exitcode}): the submission's code stopped the grader's judge",
                        "fatal": True,
                    }
                    break
                if "outcome" in verdict:
                    outcomes[verdict["outcome"]["exercise"]] = verdict["outcome"]
                    if current == verdict["outcome"]["exercise"]:
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
                # the answer process runs student code, which can read the token: every event is a claim
                # that can only stop this attempt, never credit anything; one that does not fit is tampering
                try:
                    event = json.loads(raw[len(token) :])
                    if not isinstance(event, dict) or len(event) != 1:
                        raise ValueError("not one event")
                except ValueError:
                    event = {"bad": raw[len(token) : len(token) + 60]}
                if "start" in event and event["start"] == (unstarted[0] if unstarted else None) and cell is None:
                    current, cell = unstarted.pop(0), None
                    cpu0, wall0 = _cpu_seconds(proc.pid) or 0.0, time.monotonic()
                elif "cell" in event and event["cell"] in cell_indices and cell is None and current is not None:
                    cell = event["cell"]
                elif "cell_done" in event and event["cell_done"] == cell and cell is not None:
                    cell = None
                elif "serving" in event and event["serving"] == current and cell is None:
                    pass
                elif "crash" in event:
                    failure = {
                        "exercise": current,
                        "cell": cell,
                        "status": ERROR,
                        "detail": "the answer process stopped with an error outside the exercise's cells: "
                        + (str(event["crash"]).strip().splitlines() or [""])[-1][:300],
                    }
                    break
                else:
                    failure = {
                        "exercise": None,
                        "cell": None,
                        "status": TAMPERED,
                        "detail": "the answer process sent the grader an event out of order "
                        f"({json.dumps(event)[:80]}): code run for the answers forged the grader's messages",
                        "fatal": True,
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
    from .private import keep_private

    keep_private()  # this process holds the judge's token and reads its verdicts: out of the answers' reach
    cells = answer_cells(nb, plans)
    outcomes: dict[str, dict[str, Any]] = {}
    skip: list[int] = []
    attempts = 0
    with tempfile.TemporaryDirectory(prefix="resnet-lab-answer-") as cwd:
        _share_with_student(cwd)
        while specs:
            attempts += 1
            job = {
                "cells": cells,
                "exercises": specs,
                "skip_cells": skip,
                "cwd": cwd,
                "env": _env(limits.fast),
                "seed": seed,
                "user": _student_user(),
            }
            found, failure = _attempt(job, limits)
            outcomes.update(found)
            specs = [s for s in specs if s["exercise"] not in found]
            if failure is None:
                break
            names = {s["exercise"] for s in specs}
            # a failure naming no exercise left (or forged events) stops the notebook: no endless retries.
            # At most one new process per exercise: each failure settles at least one exercise.
            if failure.get("fatal") or failure["exercise"] not in names or attempts > len(plans):
                blamed = specs
            else:
                blamed = [s for s in specs if s["exercise"] == failure["exercise"]]
            for spec in blamed:
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
