#!/usr/bin/env python
"""Build a synthetic class of submissions from a student copy, for testing the grader and for docs/.

    python scripts/make_synthetic_class.py OUT_DIR            # one folder per student in OUT_DIR
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


def build(out_dir: Path, notebooks: Path = ROOT / "notebooks") -> list[Path]:
    """Write one submission per synthetic student to ``out_dir/<student>/02_basic_block.ipynb``."""
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
    args = parser.parse_args(argv)
    for path in build(args.out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
