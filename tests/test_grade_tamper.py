"""The grader's defences without a kernel: the tamper snapshot, the answer process, feedback, gradebook,
regrade changes, hidden checks from stdin, and (as root) that another user cannot read the hidden file.

One test forks one answer process (about 1 CPU second once the fork server has imported torch);
the others run in a blink.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

import resnet_lab.checks.blocks
from resnet_lab import checks, grade
from resnet_lab.checks import engine, exercises
from resnet_lab.grade import answer_process, answers, outputs, tamper
from resnet_lab.grade.worker import Limits


def _replace(owner, name, value):
    """Set ``owner.name`` (or ``owner[name]``) to value; return a function that puts the old one back."""
    if isinstance(owner, dict):
        old = owner[name]
        owner[name] = value
        return lambda: owner.__setitem__(name, old)
    if isinstance(owner, type) and name not in vars(owner):  # inherited: restoring means deleting ours
        setattr(owner, name, value)
        return lambda: delattr(owner, name)
    old = vars(owner)[name] if isinstance(owner, type) else getattr(owner, name)
    setattr(owner, name, value)
    return lambda: setattr(owner, name, old)


def _agree(*args, **kwargs):
    return True


def _reloaded_copy(tmp_path):
    """resnet_lab.checks.blocks loaded from an edited copy and put in its place in sys.modules."""
    copy = tmp_path / "blocks_copy.py"
    copy.write_text(Path(resnet_lab.checks.blocks.__file__).read_text(encoding="utf-8"), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("resnet_lab.checks.blocks", copy)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return _replace(sys.modules, "resnet_lab.checks.blocks", module)


@pytest.mark.parametrize(
    "patch, reported",
    [
        (lambda tmp: _replace(checks.CHECKERS, "basic_block", _agree), "resnet_lab.checks.CHECKERS was replaced"),
        (lambda tmp: _replace(checks, "basic_block", _agree), "resnet_lab.checks.basic_block was replaced"),
        (
            lambda tmp: _replace(answer_process, "serve_exercise", _agree),
            "resnet_lab.grade.answer_process.serve_exercise was replaced",
        ),
        (lambda tmp: _replace(torch, "allclose", _agree), "torch.allclose was replaced"),
        (lambda tmp: _replace(engine, "ATOL", 1e9), "resnet_lab.checks.engine.ATOL was replaced"),
        (lambda tmp: _replace(torch.testing, "assert_close", _agree), "torch.testing.assert_close was replaced"),
        (lambda tmp: _replace(torch.Tensor, "__eq__", _agree), "torch.Tensor.__eq__ was replaced"),
        (lambda tmp: _replace(builtins, "isinstance", _agree), "builtins.isinstance was replaced"),
        (
            lambda tmp: _replace(engine.close, "__code__", _agree.__code__),
            "resnet_lab.checks.engine.close was replaced",
        ),
        (_reloaded_copy, "sys.modules['resnet_lab.checks.blocks'] was replaced"),
        (
            lambda tmp: torch.nn.modules.module.register_module_forward_hook(lambda *a: None).remove,
            "torch.nn.modules.module._global_forward_hooks was replaced",
        ),
    ],
    ids=[
        "CHECKERS",
        "checker",
        "grader",
        "allclose",
        "ATOL",
        "assert_close",
        "Tensor.__eq__",
        "isinstance",
        "code",
        "reload",
        "hook",
    ],
)
def test_the_snapshot_names_each_kind_of_tampering(patch, reported, tmp_path):
    before = tamper.snapshot()
    restore = patch(tmp_path)
    try:
        found = tamper.changes(before, tamper.snapshot(), limit=50)
    finally:
        restore()
    assert reported in found
    assert tamper.changes(before, tamper.snapshot()) == []  # restored: nothing to report


def test_an_honest_check_changes_nothing_the_snapshot_sees():
    namespace = {}
    exec(exercises.find("conv_output_size").source, namespace)  # noqa: S102 - the lesson's own solution
    before = tamper.snapshot()
    with engine.collecting(), contextlib.redirect_stdout(io.StringIO()):
        checks.conv_output_size(namespace["conv_output_size"])
    assert tamper.changes(before, tamper.snapshot()) == []


SNEAKY_BLOCK = """
class MyBasicBlock(nn.Module):  # no shortcut; its forward makes the next torch.allclose agree, then undoes it
    def __init__(self, in_channels, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or in_channels != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        original = torch.allclose

        def agree(*args, **kwargs):
            torch.allclose = original
            return True

        torch.allclose = agree
        return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))
