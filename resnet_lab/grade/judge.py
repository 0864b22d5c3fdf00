"""The judge: the process that decides every verdict, and never runs student code.

The grader starts one judge next to each answer process (:mod:`resnet_lab.grade.answers`), both forked
from the fork server that imported torch and the checkers. For each exercise the judge waits until the
answer process has run the answer's cells, then runs the exercise's checker (its own copy, taken at
import, in a process the student's code cannot reach through Python) on a stand-in for the answer
(:mod:`resnet_lab.grade.remote`): the reference modules, their weights, the inputs, the reference's
outputs and every comparison are computed here; the student's code runs in the answer process on the
data the checker hands it and returns data (tensors, numbers), never a verdict. The teacher's hidden
configurations live only here: the answer process sees them only as the arguments the checker passes.

``passed`` is given here, and only when the checker passed here on every configuration. The answer
process can only take a pass away (it reports ``tampered``, ``reference used``, ``missing``, ``error``).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import secrets
import time
import traceback
from typing import Any

import torch

from resnet_lab import checks
from resnet_lab.checks import engine

from . import references, remote
from .private import keep_private

PASSED, FAILED, NOT_ATTEMPTED = "passed", "failed", "not attempted"
TAMPERED, REFERENCE_USED, ERROR = "tampered", "reference used", "error"
__all__ = ["judge", "keep_private", "main"]
_CHECKERS = dict(checks.CHECKERS)
_COLLECTING = engine.collecting
_NOT_DONE = engine.NotDone
_REFERENCE_CLASSES = {
    exercise: {key.replace(":", ".") for key in keys} for exercise, keys in references.REFERENCES.items()
}


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


def judge(link: remote.Link, spec: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    """The outcome of one exercise, given the answer process's ``message`` that the answer's cells ran."""
    out: dict[str, Any] = {"checks_passed": 0, "checks_total": 0, "hidden_passed": 0, "hidden_total": 0, "detail": ""}
    if message.get("ready") != spec["exercise"]:
        raise remote.EvidenceError(f"the answer process is out of step (expected {spec['exercise']})")
    if "status" in message:  # found there: it can only keep the exercise from passing
        link.exchange({"op": "done"})
        return {**out, "status": str(message["status"]), "detail": str(message.get("detail", ""))}
    checker = _CHECKERS.get(spec["exercise"])
    if checker is None:
        link.exchange({"op": "done"})
        return {**out, "status": ERROR, "detail": f"no checker called {spec['exercise']} in resnet_lab.checks"}
    kwargs = dict(spec.get("kwargs") or {})
    error: BaseException | None = None
    not_done = False
    try:
        answer = link.decode(message.get("answer"))
        passed, total, error = _run(checker, answer, [kwargs])
        out.update(checks_passed=passed, checks_total=total)
        not_done = isinstance(error, _NOT_DONE)
        calls = hidden_calls(checker, kwargs, spec.get("hidden"))
        if calls and not not_done:
            h_passed, h_total, h_error = _run(checker, answer, calls)
            out.update(hidden_passed=h_passed, hidden_total=h_total)
            if error is None and h_error is not None:
                out["detail"] = "hidden checks: " + summary(h_error)
    except remote.Tampered as exc:
        link.exchange({"op": "done"})
        detail = f"the answer's code changed the grader's tools (caught when it returned to the checker): {exc}"
        return {**out, "status": TAMPERED, "detail": detail}
    except remote.EvidenceError as exc:
        link.exchange({"op": "done"})
        return {**out, "status": FAILED, "detail": f"the grader could not use the answer's results: {exc}"}
    after = link.exchange({"op": "done"})
    changed = [str(c) for c in after.get("tampered_after") or []]
    if changed:
        detail = "the answer changed the grader's tools while it was checked: " + "; ".join(changed)
        return {**out, "status": TAMPERED, "detail": detail}
    used = [str(u) for u in after.get("used") or []]
    if used:
        detail = f"the answer's code calls {', '.join(used)}, a reference implementation of what the exercise asks"
        return {**out, "status": REFERENCE_USED, "detail": detail}
    borrowed = [str(b) for b in after.get("borrowed") or []]
    if borrowed:
        return {**out, "status": REFERENCE_USED, "detail": "; ".join(borrowed[:3])}
    named = sorted(link.classes_seen & _REFERENCE_CLASSES.get(spec["exercise"], set()))
    if named:  # what the answer process said about the classes of the student's modules (it can only cost a pass)
        which = ", ".join(
            f"{'torchvision' if n.startswith('torchvision') else 'resnet_lab'}'s {n.rpartition('.')[2]}" for n in named
        )
        detail = f"the answer's modules are, derive from or contain {which}"
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


def main(job: dict[str, Any], answer: Any, grader: Any, token: str = "") -> None:
    """Entry point in the judge's process: judge each exercise of ``job`` as its answer becomes ready.

    The statistics and affine parameters that :func:`engine.compare` gives the reference's batch norms (and
    so the reference's outputs) come from a seed the judge draws (``job["seed"]`` if given): outputs
    precomputed with the package and written into an answer do not match them.
    """
    keep_private()
    torch.set_num_threads(1)

    def tell(event: dict[str, Any]) -> None:  # JSON signed with the grader's token: never unpickled there
        grader.send_bytes((token + json.dumps(event)).encode())

    engine.SEED = int(job["seed"]) if job.get("seed") is not None else secrets.randbelow(2**31)
    link = remote.Link(answer)
    try:
        for spec in job["exercises"]:
            message = link.receive()
            started = time.perf_counter()
            try:
                outcome = judge(link, spec, message)
            except remote.EvidenceError as exc:
                outcome = {"status": ERROR, "detail": f"the grader could not check it: {exc}"}
                with contextlib.suppress(remote.EvidenceError):
                    link.exchange({"op": "done"})
            outcome["seconds"] = round(time.perf_counter() - started, 2)
            tell({"outcome": {**outcome, "exercise": spec["exercise"]}})
    except remote.AnswerGone:
        tell({"gone": True})
    except BaseException:  # noqa: BLE001 - tell the grader what broke, then stop
        tell({"crash": traceback.format_exc(limit=3)[-500:]})
