"""python -m resnet_lab.grade on a synthetic class built from the student copy of notebook 02: the report
says exactly what happened to each submission, cheats are never graded passed, the hidden configurations
never reach the kernel, and the run stays within its time limits.

The class run (12 submissions: 12 kernels in quick mode, and 13 answer processes with a judge beside
each, forked from one fork server, four notebooks at a time) is the slow part: 40 s of wall time for the
fixture in the whole suite on the 2-core machine, nothing else running (45 s two at a time; 2026-12-05). Everything else here runs
without a kernel. Time limits are far above an honest run's needs: an honest check takes under 1 CPU
second (the limit, 8, counts CPU seconds, so a loaded machine cannot trip it), and the notebooks'
wall-clock limits are 300 and 600 s for cells that take a few seconds; only the endless loop reaches its
limit.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import json
import os
import time
from pathlib import Path

import nbformat
import pytest

from resnet_lab import grade
from resnet_lab.checks import exercises
from resnet_lab.grade import report, worker

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("make_synthetic_class", ROOT / "scripts" / "make_synthetic_class.py")
synthetic = importlib.util.module_from_spec(_spec)
assert _spec.loader is not None
_spec.loader.exec_module(synthetic)

CHECK_SECONDS = 8  # CPU seconds; the slowest honest check here takes under 0.8
HIDDEN = {"basic_block": [[16, 32, 2], [32, 32, 1]]}
HONEST = {"complete", "half_done", "no_stride", "relu_first", "bad_import", "endless", "renamed", "crash"}
CHEATS = {"kernel_cheats", "tampering", "reference", "wrapper"}
EXERCISES = ("conv_output_size", "basic_block", "plain_switch")
# Notebooks graded at the same time. A notebook's run mostly waits (for its kernel to start, to import torch,
# for the answer process and the judge to take turns), so four at a time keep the two cores busy.
JOBS = 4


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Build the class, grade it once through the CLI; return (rows by (student, exercise), stdout, seconds, dir)."""
    root = tmp_path_factory.mktemp("class")
    synthetic.build(root / "submissions", spy_file=root / "found-by-the-kernel.txt")
    hidden = root / "hidden.json"
    hidden.write_text(json.dumps(HIDDEN), encoding="utf-8")
    # an earlier report, as if an older checker had failed complete's basic_block: --compare must say so
    old = report.CsvReport(root / "old.csv")
    for exercise, status, passed in (("conv_output_size", "passed", 14), ("basic_block", "failed", 2)):
        total = 14 if exercise == "conv_output_size" else 4
        old.add(
            {
                "student": "complete",
                "exercise": exercise,
                "status": status,
                "checks_passed": passed,
                "checks_total": total,
                "hidden_passed": 0,
                "hidden_total": 0,
            }
        )
    old.close()
    out = io.StringIO()
    start = time.monotonic()
    with contextlib.redirect_stdout(out):
        code = grade.main(
            [
                str(root / "submissions"),
                "--report",
                str(root / "grades.csv"),
                "--hidden",
                str(hidden),
                "--quick",
                "--jobs",
                str(JOBS),
                # endless, crash and tampering fail in ways a neighbour could cause; graded again alone they
                # would fail the same way, 25 s later. Being graded again: tests/test_grade_neighbours.py
                "--no-regrade-alone",
                "--timeout",
                "600",
                "--cell-timeout",
                "300",
                "--check-timeout",
                str(CHECK_SECONDS),
                "--feedback",
                str(root / "feedback"),
                "--compare",
                str(root / "old.csv"),
                *(["--allow-root"] if os.geteuid() == 0 else []),  # CI runs as root: the kernels too
            ]
        )
    seconds = time.monotonic() - start
    assert code == 0
    rows = {(r["student"], r["exercise"]): r for r in report.read_rows(root / "grades.csv")}
    print(f"grading the synthetic class took {seconds:.1f} s")
    return rows, out.getvalue(), seconds, root


def _row(rows, student, exercise):
    r = rows[(student, exercise)]
    return (
        r["status"],
        int(r["checks_passed"]),
        int(r["checks_total"]),
        int(r["hidden_passed"]),
        int(r["hidden_total"]),
    )


def test_the_report_has_one_row_per_student_and_exercise(graded):
    rows, _, _, _ = graded
    assert set(rows) == {(s, e) for s in HONEST | CHEATS for e in EXERCISES}
    assert all(r["notebook"].endswith("/02_basic_block.ipynb") for r in rows.values())


def test_complete_and_half_done(graded):
    rows, _, _, _ = graded
    assert _row(rows, "complete", "conv_output_size") == ("passed", 14, 14, 0, 0)
    assert _row(rows, "complete", "basic_block") == ("passed", 4, 4, 2, 2)
    assert _row(rows, "complete", "plain_switch") == ("passed", 4, 4, 0, 0)
    assert rows[("complete", "basic_block")]["hints_used"] == "2"
    assert rows[("complete", "basic_block")]["run"] == "ok"
    assert _row(rows, "half_done", "basic_block") == ("passed", 4, 4, 2, 2)
    assert rows[("half_done", "basic_block")]["solution_revealed"] == "True"
    assert rows[("half_done", "plain_switch")]["status"] == "not attempted"
    assert float(rows[("half_done", "plain_switch")]["score"]) == 0.0


