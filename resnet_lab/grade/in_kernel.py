"""The part of the grader that runs inside the student's kernel, after the student's cells.

The grader sends one small cell per exercise::

    import resnet_lab.grade.in_kernel as _g; _g.report(globals(), {...spec...})

which runs the exercise's checker on the student's object (the visible configurations, then the
teacher's hidden ones) and prints one line ``MARK + json`` with the outcome. Keep this module free
of heavy imports: it runs in every graded kernel.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import time
from typing import Any

from .worker import MARK, MISSING

PASSED, FAILED, NOT_ATTEMPTED = "passed", "failed", "not attempted"


def _summary(exc: BaseException) -> str:
    """The message's first line and its first hint: what differs, and the first thing to check."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    first = lines[0] if lines else type(exc).__name__
    hint = next((line for line in lines[1:] if line.startswith("Hint:")), "")
    return f"{first} | {hint}" if hint else first


def _run(checker: Any, obj: Any, calls: list[dict[str, Any]]) -> tuple[int, int, BaseException | None]:
    """Run the checker once per keyword set in ``calls``; count configurations passed and tried."""
    from resnet_lab.checks.engine import collecting

    passed = total = 0
    first: BaseException | None = None
    for kwargs in calls:
        with collecting() as results, contextlib.redirect_stdout(io.StringIO()):
            try:
                checker(obj, **kwargs)
                error: BaseException | None = None
            except AssertionError as exc:
                error = exc
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


def _calls(checker: Any, kwargs: dict[str, Any], hidden: list[Any] | None) -> list[dict[str, Any]]:
    """Keyword sets for the hidden configurations: ``configs=[...]``, or one call per ``depth``."""
    if not hidden:
        return []
    params = inspect.signature(checker).parameters
    if "configs" in params:
        return [{**kwargs, "configs": [tuple(c) if isinstance(c, list) else c for c in hidden]}]
    if "depth" in params:
        return [{**kwargs, "depth": d} for d in hidden]
    return []


def grade(namespace: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """Check ``namespace[spec["lookup"]]`` with ``checks.<spec["exercise"]>``; return the outcome as a dict."""
    from resnet_lab import checks
    from resnet_lab.checks.engine import HINT_NOT_DONE

    start = time.perf_counter()
    out: dict[str, Any] = {
        "exercise": spec["exercise"],
        "checks_passed": 0,
        "checks_total": 0,
        "hidden_passed": 0,
        "hidden_total": 0,
        "detail": "",
    }
    obj = namespace.get(spec["lookup"])
    if obj is None:
        out.update(status=MISSING, detail=f"{spec['lookup']} is not defined after running the notebook")
    else:
        checker = checks.CHECKERS[spec["exercise"]]
        kwargs = dict(spec.get("kwargs") or {})
        passed, total, error = _run(checker, obj, [kwargs])
        out.update(checks_passed=passed, checks_total=total)
        hidden_calls = _calls(checker, kwargs, spec.get("hidden"))
        not_done = error is not None and HINT_NOT_DONE in str(error)
        if hidden_calls and not not_done:
            h_passed, h_total, h_error = _run(checker, obj, hidden_calls)
            out.update(hidden_passed=h_passed, hidden_total=h_total)
            if error is None and h_error is not None:
                out["detail"] = "hidden checks: " + _summary(h_error)
        if not_done:
            out.update(status=NOT_ATTEMPTED, detail="the stub still raises NotImplementedError", checks_passed=0)
        elif error is not None:
            out.update(status=FAILED, detail=_summary(error))
        elif out["hidden_passed"] < out["hidden_total"]:
            out["status"] = FAILED
        else:
            out["status"] = PASSED
    out["seconds"] = round(time.perf_counter() - start, 2)
    return out


def report(namespace: dict[str, Any], spec: dict[str, Any]) -> None:
    """Grade one exercise and print the outcome for the grader (one line starting with ``MARK``)."""
    print(MARK + json.dumps(grade(namespace, spec)), flush=True)


def usage_report() -> None:
    """Print the hints and solutions this kernel showed (``checks.hints.usage()``) for the grader."""
    from resnet_lab.checks import hints

    print(MARK + json.dumps({"usage": hints.usage()}), flush=True)
