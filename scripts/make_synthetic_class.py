#!/usr/bin/env python
"""Build a synthetic class of submissions from a student copy, for testing the grader and for docs/.

    python scripts/make_synthetic_class.py OUT_DIR            # one folder per student in OUT_DIR
    python scripts/make_synthetic_class.py OUT_DIR --copies 30   # 30 submissions (for timing the grader)
    python -m resnet_lab.grade OUT_DIR --report grades.csv    # grade them

Each "student" starts from notebooks/student/02_basic_block.ipynb (three exercises: conv_output_size,
basic_block, plain_switch) and fills in the stubs with the lesson's solutions, then:

    complete     all three done; asked for two hints on basic_block (saved outputs)
    half_done    conv_output_size and basic_block done, plain_switch still a stub; revealed one solution
    no_stride    mistake 5: the projection shortcut has no stride (fails the strided configurations)
    relu_first   mistake 1: ReLU applied before the shortcut is added
    bad_import   the first cell imports a misspelt module, so nothing after it is defined
    endless      conv_output_size loops forever
    renamed      MyBasicBlock renamed to MyBlock everywhere
    crash        a cell kills the kernel (os._exit stands in for a crash in native code)

and four who want the points without the work (see docs/teachers.md, "What the grader guarantees"):

    kernel_cheats  conv_output_size left a stub, MyBasicBlock without its shortcut; the set-up cell then
                   replaces every checker, replaces the grader's check function, patches torch's
                   comparisons to agree with anything, prints forged outcome lines, reloads the block
                   checkers from an edited copy, and looks for the hidden configurations in what the
                   kernel can reach (its environment, its parent processes' command lines and files),
                   writing what it found to SPY_FILE
    tampering      MyBasicBlock without its shortcut, and its own cell patches torch's comparisons
    reference      conv_output_size is resnet_lab's, MyBasicBlock subclasses resnet_lab.BasicBlock
    wrapper        conv_output_size and MyBasicBlock are thin wrappers that call resnet_lab's
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from resnet_lab.checks.exercises import read_exercises, solution_text  # noqa: E402

LESSON = "02_basic_block.ipynb"


def _solved(
    student_copy: nbformat.NotebookNode, lesson: nbformat.NotebookNode, skip: tuple[str, ...] = ()
) -> nbformat.NotebookNode:
    """The student copy with each exercise cell replaced by the lesson's solution (except those in ``skip``)."""
    nb = copy.deepcopy(student_copy)
    solutions = {c.get("id"): solution_text(c.source) for c in lesson.cells if "exercise" in c.metadata.get("tags", [])}
    names = {e.cell_id: e.name for e in read_exercises(lesson, LESSON)}
    for cell in nb.cells:
        if cell.get("id") in solutions and names.get(cell.get("id")) not in skip:
            cell.source = solutions[cell.get("id")]
    return nb


def _cell(nb: nbformat.NotebookNode, exercise: str, lesson: nbformat.NotebookNode) -> nbformat.NotebookNode:
    ids = {e.name: e.cell_id for e in read_exercises(lesson, LESSON)}
    return next(c for c in nb.cells if c.get("id") == ids[exercise])


def _replace(cell: nbformat.NotebookNode, old: str, new: str) -> None:
    if old not in cell.source:
        raise ValueError(f"cannot build the synthetic class: {old!r} not found in cell {cell.get('id')}")
    cell.source = cell.source.replace(old, new)