def test_classic_mistakes_fail_with_partial_credit_and_the_hint(graded):
    rows, _, _, _ = graded
    assert _row(rows, "no_stride", "basic_block") == ("failed", 2, 4, 1, 2)  # the strided configurations fail
    assert float(rows[("no_stride", "basic_block")]["score"]) == 0.5
    assert "Give the projection's 1x1 conv stride=2" in rows[("no_stride", "basic_block")]["detail"]
    assert _row(rows, "relu_first", "basic_block") == ("failed", 0, 4, 0, 2)
    assert "Is ReLU applied before the shortcut is added?" in rows[("relu_first", "basic_block")]["detail"]
    assert rows[("relu_first", "plain_switch")]["status"] == "passed"  # its own forward is right


def test_broken_notebooks_are_reported_as_such(graded):
    rows, _, _, _ = graded
    bad = rows[("bad_import", "basic_block")]
    assert bad["status"] == "error" and "NameError: name 'nn' is not defined" in bad["detail"]
    assert "No module named 'torchvison'" in bad["run"]
    assert rows[("bad_import", "conv_output_size")]["status"] == "passed"  # needs no import

    endless = rows[("endless", "conv_output_size")]
    assert endless["status"] == "timed out" and f"within {CHECK_SECONDS} CPU seconds" in endless["detail"]
    assert rows[("endless", "basic_block")]["status"] == "passed"

    renamed = rows[("renamed", "basic_block")]
    assert renamed["status"] == "passed" and "renamed MyBasicBlock to MyBlock" in renamed["detail"]

    assert rows[("crash", "plain_switch")]["status"] == "notebook failed"
    assert "kernel died in this exercise's cell" in rows[("crash", "plain_switch")]["detail"]
    assert [rows[("crash", e)]["status"] for e in ("conv_output_size", "basic_block")] == ["passed", "passed"]


def test_summary_and_chart(graded):
    _, out, seconds, root = graded
    assert "12 students, 36 graded exercises" in out
    line = next(line for line in out.splitlines() if line.startswith("basic_block"))
    # passed, failed, error, tampered, reference used (no basic_block was not attempted, timed out or lost)
    assert line.split()[1:-1] == ["5", "3", "0", "1", "0", "0", "1", "2", "0"]
    assert (root / "grades.png").stat().st_size > 10_000
    # Each notebook stayed within its limits: none had to be killed by the grader.
    assert "hard time limit" not in (root / "grades.csv").read_text(encoding="utf-8")


def test_cheats_are_never_graded_passed(graded):
    rows, _, _, _ = graded
    statuses = {s: tuple(rows[(s, e)]["status"] for e in EXERCISES) for s in CHEATS}
    assert statuses == {
        # patches in the kernel change nothing: the stub is a stub, the block without shortcut fails;
        # plain_switch (whose own forward adds the shortcut) passes the judge, but an earlier cell imports
        # the comparison engine, which the answer process runs too: a teacher reads it
        "kernel_cheats": ("not attempted", "failed", "needs review"),
        # the answer cell itself patches torch's comparisons: from then on nothing is graded
        "tampering": ("passed", "tampered", "tampered"),
        "reference": ("reference used", "reference used", "reference used"),
        # plain_switch subclasses the wrapper (whose code names resnet_lab's BasicBlock): read by the grader
        "wrapper": ("reference used", "reference used", "reference used"),
    }
    assert all(
        float(rows[(s, e)]["score"]) == 0.0 for s in CHEATS for e in EXERCISES if rows[(s, e)]["status"] != "passed"
    )
    assert "torch.allclose was replaced" in rows[("tampering", "basic_block")]["detail"]
    assert "subclass of resnet_lab's BasicBlock" in rows[("reference", "basic_block")]["detail"]
    assert "resnet_lab's conv_output_size itself" in rows[("reference", "conv_output_size")]["detail"]
    assert "calls resnet_lab's BasicBlock" in rows[("wrapper", "basic_block")]["detail"]
    assert "calls resnet_lab's conv_output_size" in rows[("wrapper", "conv_output_size")]["detail"]
    assert rows[("kernel_cheats", "basic_block")]["run"] == "ok"  # the cheats did run in the kernel


def test_hidden_configurations_are_not_visible_from_the_kernel(graded):
    _, _, _, root = graded
    found = (root / "found-by-the-kernel.txt").read_text(encoding="utf-8")
    assert '"exercises"' in found and "02_basic_block.ipynb" in found  # it did read the worker's job file
    flat = found.replace(" ", "")
    assert "[16,32,2]" not in flat and "[32,32,1]" not in flat and "hidden.json" not in found