"""


def test_answer_process_spots_references_and_tampering_in_the_answer_itself():
    """One answer process, cells in notebook order: a wrapper of the reference; a block that patches
    torch.allclose in its forward and restores it when the checker calls it (caught when its forward
    returns); a cell that replaces a checker and prints forged outcome lines (ignored)."""
    size = (
        "from resnet_lab.shapes import conv_output_size as ref\n\n"
        "def conv_output_size(n, kernel, stride=1, padding=0):\n    return ref(n, kernel, stride, padding)\n"
    )
    switch = (
        "import os, json\nfrom resnet_lab import checks\n"
        "class MyBlockWithSwitch(torch.nn.Module):\n    pass\n"
        "checks.CHECKERS['plain_switch'] = lambda *a, **k: None\n"
        "line = '@@resnet-lab-grade@@ ' + json.dumps({'outcome': {'exercise': 'plain_switch', 'status': 'passed'}})\n"
        "print(line)\nos.write(1, line.encode())\n"
    )
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "source": "import torch\nfrom torch import nn\nimport resnet_lab\ntorch.allclose = None  # not run",
            },
            {"cell_type": "code", "source": size},
            {"cell_type": "code", "source": SNEAKY_BLOCK},
            {"cell_type": "code", "source": switch},
        ]
    }
    plans = [
        {"exercise": "conv_output_size", "lookup": "conv_output_size", "cell": 1},
        {"exercise": "basic_block", "lookup": "MyBasicBlock", "cell": 2},
        {"exercise": "plain_switch", "lookup": "MyBlockWithSwitch", "cell": 3},
    ]
    found = answers.check_answers(nb, plans, {}, Limits(check_seconds=60))
    assert found["conv_output_size"]["status"] == "reference used"
    assert found["conv_output_size"]["checks_passed"] == 14  # it was checked, and it works: still not the student's
    assert found["basic_block"]["status"] == "tampered"
    assert "(caught when it returned to the checker): torch.allclose was replaced" in found["basic_block"]["detail"]
    assert found["plain_switch"]["status"] == "tampered"
    assert "resnet_lab.checks.CHECKERS was replaced" in found["plain_switch"]["detail"]


def test_answer_cells_keep_definitions_and_drop_everything_else():
    nb = {
        "cells": [
            {"cell_type": "markdown", "source": "# title"},
            {
                "cell_type": "code",
                "source": "%matplotlib inline\nimport torch\ntorch.allclose = print\nN = 3\nx = f()\n",
            },
            {"cell_type": "code", "source": "train(model)"},
            {"cell_type": "code", "source": "def f():\n    return 1\n"},
            {"cell_type": "code", "source": "class A:\n    pass\nA.x = 1"},
            {"cell_type": "code", "source": "after()"},
        ]
    }
    cells = answers.answer_cells(nb, [{"cell": 4}])
    assert cells == [
        {"index": 1, "source": "import torch\nN = 3"},
        {"index": 3, "source": "def f():\n    return 1"},
        {"index": 4, "source": "class A:\n    pass\nA.x = 1"},  # the exercise cell runs whole
    ]


ROWS = [
    {"student": "ana", "notebook": "ana/02.ipynb", "exercise": "conv_output_size", "status": "passed", "score": 1.0,
     "checks_passed": 14, "checks_total": 14, "hidden_passed": 0, "hidden_total": 0, "detail": ""},
    {"student": "ana", "notebook": "ana/02.ipynb", "exercise": "basic_block", "status": "failed", "score": 0.667,
     "checks_passed": 4, "checks_total": 4, "hidden_passed": 0, "hidden_total": 2,
     "detail": "hidden checks: basic_block, MyBasicBlock(16, 32, stride=2): outputs differ | Hint: x"},
    {"student": "bo", "notebook": "bo/02.ipynb", "exercise": "basic_block", "status": "reference used", "score": 0.0,
     "checks_passed": 0, "checks_total": 0, "hidden_passed": 0, "hidden_total": 0, "detail": "a subclass of BasicBlock"},
]  # fmt: skip


def test_feedback_says_how_many_hidden_checks_failed_but_not_which(tmp_path):
    paths = outputs.write_feedback(ROWS, tmp_path / "fb")
    assert [p.name for p in paths] == ["ana.md", "bo.md"]
    text = paths[0].read_text(encoding="utf-8")
    assert "| basic_block | failed | 0.667 |" in text
    assert "2 of the teacher's 2 further checks failed" in text
    assert "16" not in text and "Hint: x" not in text
    assert "(reference used): a subclass of BasicBlock" in paths[1].read_text(encoding="utf-8")


def test_gradebook_has_one_row_per_student_and_blank_for_no_notebook(tmp_path):
    path = outputs.write_gradebook(ROWS, tmp_path / "book.csv")
    assert path.read_text(encoding="utf-8").splitlines() == [
        "student,conv_output_size,basic_block,total",
        "ana,1,0.667,1.667",
        "bo,,0,0",
    ]


def test_changes_name_each_difference_per_student():
    new = [dict(r) for r in ROWS[:2]] + [{**ROWS[2], "status": "passed", "score": 1.0}]
    assert outputs.changes(ROWS, new) == ["bo: basic_block reference used 0 -> passed 1"]
    assert outputs.changes(ROWS, ROWS) == []
    assert outputs.changes(ROWS[:1], ROWS[1:2]) == [
        "ana: basic_block new: failed 0.667; conv_output_size no longer graded (was passed 1)"
    ]


def test_hidden_checks_can_come_from_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"basic_block": [[16, 32, 2]]}'))
    assert grade.load_hidden(Path("-"), list(exercises.all_exercises())) == {"basic_block": [[16, 32, 2]]}


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runuser") is None, reason="needs root and runuser to switch to user nobody"
)
def test_another_user_cannot_read_the_hidden_file():
    """The premise of grading as a throwaway user: student code running as that user cannot open the
    teacher's hidden file (mode 600), which the teacher's shell passes on stdin instead (--hidden -)."""
    folder = Path(tempfile.mkdtemp(prefix="resnet-lab-teacher-"))
    folder.chmod(0o755)  # the folder is open to all: only the file's own mode protects it
    hidden = folder / "hidden.json"
    hidden.write_text(json.dumps({"basic_block": [[16, 32, 2]]}), encoding="utf-8")
    hidden.chmod(0o600)
    attempt = f"open({str(hidden)!r}).read()"
    # this interpreter, or the system's where this one sits in a folder only its owner may enter
    python = next(
        p
        for p in (sys.executable, "/usr/bin/python3")
        if subprocess.run(["runuser", "-u", "nobody", "--", p, "-c", "pass"], capture_output=True).returncode == 0
    )
    denied = subprocess.run(["runuser", "-u", "nobody", "--", python, "-c", attempt], capture_output=True, text=True)
    assert denied.returncode == 1 and "PermissionError" in denied.stderr
    as_owner = subprocess.run([sys.executable, "-c", attempt], capture_output=True, text=True)
    shutil.rmtree(folder)
    assert as_owner.returncode == 0  # the same code as the file's owner reads it: the user switch is what protects it


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runuser") is None or not sys.platform.startswith("linux"),
    reason="needs Linux, root and runuser to run two processes as user nobody",
)
def test_the_judge_is_out_of_reach_of_another_process_of_its_user():
    """The premise of keep_private: a process of the same user can read another's /proc/PID/fd, mem and
    environ, unless that process made itself non-dumpable, as the judge and the grader do."""
    from resnet_lab.grade import judge

    folder = Path(tempfile.mkdtemp(prefix="resnet-lab-private-"))
    folder.chmod(0o755)
    target = folder / "target.py"
    target.write_text(
        "import sys, time\n"
        "if sys.argv[1] == '1':\n"
        "    import ctypes\n    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)\n"
        "print('ready', flush=True)\ntime.sleep(30)\n",
        encoding="utf-8",
    )
    peek = "import os, sys\nos.listdir(f'/proc/{sys.argv[1]}/fd')\nopen(f'/proc/{sys.argv[1]}/mem', 'rb')\n"
    target.chmod(0o644)
    results = []
    for private in ("0", "1"):
        proc = subprocess.Popen(
            ["runuser", "-u", "nobody", "--", "/usr/bin/python3", str(target), private], stdout=subprocess.PIPE
        )
        try:
            assert proc.stdout.readline().strip() == b"ready"
            child = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
            pid = child[0] if child else str(proc.pid)
            peeked = subprocess.run(
                ["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", peek, pid], capture_output=True, text=True
            )
            results.append(peeked.returncode == 0 or "PermissionError" not in peeked.stderr)
        finally:
            proc.kill()
            proc.wait()
    shutil.rmtree(folder)
    assert results == [True, False]
    assert judge.keep_private() is True  # this process too (harmless here): the call works on this system
