"""Grade a class's submitted notebooks: ``python -m resnet_lab.grade SUBMISSIONS --report grades.csv``.

Every submitted notebook runs in a fresh kernel, offline, under time limits, to see whether it runs
(:mod:`resnet_lab.grade.worker`); no checker runs there. The answers then run in a separate *answer
process* that executes only the cells they need, and a *judge* process that never runs student code
decides each verdict with the same checker the student's check cell calls plus the teacher's hidden
configurations, from the data the answer process hands over (:mod:`resnet_lab.grade.answers`,
:mod:`resnet_lab.grade.judge`); the answer's code is also read for the package's reference and for code
an exercise does not need (:mod:`resnet_lab.grade.static`). One CSV row per
student and exercise is written as soon as it is known; a gradebook CSV (one row per student), a summary
table, a bar chart and, on request, one feedback file per student follow.

Submissions: ``SUBMISSIONS/<student>/<lesson>.ipynb`` (one folder per student), or files directly in
``SUBMISSIONS`` whose names contain the lesson's name (``alice_02_basic_block.ipynb``).
Hidden checks: a JSON file ``{"<exercise>": [configuration, ...]}``, e.g.
``{"basic_block": [[16, 32, 2]], "imagenet_resnet": [18]}`` (see docs/teachers.md).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..checks.exercises import NOTEBOOKS, Exercise, all_exercises
from . import answers, outputs, worker
from .report import CsvReport, bar_chart, read_rows, summary
from .worker import _NOTHING_CHECKED, NOTEBOOK_FAILED, PENDING, Limits

__all__ = ["find_submissions", "load_hidden", "grade_class", "main"]

_NOTE_RE = "Generated from `notebooks/"
_UNREADABLE = "not a readable notebook"  # how a result's "run" begins when the file could not be read


class GradeError(ValueError):
    """Bad input to the grader (folder, hidden-checks file): says what was expected."""


def _lesson_of(path: Path, lessons: list[str]) -> str | None:
    """The lesson a submission belongs to: by file name, else by the student copy's note cell."""
    stem = path.stem
    for lesson in sorted(lessons, key=len, reverse=True):
        if Path(lesson).stem in stem:
            return lesson
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    at = text.find(_NOTE_RE)
    if at >= 0:
        name = text[at + len(_NOTE_RE) :].split("`", 1)[0]
        return name if name in lessons else None
    return None


def _student_of(path: Path, root: Path, lesson: str | None) -> str:
    relative = path.relative_to(root)
    if len(relative.parts) > 1:
        return relative.parts[0]
    stem = path.stem
    if lesson:
        stem = stem.replace(Path(lesson).stem, "")
    return stem.strip("_-. ") or path.stem


