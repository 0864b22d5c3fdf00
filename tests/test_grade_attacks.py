"""The red team's attacks on the grader (tests/grading_attacks/*.py), each graded: none is ever ``passed``.

Each attack replaces cells of the student copy of lesson 02 (or inserts cells before them). Most are
graded without a kernel (``answers.check_answers``: one answer process and one judge, 1-3 CPU seconds);
the attack on the worker's report (a10) needs the whole grader with a kernel (about 15 s).

As root (as in CI), the answer processes run as user ``nobody``, or, where that user cannot import
Python's modules (an installation under /root, as on the course's machine), as root without any
capability (``answers._student_user``); the tests marked "same user" switch that off to check what holds
when student code runs as the grader's user with the grader's rights.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from resnet_lab import grade
from resnet_lab.checks import engine, exercises
from resnet_lab.grade import answers
from resnet_lab.grade.worker import Limits

ROOT = Path(__file__).resolve().parent.parent
ATTACKS = ROOT / "tests" / "grading_attacks"
STUDENT = ROOT / "notebooks" / "student" / "02_basic_block.ipynb"
IDS = {"conv": "0827356b", "block": "7dc07b58", "switch": "93e4e04b", "imports": "c99fc340"}
HIDDEN = {"basic_block": [[16, 32, 2], [32, 32, 1]], "plain_switch": [[16, 32, 2, False]]}
LIMITS = Limits(check_seconds=60)


def build(name: str) -> dict:
    """The student copy of lesson 02 with the attack's cells."""
    spec = importlib.util.spec_from_file_location(f"attack_{name}", ATTACKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    replace, before = getattr(module, "REPLACE", {}), getattr(module, "BEFORE", {})
    nb = json.loads(STUDENT.read_text(encoding="utf-8"))
    cells = []
    for cell in nb["cells"]:
        for key, cell_id in IDS.items():
            if cell.get("id") == cell_id:
                for j, source in enumerate(before.get(key, [])):
                    cells.append(
                        {"cell_type": "code", "id": f"extra{key}{j}", "metadata": {}, "execution_count": None,
                         "outputs": [], "source": source}
                    )  # fmt: skip
                if key in replace:
                    cell = {**copy.deepcopy(cell), "source": replace[key]}
        cells.append(cell)
    nb["cells"] = cells
    return nb


def check(nb: dict) -> dict[str, dict]:
    plans = []
    for e in exercises.for_lesson("02_basic_block.ipynb"):
        index = next(i for i, c in enumerate(nb["cells"]) if c.get("id") == e.cell_id)
        plans.append({"exercise": e.name, "lookup": e.target, "cell": index, "kwargs": e.check_kwargs})
    return answers.check_answers(nb, plans, HIDDEN, LIMITS, seed=engine.SEED)


@pytest.mark.parametrize(
    "attack, expected, said",
    [
        # operator.attrgetter: the class's forward *is* the reference's (answer process) and operator (reading)
        ("a01_attrgetter_forward", {"basic_block": "reference used"}, "BasicBlock.forward"),
        ("a02_type_of_instance", {"conv_output_size": "needs review", "basic_block": "reference used"}, ""),
        ("a02b_type_of_instance", {"conv_output_size": "needs review", "basic_block": "reference used"}, ""),
        ("a03_torchvision_subclass", {"basic_block": "reference used"}, "torchvision's BasicBlock"),
        ("a03b_torchvision_attribute", {"basic_block": "reference used"}, "torchvision's BasicBlock"),
        ("a04_earlier_class_body", {"basic_block": "reference used"}, "BasicBlock"),
        ("a05_reduce_getattr", {"basic_block": "reference used"}, "BasicBlock.forward"),
        ("a06_pkgutil_wrapper_call", {"basic_block": "reference used"}, "BasicBlock._close"),
        ("c01_control_wrapped_call", {"basic_block": "reference used"}, "resnet_lab's BasicBlock"),
        ("c02_control_subclass", {"basic_block": "reference used"}, "subclass of resnet_lab's BasicBlock"),
    ],
)
def test_reaching_the_reference_dynamically_is_never_passed(attack, expected, said):
    found = check(build(attack))
    assert not [e for e, o in found.items() if o["status"] == "passed"], found
    for exercise, status in expected.items():
        assert found[exercise]["status"] == status, found[exercise]
    assert said in found["basic_block"]["detail"]


@pytest.mark.parametrize("attack", ["a03_torchvision_subclass", "a03b_torchvision_attribute"])
def test_torchvision_blocks_are_a_reference_under_any_spelling(attack):
    from resnet_lab.grade import static

    nb = build(attack)
    cell = next(i for i, c in enumerate(nb["cells"]) if c.get("id") == IDS["block"])
    plans = [{"exercise": "basic_block", "cell": cell}]
    status, detail = static.review(answers.answer_cells(nb, plans), plans)["basic_block"]
    assert status == "reference used" and "torchvision's BasicBlock" in detail


def test_forged_events_from_the_answer_process_end_quickly_and_pass_nothing():
    """a12: the answer process reads its event token and sends a "start" of an exercise that does not exist."""
    start = time.monotonic()
    found = check(build("a12_forged_start_loop"))
    assert time.monotonic() - start < 60
    assert {o["status"] for o in found.values()} == {"tampered"}, found
    assert "out of order" in found["basic_block"]["detail"]


def _no_user_switch(monkeypatch):
    monkeypatch.setattr(answers, "_student_user", lambda: None)


@pytest.mark.parametrize("same_user", [False, True], ids=["unprivileged", "same-user"])
def test_code_injected_into_the_answer_fork_server_never_reaches_a_judge(same_user, monkeypatch):
    """a11: gdb on the answer process's parent (a fork server), code that replaces the judge's verdict,
    then a forged event so that the grader retries. The judges come from a fork server of their own."""
    if shutil.which("gdb") is None:
        pytest.skip("needs gdb")
    if same_user:
        _no_user_switch(monkeypatch)
    with tempfile.TemporaryDirectory() as folder:
        monkeypatch.chdir(folder)
        found = check(build("a11_forkserver_inject"))
        found_again = check(build("c02_control_subclass"))  # a later submission's judges, same servers
    assert not [o for o in found.values() if o["status"] == "passed"], found
    assert found_again["conv_output_size"]["status"] == "not attempted", found_again
    assert found_again["basic_block"]["status"] == "reference used", found_again


def test_a_judge_killed_by_the_answer_is_the_submissions_doing(monkeypatch):
    """a07b (as the grader's own user; as nobody the answer could not signal the judge): the answer's
    forward finds the judge (a child of the judges' fork server) and kills it."""
    _no_user_switch(monkeypatch)
    found = check(build("a07b_kill_judge_by_its_server"))
    assert found["basic_block"]["status"] == "tampered", found
    assert "the judge process was killed while your code ran" in found["basic_block"]["detail"]
    assert "passed" not in {o["status"] for o in found.values()}


def test_the_red_teams_judge_killer_misses_the_judge():
    found = check(build("a07_kill_judge"))  # its forward kills its siblings: the judge is none of them
    assert found["basic_block"]["status"] == "failed", found


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="the user switch is for root")
def test_as_root_the_answer_runs_without_privileges():
    """User nobody where it can import Python's modules; else root with no capability at all (here, where
    Python is installed under /root, the latter): either way it cannot ptrace the grader's processes."""
    folder = Path(tempfile.mkdtemp(prefix="resnet-lab-uid-"))
    folder.chmod(0o777)
    nb = build("c02_control_subclass")
    spy = (
        "class _Who:\n    import os\n"
        "    _caps = [l for l in open('/proc/self/status') if l.startswith('CapEff:')][0].split()[1]\n"
        f"    open({str(folder / 'who')!r}, 'w').write(f'{{os.getuid()}} {{_caps}}')\n"
    )
    nb["cells"].insert(3, {"cell_type": "code", "source": spy})
    check(nb)
    uid, caps = (folder / "who").read_text().split()
    assert int(uid) != 0 or int(caps, 16) == 0
    expected = answers._student_user()
    assert (int(uid) != 0) == isinstance(expected, list)
    shutil.rmtree(folder)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="the refusal is for root")
