"""Notebooks graded side by side (``--jobs 2``) run as one user, so one notebook's code can kill another's
kernel. The victim of such a neighbour is graded again alone, and the second result is the one reported.

Two submissions of lesson 02, both with the solutions: ``saboteur``'s first cell waits until ``victim``'s
kernel is running its first cell, kills it (SIGKILL, found through /proc: the grader's worker whose job
names the victim's notebook, then that worker's children), then leaves a marker file. ``victim``'s first
cell waits for that marker, so beside the saboteur it is always killed there; alone, the marker is already
there and it runs through. Both only touch processes of this test's own class folder. (The answer processes
run only the imports and definitions of a first cell that is not an exercise: this code runs in the kernels.)
That the second run has nothing beside it is checked on the turns themselves, at the end.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import pytest

from resnet_lab import grade
from resnet_lab.grade import report

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("make_synthetic_class", ROOT / "scripts" / "make_synthetic_class.py")
synthetic = importlib.util.module_from_spec(_spec)
assert _spec.loader is not None
_spec.loader.exec_module(synthetic)

EXERCISES = ("conv_output_size", "basic_block", "plain_switch")

_VICTIM = """import os as _os, time as _time
try:
    open({waiting!r}, "w").close()  # "my kernel is in its first cell"
except OSError:
    pass
_deadline = _time.monotonic() + 90  # beside the saboteur, killed long before
while not _os.path.exists({marker!r}) and _time.monotonic() < _deadline:
    _time.sleep(0.05)
"""

_SABOTEUR = """import json as _json, os as _os, signal as _signal, time as _time


def _kernels_of(name):
    '''PIDs of the children of the grader's workers whose job is a notebook of this class named ``name``.'''
    workers, children = set(), []
    pids = [p for p in _os.listdir("/proc") if p.isdigit()]
    for pid in pids:
        try:
            cmd = open(f"/proc/{{pid}}/cmdline", "rb").read().decode(errors="replace").split("\\0")
            if len(cmd) > 2 and cmd[1].endswith("worker.py") and _os.path.isfile(cmd[2]):
                job = _json.load(open(cmd[2], encoding="utf-8"))
                if job["notebook"].startswith({folder!r}) and name in job["notebook"]:
                    workers.add(pid)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    for pid in pids:
        try:
            parent = open(f"/proc/{{pid}}/stat").read().rsplit(")", 1)[1].split()[1]
        except (OSError, IndexError):
            continue
        if parent in workers:
            children.append(int(pid))
    return children


if not _os.path.exists({marker!r}):
    _deadline = _time.monotonic() + 90
    while not _os.path.exists({waiting!r}) and _time.monotonic() < _deadline:
        _time.sleep(0.05)
    for _pid in _kernels_of("victim"):
        _os.kill(_pid, _signal.SIGKILL)
    open({marker!r}, "w").close()