def _with_output(source: str, text: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    return cell


_KERNEL_CHEATS = """

# ---- cheats: nothing below may turn a failure into a pass ----
import json, os, pathlib, importlib.util, sys
import resnet_lab.checks.blocks, resnet_lab.checks.engine
from resnet_lab import checks

def _agree(*args, **kwargs):
    return True

for _name in list(checks.CHECKERS):  # 1. every checker replaced by a function that returns
    checks.CHECKERS[_name] = _agree
    setattr(checks, _name, _agree)
try:  # 2. the grader's check replaced by one that says "passed" (the in-kernel grader of old, and the new one)
    import resnet_lab.grade.answer_process as _grader
    _grader.check = lambda *a, **k: {"status": "passed", "checks_passed": 4, "checks_total": 4,
                                     "hidden_passed": 0, "hidden_total": 0, "detail": ""}
    import resnet_lab.grade.in_kernel as _old
    _old.grade = lambda namespace, spec: {"exercise": spec["exercise"], "status": "passed"}
except ImportError:
    pass
torch.allclose = torch.equal = _agree  # 4. comparisons that agree with anything
torch.testing.assert_close = lambda *a, **k: None
resnet_lab.checks.engine.close = _agree
for _name in ("conv_output_size", "basic_block", "plain_switch"):  # a forged outcome line per exercise
    print("@@resnet-lab-grade@@ " + json.dumps({"exercise": _name, "status": "passed", "score": 1.0}))
_copy = pathlib.Path("blocks_copy.py")  # the block checkers reloaded from an edited copy
_copy.write_text(pathlib.Path(resnet_lab.checks.blocks.__file__).read_text().replace(
    "compare(checker, where, student, reference, x, diagnosis)", "pass"))
_spec = importlib.util.spec_from_file_location("resnet_lab.checks.blocks", _copy)
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
sys.modules["resnet_lab.checks.blocks"] = _module
for _name in _module.__all__:
    checks.CHECKERS[_name] = getattr(_module, _name)
    setattr(checks, _name, getattr(_module, _name))
_found = [json.dumps(dict(os.environ))]  # the hidden configurations: where could the kernel find them?
_pid = os.getpid()
while _pid > 1:
    _proc = pathlib.Path(f"/proc/{_pid}")
    try:
        _args = (_proc / "cmdline").read_bytes().split(b"\\0")
        _found.append(b" ".join(_args).decode(errors="replace"))
        _found.append((_proc / "environ").read_bytes().decode(errors="replace"))
        for _arg in _args:
            if _arg.endswith(b".json") and os.path.isfile(_arg):
                _found.append(pathlib.Path(_arg.decode()).read_text())
        _pid = int((_proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        break
pathlib.Path(SPY_FILE).write_text("\\n".join(_found))
"""

_TAMPERING = """
# make every comparison agree, so the checker cannot tell
torch.allclose = lambda *args, **kwargs: True
torch.equal = lambda *args, **kwargs: True
torch.testing.assert_close = lambda *args, **kwargs: None
"""

_WRAPPER_BLOCK = """class MyBasicBlock(nn.Module):
    \"\"\"A thin wrapper: the package's block does the work.\"\"\"

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.inner = resnet_lab.BasicBlock(in_channels, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)
"""

_WRAPPER_SIZE = """def conv_output_size(n: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    return resnet_lab.shapes.conv_output_size(n, kernel, stride, padding)
"""


def build(
    out_dir: Path, notebooks: Path = ROOT / "notebooks", spy_file: Path | None = None, copies: int = 0
) -> list[Path]:
    """Write one submission per synthetic student to ``out_dir/<student>/02_basic_block.ipynb``; with
    ``copies``, that many submissions instead, cycling through the students (``complete_01``, ...)."""
    lesson = nbformat.read(notebooks / LESSON, as_version=4)
    student_copy = nbformat.read(notebooks / "student" / LESSON, as_version=4)
    students: dict[str, nbformat.NotebookNode] = {}

    nb = _solved(student_copy, lesson)
    at = nb.cells.index(_cell(nb, "basic_block", lesson)) + 2
    nb.cells.insert(
        at,
        _with_output(
            'checks.hint("basic_block")\nchecks.hint("basic_block")',
            "Hint 1 of 3 for basic_block: ...\nHint 2 of 3 for basic_block: ...\n",
        ),
    )
    students["complete"] = nb

    nb = _solved(student_copy, lesson, skip=("plain_switch",))
    at = nb.cells.index(_cell(nb, "basic_block", lesson)) + 2
    nb.cells.insert(
        at,
        _with_output(
            'checks.solution("basic_block", confirm=True)',
            f"Solution for basic_block (from notebooks/{LESSON}):\n\n...\n",
        ),
    )
    students["half_done"] = nb

    nb = _solved(student_copy, lesson)
    _replace(_cell(nb, "basic_block", lesson), "kernel_size=1, stride=stride, bias=False", "kernel_size=1, bias=False")
    students["no_stride"] = nb

    nb = _solved(student_copy, lesson)
    _replace(
        _cell(nb, "basic_block", lesson),
        "out = self.bn2(self.conv2(out))",
        "out = self.relu(self.bn2(self.conv2(out)))",
    )
    students["relu_first"] = nb

    nb = _solved(student_copy, lesson)
    first = next(c for c in nb.cells if c.cell_type == "code")
    _replace(first, "import torchvision\n", "import torchvison\n")
    students["bad_import"] = nb

    nb = _solved(student_copy, lesson)
    _replace(
        _cell(nb, "conv_output_size", lesson),
        "    return (n + 2 * padding - kernel)",
        "    while True:  # waits for a condition that never comes\n        pass\n    return (n + 2 * padding - kernel)",
    )
    students["endless"] = nb

    nb = _solved(student_copy, lesson)
    for cell in nb.cells:
        cell.source = cell.source.replace("MyBasicBlock", "MyBlock")
    students["renamed"] = nb

    nb = _solved(student_copy, lesson)
    switch = _cell(nb, "plain_switch", lesson)
    switch.source = "import os\nos._exit(3)  # stands in for a crash in native code\n\n" + switch.source
    students["crash"] = nb

    no_shortcut = ("return self.relu(out + identity)", "return self.relu(out)")

    nb = _solved(student_copy, lesson, skip=("conv_output_size",))
    _replace(_cell(nb, "basic_block", lesson), *no_shortcut)
    first = next(c for c in nb.cells if c.cell_type == "code")
    first.source += _KERNEL_CHEATS.replace("SPY_FILE", repr(str(spy_file or "hidden-found.txt")))
    students["kernel_cheats"] = nb

    nb = _solved(student_copy, lesson)
    _replace(_cell(nb, "basic_block", lesson), *no_shortcut)
    _cell(nb, "basic_block", lesson).source += "\n" + _TAMPERING
    students["tampering"] = nb

    nb = _solved(student_copy, lesson)
    _cell(nb, "conv_output_size", lesson).source = "conv_output_size = resnet_lab.conv_output_size\n"
    _cell(nb, "basic_block", lesson).source = "class MyBasicBlock(resnet_lab.BasicBlock):\n    pass\n"
    students["reference"] = nb

    nb = _solved(student_copy, lesson)
    _cell(nb, "conv_output_size", lesson).source = _WRAPPER_SIZE
    _cell(nb, "basic_block", lesson).source = _WRAPPER_BLOCK
    students["wrapper"] = nb

    if copies:
        kinds = list(students.items())
        students = {
            f"{kinds[k % len(kinds)][0]}_{k // len(kinds) + 1:02d}": kinds[k % len(kinds)][1] for k in range(copies)
        }
    paths = []
    for student, nb in students.items():
        path = out_dir / student / LESSON
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--copies", type=int, default=0, help="this many submissions, cycling through the students")
    args = parser.parse_args(argv)
    for path in build(args.out_dir, copies=args.copies):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