def test_as_root_the_grader_refuses_without_allow_root(tmp_path, capsys):
    assert grade.main([str(tmp_path)]) == 2
    assert "--allow-root" in capsys.readouterr().err


def test_a_notebook_that_rewrites_the_workers_report_passes_nothing(tmp_path):
    """a10: a cell finds the worker, holds its stderr open and rewrites result.json with every exercise
    passed. The grader plans the exercises from the file itself and takes only failures from the worker."""
    folder = tmp_path / "submissions" / "mallory"
    folder.mkdir(parents=True)
    (folder / "02_basic_block.ipynb").write_text(json.dumps(build("a10_forge_worker_result")), encoding="utf-8")
    mine = [e for e in exercises.all_exercises() if e.lesson == "02_basic_block.ipynb"]
    result = grade.grade_notebook(folder / "02_basic_block.ipynb", mine, HIDDEN, Limits(quick=True, check_seconds=60))
    statuses = {o["exercise"]: o["status"] for o in result["exercises"]}
    assert "passed" not in statuses.values(), result
    assert set(statuses.values()) <= {"tampered", "not attempted"}, result
    assert statuses["basic_block"] == "tampered", result


def test_every_lesson_solution_passes_through_the_grader():
    """The widened reading and the answer process's new reports flag no honest answer: the lessons' own
    solutions (31 exercises, 13 notebooks) pass through the answer process and the judge. Two notebooks at
    a time, each in its own answer process and judge, as the grader's ``--jobs 2`` checks them."""
    from resnet_lab.grade import worker

    def not_passed(lesson: str) -> list[tuple[str, str, str, str]]:
        nb = json.loads((ROOT / "notebooks" / lesson).read_text(encoding="utf-8"))
        specs = [
            {"exercise": e.name, "target": e.target, "kind": e.kind, "cell_id": e.cell_id, "kwargs": e.check_kwargs}
            for e in exercises.for_lesson(lesson)
        ]
        plans = worker.plan(nb, specs)
        found = answers.check_answers(nb, plans, {}, Limits(check_seconds=120))
        return [
            (lesson, name, o["status"], o.get("detail", "")) for name, o in found.items() if o["status"] != "passed"
        ]

    with ThreadPoolExecutor(max_workers=2) as pool:
        lessons = sorted({e.lesson for e in exercises.all_exercises()})
        assert [row for rows in pool.map(not_passed, lessons) for row in rows] == []