def find_submissions(root: Path, lessons: list[str]) -> list[tuple[str, Path, str | None]]:
    """(student, notebook, lesson or None) for every ``.ipynb`` under ``root``, sorted by student and name."""
    if not root.is_dir():
        raise GradeError(
            f"{root} is not a folder: pass the folder that holds the submitted notebooks "
            "(one sub-folder per student, or files named like alice_02_basic_block.ipynb)"
        )
    found = []
    for path in sorted(root.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        lesson = _lesson_of(path, lessons)
        found.append((_student_of(path, root, lesson), path, lesson))
    return sorted(found, key=lambda t: (t[0], t[1].name))


def load_hidden(path: Path | None, exercises: list[Exercise]) -> dict[str, list[Any]]:
    """The teacher's hidden configurations: ``{exercise: [configuration, ...]}`` from a JSON file."""
    if path is None:
        return {}
    try:
        data = json.loads(sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GradeError(f"cannot read the hidden checks file {path}: {exc}") from None
    known = {e.name for e in exercises}
    if not isinstance(data, dict):
        raise GradeError(f'{path}: expected a JSON object {{"exercise": [configuration, ...]}}')
    for name, configs in data.items():
        if name not in known:
            raise GradeError(f"{path}: unknown exercise {name!r}; the exercises are {', '.join(sorted(known))}")
        if not isinstance(configs, list) or not configs:
            raise GradeError(f"{path}: {name!r} needs a non-empty list of configurations, got {configs!r}")
    return data


def _spec(exercise: Exercise) -> dict[str, Any]:
    """What the kernel's worker gets about an exercise: never the hidden configurations."""
    return {
        "exercise": exercise.name,
        "target": exercise.target,
        "kind": exercise.kind,
        "cell_id": exercise.cell_id,
        "kwargs": exercise.check_kwargs,
    }


def _run_worker(notebook: Path, specs: list[dict[str, Any]], limits: Limits) -> dict[str, Any]:
    """Run one notebook in its own process and kernel; if that process overruns or dies, say so instead."""
    hard_limit = limits.notebook_seconds + 120
    with tempfile.TemporaryDirectory(prefix="resnet-lab-job-") as tmp:
        job, out = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job.write_text(
            json.dumps({"notebook": str(notebook.resolve()), "exercises": specs, "limits": asdict(limits)}),
            encoding="utf-8",
        )
        proc = subprocess.Popen(
            [sys.executable, str(Path(worker.__file__)), str(job), str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _, stderr = proc.communicate(timeout=hard_limit)
            problem = (
                ""
                if proc.returncode == 0
                else (f"the grader's worker failed: {stderr.decode(errors='replace').strip().splitlines()[-1:]}")
            )
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            problem = f"stopped after {hard_limit:.0f} s (the notebook's hard time limit)"
        if not problem and out.exists():
            try:
                found = json.loads(out.read_text(encoding="utf-8"))
                if isinstance(found, dict):
                    return found
            except (OSError, ValueError):
                pass
            problem = "the worker's report was unreadable"
        problem = problem or "the worker wrote no report"
    return {
        "run": problem,
        "seconds": hard_limit,
        "exercises": [{"exercise": s["exercise"], "status": NOTEBOOK_FAILED, "detail": problem} for s in specs],
    }


# what the worker may say about an exercise: only that it did not run (or, ``pending``, that its cell ran).
# The worker's process is within reach of the notebook's code (it is the kernel's parent), so a status that
# would credit the student can never come from it: ``passed`` and every verdict come from the judge.
_FAILURE_SIDE = {NOTEBOOK_FAILED, worker.TIMED_OUT, worker.ERROR, worker.MISSING}
TAMPERED = "tampered"


def _int(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def grade_notebook(
    notebook: Path, exercises: list[Exercise], hidden: dict[str, list[Any]], limits: Limits
) -> dict[str, Any]:
    """Run the notebook in a kernel (does it run?), then check each exercise whose cell ran in an answer process.

    The worker's report is read as the notebook's code may have rewritten it: the exercises' plans (which
    name, which cell) are computed here from the submitted file, and of the worker's outcome for an
    exercise only a failure (the cell raised, timed out, killed the kernel, was not reached) or ``pending``
    is kept. Anything else there means code in the notebook changed the report: ``tampered``."""
    specs = [_spec(e) for e in exercises]
    try:
        nb = json.loads(notebook.read_text(encoding="utf-8"))
        if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
            raise ValueError("no list of cells")
    except (OSError, ValueError) as exc:
        run = f"{_UNREADABLE}: {exc}"
        return {
            "run": run,
            "seconds": 0,
            "exercises": [
                {"exercise": s["exercise"], "status": NOTEBOOK_FAILED, "detail": run, **_NOTHING_CHECKED} for s in specs
            ],
        }
    plans = worker.plan(nb, specs)
    usage = worker.stored_usage(nb)
    reported = _run_worker(notebook, specs, limits)
    said: dict[str, dict[str, Any]] = {}
    try:
        for o in reported.get("exercises") or []:
            if isinstance(o, dict) and isinstance(o.get("exercise"), str):
                said.setdefault(o["exercise"], o)
        run = str(reported.get("run", ""))[:500]
        seconds = float(reported.get("seconds") or 0)
    except (AttributeError, TypeError, ValueError):
        said, run, seconds = {}, "the worker's report was unreadable", 0.0
    result: dict[str, Any] = {"run": run, "seconds": seconds, "exercises": []}
    pending = []
    for p in plans:
        o = said.get(p["exercise"])
        entry = usage.get(p["exercise"], {})
        outcome: dict[str, Any] = {"exercise": p["exercise"], **_NOTHING_CHECKED, "detail": p["note"]}
        if isinstance(o, dict):  # hints and solutions shown: the worker can only add to what the file shows
            outcome["hints_used"] = max(_int(entry.get("hints")), _int(o.get("hints_used")))
            outcome["solution_revealed"] = bool(entry.get("solution")) or o.get("solution_revealed") is True
        else:
            outcome["hints_used"] = _int(entry.get("hints"))
            outcome["solution_revealed"] = bool(entry.get("solution"))
        status = o.get("status") if isinstance(o, dict) else None
        if p["cell"] is None:
            outcome["status"] = worker.MISSING
        elif o is None:
            outcome.update(status=NOTEBOOK_FAILED, detail="the notebook's run gave no outcome for this exercise")
        elif status in _FAILURE_SIDE:
            outcome.update(status=status, detail=str(o.get("detail", ""))[:500])
        elif status == PENDING:
            outcome["status"] = PENDING
            pending.append(p)
        else:
            outcome.update(
                status=TAMPERED,
                detail=f"the report of the notebook's run was changed (it said {str(status)[:40]!r}): code in "
                "the notebook reached the grader's worker; only the judge gives a verdict",
            )
        if p["note"] and p["note"] not in outcome["detail"]:
            outcome["detail"] = f"{p['note']}; {outcome['detail']}" if outcome["detail"] else p["note"]
        result["exercises"].append(outcome)
    verdicts = answers.check_answers(nb, pending, hidden, limits) if pending else {}
    for outcome in result["exercises"]:
        if outcome["status"] != PENDING:
            continue
        note = outcome["detail"]
        verdict = verdicts.get(outcome["exercise"], {"status": "error", "detail": "the grader got no outcome"})
        outcome.update({k: v for k, v in verdict.items() if k not in ("exercise", "hints_used", "solution_revealed")})
        if note and note not in outcome["detail"]:
            outcome["detail"] = f"{note}; {outcome['detail']}" if outcome["detail"] else note
    return result


# What another notebook's code, graded at the same time, can do to a notebook: kill its kernel or answer
# process (``notebook failed``), stop them (``timed out``), kill its judge or rewrite its worker's report
# (``tampered``). Never a ``passed``: that comes only from the notebook's own judge.
_NEIGHBOUR_CAN_CAUSE = {NOTEBOOK_FAILED, worker.TIMED_OUT, TAMPERED}


class _Turn:
    """One notebook's turn beside others; ``shared`` turns True if another notebook ran at any time during it."""

    def __init__(self) -> None:
        self.shared = False


class _Turns:
    """Notebooks graded side by side, and now and then one graded alone: ``alone()`` waits until no notebook
    is being graded and keeps new ones from starting until it is done (a readers-writer lock that lets the
    one who waits alone go first). Only the grader's own turns are counted: a process a notebook's code left
    behind is not."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._active: list[_Turn] = []
        self._waiting_alone = 0
        self._alone = False

    @contextmanager
    def beside_others(self) -> Iterator[_Turn]:
        turn = _Turn()
        with self._changed:
            self._changed.wait_for(lambda: not self._alone and self._waiting_alone == 0)
            if self._active:
                turn.shared = True
                for other in self._active:
                    other.shared = True
            self._active.append(turn)
        try:
            yield turn
        finally:
            with self._changed:
                self._active.remove(turn)
                self._changed.notify_all()

    @contextmanager
    def alone(self) -> Iterator[None]:
        with self._changed:
            self._waiting_alone += 1
            self._changed.wait_for(lambda: not self._alone and not self._active)
            self._waiting_alone -= 1
            self._alone = True
        try:
            yield
        finally:
            with self._changed:
                self._alone = False
                self._changed.notify_all()


def neighbour_could_cause(result: dict[str, Any]) -> bool:
    """Whether a kill, a stop or tampering by another notebook graded at the same time could have caused this
    notebook's result: one of its exercises ``notebook failed``, ``timed out`` or ``tampered`` (an unreadable
    file is its own). Not covered: a neighbour can also interrupt a cell (``error``) or rewrite files."""
    if str(result.get("run", "")).startswith(_UNREADABLE):
        return False
    return any(o["status"] in _NEIGHBOUR_CAN_CAUSE for o in result["exercises"])


def _graded_again_alone(first: dict[str, Any], again: dict[str, Any]) -> dict[str, Any]:
    """``again`` (the notebook graded with nothing beside it), each exercise's detail saying what ``first``
    (the run beside other notebooks) gave."""
    before = ", ".join(f"{o['exercise']} {o['status']}" for o in first["exercises"])
    note = f"graded again with no other notebook running (beside others: {before})"
    for outcome in again["exercises"]:
        outcome["detail"] = f"{note}; {outcome['detail']}" if outcome.get("detail") else note
    again["graded_again_alone"] = True
    return again


def _not_recognised(student: str, name: str, lessons: list[str]) -> dict[str, Any]:
    return {
        "student": student,
        "notebook": name,
        "exercise": "?",
        "status": NOTEBOOK_FAILED,
        "detail": "not a student copy of a lesson with exercises (name or note cell not "
        f"recognised; lessons: {', '.join(lessons)})",
        **_NOTHING_CHECKED,
        "seconds": 0,
    }


def grade_class(
    root: Path,
    report_path: Path,
    *,
    lessons_dir: Path = NOTEBOOKS,
    hidden_path: Path | None = None,
    limits: Limits | None = None,
    chart_path: Path | None = None,
    jobs: int = 1,
    regrade_alone: bool = True,
    log: Any = print,
) -> list[dict[str, Any]]:
    """Grade every submission under ``root``; write the CSV (row by row) and the chart; return the rows.

    ``jobs`` notebooks are graded at the same time (each in its own kernel and answer process); rows are
    written in the submissions' order all the same. Notebooks graded at the same time run as one user, so
    one's code can kill or stop another's processes: with ``regrade_alone`` (the default) a notebook that
    another notebook was graded beside at some time, and whose result such code could have caused
    (``neighbour_could_cause``), is graded again with no other notebook being graded, and that result counts.
    Answer processes start through :mod:`multiprocessing`, so a script that calls this needs the usual
    ``if __name__ == "__main__":`` guard.
    """
    limits = limits or Limits()
    exercises = list(all_exercises(lessons_dir))
    lessons = sorted({e.lesson for e in exercises})
    hidden = load_hidden(hidden_path, exercises)
    submissions = find_submissions(root, lessons)
    from .private import keep_private

    keep_private()  # this process holds the judges' tokens and the hidden configurations
    answers.start_servers()  # before any notebook runs: the judges' code is read from disk now
    report = CsvReport(report_path)
    turns = _Turns()

    def one(item: tuple[str, Path, str | None]) -> tuple[dict[str, Any] | None, float]:
        _, notebook, lesson = item
        started = time.monotonic()
        if lesson is None:
            return None, 0.0
        mine = [e for e in exercises if e.lesson == lesson]
        with turns.beside_others() as turn:
            result = grade_notebook(notebook, mine, hidden, limits)
        if regrade_alone and turn.shared and neighbour_could_cause(result):
            with turns.alone():
                result = _graded_again_alone(result, grade_notebook(notebook, mine, hidden, limits))
        return result, time.monotonic() - started

    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for number, ((student, notebook, _), (result, seconds)) in enumerate(
                zip(submissions, pool.map(one, submissions)), start=1
            ):
                name = notebook.relative_to(root).as_posix()
                if result is None:
                    report.add(_not_recognised(student, name, lessons))
                    log(f"[{number}/{len(submissions)}] {name}: lesson not recognised")
                    continue
                for outcome in result["exercises"]:
                    report.add(
                        {
                            **_NOTHING_CHECKED,
                            "seconds": 0,
                            **outcome,
                            "student": student,
                            "notebook": name,
                            "run": result["run"],
                        }
                    )
                statuses = ", ".join(f"{o['exercise']} {o['status']}" for o in result["exercises"])
                again = ", graded again alone" if result.get("graded_again_alone") else ""
                log(f"[{number}/{len(submissions)}] {name}: {statuses} ({seconds:.1f} s{again})")
    finally:
        report.close()
    if report.rows:
        bar_chart(
            report.rows,
            chart_path or report_path.with_suffix(".png"),
            title=f"How the class did ({len({r['student'] for r in report.rows})} students)",
        )
    return report.rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m resnet_lab.grade", description=__doc__.split("\n\n")[0])
    parser.add_argument("submissions", type=Path, help="folder of submitted notebooks")
    parser.add_argument("--report", type=Path, default=Path("grades.csv"), help="CSV to write (default grades.csv)")
    parser.add_argument("--chart", type=Path, default=None, help="bar chart PNG (default: next to the CSV)")
    parser.add_argument(
        "--gradebook", type=Path, default=None, help="gradebook CSV (default: REPORT's name + -gradebook.csv)"
    )
    parser.add_argument("--feedback", type=Path, default=None, help="folder for one Markdown feedback file per student")
    parser.add_argument(
        "--compare", type=Path, default=None, help="an earlier report CSV: say what changed per student"
    )
    parser.add_argument("--hidden", type=Path, default=None, help="JSON file of hidden configurations ('-': stdin)")
    parser.add_argument("--lessons", type=Path, default=NOTEBOOKS, help="folder of the lesson notebooks")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks graded at the same time (default 1)")
    parser.add_argument(
        "--no-regrade-alone",
        action="store_true",
        help="with --jobs above 1, keep a notebook's result even where another notebook's code could have caused "
        "it (notebook failed, timed out, tampered); by default such a notebook is graded again alone",
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds for all cells of one notebook")
    parser.add_argument("--cell-timeout", type=float, default=120, help="seconds for one cell")
    parser.add_argument(
        "--check-timeout", type=float, default=120, help="CPU seconds for one exercise's answer and checker"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="run only the imports and the exercise cells (much faster; other cells are skipped)",
    )
    parser.add_argument(
        "--full-mode", action="store_true", help="run notebooks without RESNET_LAB_FAST=1 (as the students did; slower)"
    )
    parser.add_argument(
        "--allow-root",
        action="store_true",
        help="grade even though this runs as root: the notebooks' kernels then run as root, and root's code "
        "can reach every process of the grader (see docs/teachers.md); run as an unprivileged user instead",
    )
    args = parser.parse_args(argv)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        if not args.allow_root:
            print(
                "error: refusing to run students' notebooks as root: root's code can ptrace and change the "
                "grader's processes, so no grade would be trustworthy. Run as an unprivileged user, e.g. "
                "`sudo -u grader python -m resnet_lab.grade ...`, or pass --allow-root (see docs/teachers.md)",
                file=sys.stderr,
            )
            return 2
        warning = (
            "WARNING: --allow-root: the notebooks' kernels run as root and can reach the grader's processes; "
            "a passed is not guaranteed against a student who attacks the grader (answer processes run as "
            "user nobody if it exists). Grade as an unprivileged user for trustworthy grades."
        )
        print(warning, file=sys.stderr)
        print(warning)
    limits = Limits(
        notebook_seconds=args.timeout,
        cell_seconds=args.cell_timeout,
        check_seconds=args.check_timeout,
        quick=args.quick,
        fast=not args.full_mode,
    )
    try:
        old = read_rows(args.compare) if args.compare else None
    except (OSError, KeyError, ValueError) as exc:
        print(f"error: cannot read {args.compare}: {exc}", file=sys.stderr)
        return 2
    try:
        rows = grade_class(
            args.submissions,
            args.report,
            lessons_dir=args.lessons,
            hidden_path=args.hidden,
            limits=limits,
            chart_path=args.chart,
            jobs=args.jobs,
            regrade_alone=not args.no_regrade_alone,
        )
    except GradeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not rows:
        print(f"no notebooks found under {args.submissions}", file=sys.stderr)
        return 1
    gradebook = outputs.write_gradebook(
        rows, args.gradebook or args.report.with_name(f"{args.report.stem}-gradebook.csv")
    )
    print()
    print(summary(rows))
    print(f"\nreport: {args.report}   gradebook: {gradebook}   chart: {args.chart or args.report.with_suffix('.png')}")
    if args.feedback:
        written = outputs.write_feedback(rows, args.feedback)
        print(f"feedback: {len(written)} files in {args.feedback}")
    if old is not None:
        changed = outputs.changes(old, rows)
        print(f"\nchanges since {args.compare}:" if changed else f"\nno changes since {args.compare}")
        for line in changed:
            print(f"  {line}")
    return 0