"""


@pytest.fixture(scope="module")
def graded_beside_a_saboteur():
    """Grade saboteur and victim with --jobs 2; return (rows by (student, exercise), stdout lines)."""
    folder = Path(tempfile.mkdtemp(prefix="resnet-lab-neighbours-")).resolve()  # the kernels run as this user
    submissions = folder / "submissions"
    marker, waiting = str(folder / "victim-was-killed"), str(folder / "victim-is-waiting")
    lesson = nbformat.read(ROOT / "notebooks" / synthetic.LESSON, as_version=4)
    student_copy = nbformat.read(ROOT / "notebooks" / "student" / synthetic.LESSON, as_version=4)
    code = {
        "victim": _VICTIM.format(marker=marker, waiting=waiting),
        "saboteur": _SABOTEUR.format(marker=marker, waiting=waiting, folder=str(submissions)),
    }
    for student, source in code.items():
        nb = synthetic._solved(student_copy, lesson)
        first = next(c for c in nb.cells if c.cell_type == "code")
        first.source = source + "\n" + first.source
        (submissions / student).mkdir(parents=True)
        nbformat.write(nb, submissions / student / synthetic.LESSON)
    lines: list[str] = []
    try:
        rows = grade.grade_class(
            submissions,
            folder / "grades.csv",
            limits=grade.Limits(notebook_seconds=300, cell_seconds=200, check_seconds=8, quick=True),
            jobs=2,
            log=lines.append,
        )
        assert os.path.exists(marker), "the saboteur never reached the victim: the test did not test anything"
        yield {(r["student"], r["exercise"]): r for r in rows}, lines
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_notebook_killed_by_its_neighbour_is_graded_again_alone(graded_beside_a_saboteur):
    rows, lines = graded_beside_a_saboteur
    victim = [rows[("victim", e)] for e in EXERCISES]
    assert [r["status"] for r in victim] == ["passed"] * 3, victim
    for r in victim:
        assert r["detail"].startswith("graded again with no other notebook running (beside others: "), r
        assert "notebook failed" in r["detail"]  # what the run beside the saboteur gave
    assert [line for line in lines if "victim" in line and "graded again alone" in line]


def test_the_neighbour_itself_keeps_its_result(graded_beside_a_saboteur):
    rows, lines = graded_beside_a_saboteur
    saboteur = [rows[("saboteur", e)] for e in EXERCISES]
    assert [r["status"] for r in saboteur] == ["passed"] * 3, saboteur  # killing a classmate is not graded
    assert not any("graded again" in r["detail"] for r in saboteur)
    assert not [line for line in lines if "saboteur" in line and "graded again" in line]


def test_only_what_a_neighbour_could_cause_is_graded_again():
    def result(*statuses: str, run: str = "ok") -> dict:
        return {"run": run, "exercises": [{"exercise": f"e{i}", "status": s} for i, s in enumerate(statuses)]}

    assert grade.neighbour_could_cause(result("passed", "notebook failed"))
    assert grade.neighbour_could_cause(result("timed out"))
    assert grade.neighbour_could_cause(result("tampered", "passed"))
    for own in ("passed", "failed", "error", "missing", "not attempted", "reference used", "needs review"):
        assert not grade.neighbour_could_cause(result(own, "passed"))
    assert not grade.neighbour_could_cause(result("notebook failed", run="not a readable notebook: no list of cells"))


def test_report_rows_keep_the_submissions_order(graded_beside_a_saboteur):
    rows, _ = graded_beside_a_saboteur
    assert [s for s, _ in rows] == ["saboteur"] * 3 + ["victim"] * 3
    assert set(report.COLUMNS) <= set(next(iter(rows.values())))


def test_a_turn_alone_waits_for_the_running_and_goes_before_the_waiting():
    turns = grade._Turns()
    events: list[str] = []
    shared: dict[str, bool] = {}
    first_in, alone_asked, release_first = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with turns.beside_others() as turn:
            events.append("first starts")
            first_in.set()
            release_first.wait(10)
            events.append("first ends")
        shared["first"] = turn.shared

    def alone() -> None:
        first_in.wait(10)
        alone_asked.set()
        with turns.alone():
            events.append("alone starts")
            time.sleep(0.2)
            events.append("alone ends")

    def later() -> None:
        alone_asked.wait(10)
        time.sleep(0.1)  # asks after the one waiting alone
        with turns.beside_others() as turn:
            events.append("later starts")
        shared["later"] = turn.shared

    threads = [threading.Thread(target=f) for f in (first, alone, later)]
    for t in threads:
        t.start()
    time.sleep(0.4)
    assert events == ["first starts"]  # the one alone waits for the running; the later one waits for it
    release_first.set()
    for t in threads:
        t.join(10)
    assert events == ["first starts", "first ends", "alone starts", "alone ends", "later starts"]
    assert shared == {"first": False, "later": False}  # never beside another notebook's turn


def test_turns_that_overlap_are_shared_and_a_lone_one_is_not():
    turns = grade._Turns()
    with turns.beside_others() as a:
        with turns.beside_others() as b:
            pass
    with turns.beside_others() as c:
        pass
    assert a.shared and b.shared and not c.shared