def test_feedback_gradebook_and_compare(graded):
    rows, out, _, root = graded
    book = list(csv.reader((root / "grades-gradebook.csv").open(encoding="utf-8")))
    assert book[0] == ["student", *EXERCISES, "total"]
    by_student = {r[0]: r[1:] for r in book[1:]}
    assert set(by_student) == HONEST | CHEATS
    assert by_student["complete"] == ["1", "1", "1", "3"]
    assert by_student["no_stride"] == ["1", "0.5", "0.75", "2.25"]
    assert by_student["reference"] == ["0", "0", "0", "0"]
    assert sorted(p.name for p in (root / "feedback").iterdir()) == sorted(f"{s}.md" for s in HONEST | CHEATS)
    text = (root / "feedback" / "relu_first.md").read_text(encoding="utf-8")
    assert "| basic_block | failed | 0 |" in text and "Is ReLU applied before the shortcut is added?" in text
    assert "- **plain_switch**" not in text  # passed: nothing to say
    for path in (root / "feedback").iterdir():
        assert "16, 32" not in path.read_text(encoding="utf-8")
    assert "changes since" in out
    assert "  complete: basic_block failed 0.5 -> passed 1; plain_switch new: passed 1\n" in out  # conv: unchanged
    assert (
        "  no_stride: conv_output_size new: passed 1; basic_block new: failed 0.5; plain_switch new: failed 0.75\n"
        in out
    )


# ----------------------------------------------------------------------------------------
# Without a kernel
# ----------------------------------------------------------------------------------------

SPECS = [
    {"exercise": e.name, "target": e.target, "kind": e.kind, "cell_id": e.cell_id}
    for e in exercises.for_lesson("02_basic_block.ipynb")
]


def test_plan_notes_renamed_and_deleted_exercises():
    nb = json.loads((ROOT / "notebooks" / "student" / "02_basic_block.ipynb").read_text(encoding="utf-8"))
    basic = next(c for c in nb["cells"] if c.get("id") == SPECS[1]["cell_id"])
    basic["source"] = "".join(basic["source"]).replace("class MyBasicBlock(", "class Block(")
    nb["cells"] = [c for c in nb["cells"] if c.get("id") != SPECS[0]["cell_id"]]
    plans = {p["exercise"]: p for p in worker.plan(nb, SPECS)}
    assert plans["conv_output_size"]["note"] == "the exercise cell was deleted and no cell defines conv_output_size"
    assert plans["basic_block"]["lookup"] == "Block" and "renamed MyBasicBlock to Block" in plans["basic_block"]["note"]
    assert plans["plain_switch"]["lookup"] == "MyBlockWithSwitch" and plans["plain_switch"]["note"] == ""


def test_quick_mode_runs_the_first_cell_imports_and_exercises_only():
    nb = json.loads((ROOT / "notebooks" / "student" / "02_basic_block.ipynb").read_text(encoding="utf-8"))
    picked = worker.cells_to_run(nb, worker.plan(nb, SPECS), quick=True)
    ids = [nb["cells"][i].get("id") for i in picked]
    assert ids[0] == next(c["id"] for c in nb["cells"] if c["cell_type"] == "code")
    assert {s["cell_id"] for s in SPECS} <= set(ids) and len(ids) < 8


def test_submissions_are_found_in_folders_or_by_file_name(tmp_path):
    lesson = "02_basic_block.ipynb"
    (tmp_path / "ana").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "ana" / lesson)
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "bo_02_basic_block.ipynb")
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "cy_homework.ipynb")
    found = [(s, p.name, les) for s, p, les in grade.find_submissions(tmp_path, [lesson])]
    assert found == [
        ("ana", lesson, lesson),
        ("bo", "bo_02_basic_block.ipynb", lesson),
        ("cy_homework", "cy_homework.ipynb", None),
    ]
    with pytest.raises(grade.GradeError, match="is not a folder"):
        grade.find_submissions(tmp_path / "nope", [lesson])


def test_hidden_checks_file_is_validated(tmp_path):
    all_ex = list(exercises.all_exercises())
    path = tmp_path / "hidden.json"
    path.write_text('{"basic_blok": [[16, 32, 2]]}', encoding="utf-8")
    with pytest.raises(grade.GradeError, match="unknown exercise 'basic_blok'"):
        grade.load_hidden(path, all_ex)
    path.write_text('{"basic_block": []}', encoding="utf-8")
    with pytest.raises(grade.GradeError, match="non-empty list"):
        grade.load_hidden(path, all_ex)
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(grade.GradeError, match="cannot read the hidden checks file"):
        grade.load_hidden(path, all_ex)


def test_the_csv_is_on_disk_row_by_row(tmp_path):
    path = tmp_path / "g.csv"
    rep = report.CsvReport(path)
    rep.add(
        {
            "student": "a",
            "exercise": "stage",
            "status": "failed",
            "checks_passed": 1,
            "checks_total": 4,
            "hidden_passed": 1,
            "hidden_total": 2,
        }
    )
    rows = list(csv.DictReader(path.open(encoding="utf-8")))  # before close: already written
    assert rows[0]["score"] == "0.333" and rows[0]["student"] == "a"
    rep.close()
    assert (
        report.score(
            {"status": "not attempted", "checks_passed": 0, "checks_total": 4, "hidden_passed": 0, "hidden_total": 0}
        )
        == 0.0
    )
