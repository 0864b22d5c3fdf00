"""The course's exercises, read from the lesson notebooks: one source for stubs, hints, solutions and grading.

In a lesson notebook (``notebooks/NN_*.ipynb``) an exercise is a code cell tagged ``exercise`` whose
solution sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION``; a ``# HINT:`` comment right
above BEGIN is the first hint (the student copy keeps it above its stub and raises it as the stub's
``NotImplementedError`` message). Hints teach before they tell: tier 1 names the idea in words, without
code (tests/test_hints.py checks it); the further tiers, a list of strings in the cell's metadata under
``hints``, give the structure, and the last may come close to code. The solution itself is only shown by
``checks.solution``. The next cell is tagged ``check`` and calls a checker, e.g.
``checks.bottleneck(MyBottleneck)``: the checker's name is the exercise's name.

    from resnet_lab.checks import exercises
    exercises.find("bottleneck").hints      # ('conv1 is 1x1 ...', 'no ReLU between bn3 and ...', ...)
"""

from __future__ import annotations

import ast
import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..notebook_cells import cell_source, parse_cell

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
HINT_RE = re.compile(r"^\s*#\s*HINT:\s*(?P<text>.*?)\s*$")
EXERCISE_TAG = "exercise"
CHECK_TAG = "check"
HINTS_KEY = "hints"
LESSON_PATTERN = "[0-9][0-9]_*.ipynb"

# The repository's notebooks folder (resnet_lab/checks/exercises.py -> repo root / notebooks), unless
# RESNET_LAB_NOTEBOOKS names another (e.g. when resnet_lab is installed as a wheel, away from the clone).
NOTEBOOKS = Path(os.environ.get("RESNET_LAB_NOTEBOOKS") or Path(__file__).resolve().parents[2] / "notebooks")


class ExerciseNotFound(LookupError):
    """No exercise of that name in the lesson notebooks."""


@dataclass(frozen=True)
class Exercise:
    """One exercise of a lesson notebook and the check cell that follows it."""

    name: str  # the checker's name, e.g. "bottleneck"
    lesson: str  # the lesson notebook's file name, e.g. "03_bottleneck_block.ipynb"
    target: str  # what the check cell passes to the checker, e.g. "MyBottleneck"
    defines: tuple[str, ...]  # top-level names the exercise cell defines
    cell_id: str | None
    check_cell_id: str | None
    check_kwargs: dict[str, Any] = field(default_factory=dict)  # literal keyword arguments of the check call
    hints: tuple[str, ...] = ()  # tier 1 (the # HINT: lines), then the metadata's hints
    source: str = ""  # the exercise cell with its solution, markers removed ("" in a student copy)

    @property
    def kind(self) -> str:
        """ "class" or "function": what the student writes."""
        return "class" if self.target[:1].isupper() else "function"


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def defined_names(source: str) -> tuple[str, ...]:
    """Top-level functions and classes a cell defines, in order."""
    tree = parse_cell(source)
    return tuple(
        node.name
        for node in (tree.body if tree else [])
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    )


def check_calls(source: str) -> list[tuple[str, str | None, dict[str, Any]]]:
    """``checks.<name>(<target>, key=literal, ...)`` calls in a cell: (name, target, literal keyword arguments)."""
    tree = parse_cell(source)
    calls = []
    for node in ast.walk(tree) if tree else []:
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "checks"
        ):
            target = node.args[0].id if node.args and isinstance(node.args[0], ast.Name) else None
            kwargs = {}
            for kw in node.keywords:
                try:
                    kwargs[kw.arg] = ast.literal_eval(kw.value)
                except ValueError:
                    continue
            calls.append((node.func.attr, target, kwargs))
    return calls


def solution_text(source: str) -> str:
    """The exercise cell with its solution in place: marker lines and ``# HINT:`` lines removed."""
    lines = source.split("\n")
    keep = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped in (BEGIN, END):
            continue
        if HINT_RE.match(line) and i + 1 < len(lines) and lines[i + 1].strip() == BEGIN:
            continue
        keep.append(line)
    return "\n".join(keep)


def first_tier(source: str) -> str:
    """The ``# HINT:`` lines of an exercise cell, joined: the hint the stub's message already shows."""
    return " / ".join(m.group("text") for m in map(HINT_RE.match, source.split("\n")) if m)


def read_exercises(nb: dict[str, Any], lesson: str) -> list[Exercise]:
    """Each exercise cell of a notebook (lesson or student copy) paired with the check cell after it."""
    cells = nb.get("cells", [])
    found = []
    for index, cell in enumerate(cells):
        if cell.get("cell_type") != "code" or EXERCISE_TAG not in _tags(cell):
            continue
        source = cell_source(cell)
        defines = defined_names(source)
        check = next((c for c in cells[index + 1 :] if c.get("cell_type") == "code" and CHECK_TAG in _tags(c)), None)
        calls = check_calls(cell_source(check)) if check is not None else []
        calls = [c for c in calls if c[1] in defines] or calls
        if not calls:
            continue
        name, target, kwargs = calls[0]
        extra = cell.get("metadata", {}).get(HINTS_KEY, [])
        tier1 = first_tier(source)
        has_solution = BEGIN in source
        found.append(
            Exercise(
                name=name,
                lesson=lesson,
                target=target or (defines[0] if defines else name),
                defines=defines,
                cell_id=cell.get("id"),
                check_cell_id=check.get("id") if check is not None else None,
                check_kwargs=kwargs,
                hints=tuple(h for h in (tier1, *extra) if h),
                source=solution_text(source) if has_solution else "",
            )
        )
    return found


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=8)
def _catalogue(notebooks_dir: str) -> tuple[Exercise, ...]:
    root = Path(notebooks_dir)
    lessons = {p.name: p for p in sorted(root.glob(LESSON_PATTERN))}
    # Student copies fill in lessons that were removed from a hand-out (no solutions there).
    copies = {p.name: p for p in sorted((root / "student").glob(LESSON_PATTERN))}
    found: list[Exercise] = []
    for name in sorted(set(lessons) | set(copies)):
        found += read_exercises(_read_json(lessons.get(name) or copies[name]), name)
    return tuple(found)


def all_exercises(notebooks_dir: Path | str | None = None) -> tuple[Exercise, ...]:
    """Every exercise of the course, in lesson order (read once per folder and cached)."""
    return _catalogue(str(Path(notebooks_dir or NOTEBOOKS).resolve()))


def for_lesson(lesson: str, notebooks_dir: Path | str | None = None) -> list[Exercise]:
    """The exercises of one lesson, e.g. ``for_lesson("02_basic_block.ipynb")``."""
    return [e for e in all_exercises(notebooks_dir) if e.lesson == lesson]


def find(name: str, notebooks_dir: Path | str | None = None) -> Exercise:
    """An exercise by its checker's name ("bottleneck") or by what the student writes ("MyBottleneck")."""
    exercises = all_exercises(notebooks_dir)
    for exercise in exercises:
        if name in (exercise.name, exercise.target):
            return exercise
    known = ", ".join(f'"{e.name}"' for e in exercises) or "none found"
    where = Path(notebooks_dir or NOTEBOOKS)
    raise ExerciseNotFound(f"no exercise called {name!r} in {where}; the exercises are: {known}")
