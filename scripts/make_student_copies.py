#!/usr/bin/env python
"""Generate the student copies of the lesson notebooks: solutions replaced by stubs.

    python scripts/make_student_copies.py           # write notebooks/student/*.ipynb
    python scripts/make_student_copies.py --check   # exit 1 if a copy is missing, stale or extra

The convention (in notebooks/NN_*.ipynb):

* An exercise is a code cell tagged ``exercise``. Inside it the solution sits between the lines
  ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (each alone on its line, indented like the code).
  A comment line ``# HINT: ...`` right before BEGIN becomes the stub's message.
* The next cell is tagged ``check`` and calls a checker from ``resnet_lab.checks``.

In the copy, each BEGIN..END block becomes ``raise NotImplementedError("<hint>")`` at the same
indentation (the HINT comment stays), exercise and check cells get the tag ``raises-exception``
(nbval then accepts the error an unfinished exercise raises), and so does any other cell that uses
a name an exercise cell defines (say, a table comparing the student's block with the package's),
since it can only run once the exercise is done. Relative links in markdown cells that leave the folder
(``../docs/glossary.md``, ``../data/...``: any target starting with ``../``) get one more ``../``, because
the copy sits one folder deeper. Every output is cleared and every
execution count is None. nbval does not compare the outputs of cells whose execution count is None,
so it runs a copy top to bottom and only fails on an error outside exercise and check cells.
Only notebooks that contain exercises get a copy: notebooks/student/<same name>.ipynb.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from pathlib import Path

import nbformat

# The exercise-marker convention is defined once, in the package that also reads hints and solutions from it.
from resnet_lab.checks.exercises import BEGIN, CHECK_TAG, END, EXERCISE_TAG, HINT_RE, LESSON_PATTERN

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
STUDENT_DIR = NOTEBOOKS / "student"
RAISES_TAG = "raises-exception"
DEFAULT_MESSAGE = "exercise not done yet: replace this line with your code"
NOTE_ID = "student-copy-note"
# A relative link target that leaves the notebooks folder: markdown ``[text](../x)``, ``[text]: ../x``
# (a reference definition) and HTML ``src="../x"`` / ``href='../x'``.
_UP_LINK = re.compile(
    r"""(?P<lead>\]\(\s*<?|^[ \t]{0,3}\[[^\]\n]+\]:[ \t]*<?|\b(?:src|href)\s*=\s*["'])(?=\.\./)""",
    re.MULTILINE,
)


class MarkerError(ValueError):
    """Solution markers that cannot be turned into a stub (unbalanced, nested, or outside an exercise)."""


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def stub_source(source: str, where: str = "cell") -> tuple[str, int]:
    """Replace every BEGIN..END block of ``source`` by a ``raise NotImplementedError``; return (source, blocks)."""
    lines = source.split("\n")
    out: list[str] = []
    begin_line: int | None = None
    indent = ""
    hint: str | None = None
    blocks = 0
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if begin_line is not None:
                raise MarkerError(f"{where}, line {number}: '{BEGIN}' again before the '{END}' of line {begin_line}")
            begin_line = number
            indent = line[: len(line) - len(line.lstrip())]
            previous = out[-1] if out else ""
            match = HINT_RE.match(previous)
            hint = match.group("text") if match else None
            continue
        if stripped == END:
            if begin_line is None:
                raise MarkerError(f"{where}, line {number}: '{END}' without a '{BEGIN}' before it")
            end_indent = line[: len(line) - len(line.lstrip())]
            if end_indent != indent:
                raise MarkerError(
                    f"{where}, line {number}: '{END}' is indented differently from its '{BEGIN}' (line {begin_line})"
                )
            message = json.dumps(hint or DEFAULT_MESSAGE, ensure_ascii=False)
            out.append(f"{indent}raise NotImplementedError({message})")
            begin_line, hint = None, None
            blocks += 1
            continue
        if "SOLUTION" in stripped.upper() and stripped.startswith("###"):
            raise MarkerError(f"{where}, line {number}: unrecognised marker {stripped!r}; use '{BEGIN}' / '{END}'")
        if begin_line is None:
            out.append(line)
    if begin_line is not None:
        raise MarkerError(f"{where}, line {begin_line}: '{BEGIN}' has no matching '{END}'")
    return "\n".join(out), blocks


def deeper_links(markdown: str) -> str:
    """``markdown`` with every relative link starting with ``../`` given one more ``../`` (for notebooks/student/)."""
    return _UP_LINK.sub(lambda m: m.group("lead") + "../", markdown)


def _parse(source: str) -> ast.Module | None:
    """The cell's AST, with IPython magics and shell lines blanked out; None if it doesn't parse."""
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n")]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def defined_names(source: str) -> set[str]:
    """Top-level names an exercise cell defines (functions, classes, assignments)."""
    tree = _parse(source)
    names: set[str] = set()
    for node in tree.body if tree else []:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def used_names(source: str) -> set[str]:
    tree = _parse(source)
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} if tree else set()


def has_markers(source: str) -> bool:
    return any(line.strip().startswith("###") and "SOLUTION" in line.upper() for line in source.split("\n"))


def is_lesson_with_exercises(nb: nbformat.NotebookNode) -> bool:
    return any(c.cell_type == "code" and EXERCISE_TAG in _tags(c) for c in nb.cells)


def checker_calls(source: str) -> list[str]:
    """Names of the checkers a check cell calls (``checks.basic_block(...)`` -> ``basic_block``)."""
    tree = _parse(source)
    return [
        n.func.attr
        for n in (ast.walk(tree) if tree else [])
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id == "checks"
    ]


def _place(cells: list[nbformat.NotebookNode], index: int) -> str:
    """Where a cell is, for a reader: the first words of the markdown cell right above it."""
    for cell in reversed(cells[:index]):
        if cell.cell_type == "markdown" and cell.source.strip():
            first = cell.source.strip().split("\n", 1)[0].lstrip("#").strip().replace("**", "")
            words = first.split()
            text = " ".join(words[:8]) + (" ..." if len(words) > 8 else "")
            return f"the code cell after \u201c{text}\u201d"
    return f"code cell {index}"


def student_note(name: str, checkers: list[str], uses_yours: list[str]) -> str:
    """The note at the top of a student copy: how to work, where help is, and exactly which cells use your code."""
    calls = ", ".join(f'`"{c}"`' for c in checkers) or "the name in the check cell"
    if uses_yours:
        yours = (
            "Besides the check cells, these cells use your code and raise an error until its exercise is "
            "done: " + "; ".join(uses_yours) + ". Every other cell uses the finished versions from "
            "`resnet_lab`, so you can go on even if an exercise is not done yet."
        )
    else:
        yours = (
            "Only the check cells use your code; every other cell uses the finished versions from "
            "`resnet_lab`, so you can go on even if an exercise is not done yet."
        )
    return (
        "**Student copy.** Fill in each cell that raises `NotImplementedError` (the `# HINT:` line above it "
        "helps), run it, then run the check cell below it: it prints what it compared and \u201cthese checks "
        "passed\u201d, or tells you what is wrong. Stuck? `checks.hint(name)` gives one more hint each time you "
        "call it, and `checks.solution(name)` shows the reference solution once you confirm; the names here: "
        f"{calls}.\n\n{yours} Terms in English and Chinese: [glossary](../../docs/glossary.md).\n\n"
        f"*Generated from `notebooks/{name}` by `scripts/make_student_copies.py`; don't edit this copy, "
        "edit the source and regenerate.*"
    )


def make_student_copy(nb: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """The student copy of ``nb`` (not modified): stubs, tags, no outputs, no execution counts."""
    copy = nbformat.from_dict(json.loads(json.dumps(nb)))
    exercises = 0
    exercise_names: set[str] = set()
    checker_names: list[str] = []
    uses_yours: list[str] = []
    for index, cell in enumerate(copy.cells):
        where = f"{name}, cell {index}"
        tags = _tags(cell)
        if cell.cell_type != "code":
            if has_markers(cell.source):
                raise MarkerError(
                    f"{where}: solution markers in a {cell.cell_type} cell; only code cells tagged "
                    f"'{EXERCISE_TAG}' may contain them"
                )
            if cell.cell_type == "markdown":
                cell.source = deeper_links(cell.source)
            continue
        if EXERCISE_TAG in tags:
            exercise_names |= defined_names(cell.source)
            cell.source, blocks = stub_source(cell.source, where)
            if blocks == 0:
                raise MarkerError(f"{where}: tagged '{EXERCISE_TAG}' but has no '{BEGIN}' ... '{END}' block")
            exercises += 1
        elif has_markers(cell.source):
            raise MarkerError(
                f"{where}: solution markers in a cell without the '{EXERCISE_TAG}' tag; tag it or remove "
                "the markers (the solution would be handed out)"
            )
        uses_exercise = EXERCISE_TAG not in tags and bool(used_names(cell.source) & exercise_names)
        if CHECK_TAG in tags:
            checker_names += [n for n in checker_calls(cell.source) if n not in checker_names]
        elif uses_exercise:
            uses_yours.append(_place(copy.cells, index))
        if (EXERCISE_TAG in tags or CHECK_TAG in tags or uses_exercise) and RAISES_TAG not in tags:
            cell.metadata["tags"] = tags + [RAISES_TAG]
        cell.outputs = []
        cell.execution_count = None
        for key in ("execution", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
    if exercises:
        note = nbformat.v4.new_markdown_cell(student_note(name, checker_names, uses_yours))
        if copy.get("nbformat_minor", 0) >= 5:
            note["id"] = NOTE_ID
        else:
            note.pop("id", None)
        copy.cells.insert(0, note)
    nbformat.validate(copy)
    return copy


def render(nb: nbformat.NotebookNode) -> str:
    """The exact text written to disk (nbformat's JSON layout with a final newline)."""
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def lesson_notebooks(notebooks_dir: Path = NOTEBOOKS) -> list[Path]:
    return sorted(notebooks_dir.glob(LESSON_PATTERN))


def expected_copies(notebooks_dir: Path = NOTEBOOKS) -> dict[str, str]:
    """{file name: rendered student copy} for every lesson notebook with exercises."""
    copies = {}
    for path in lesson_notebooks(notebooks_dir):
        nb = nbformat.read(path, as_version=4)
        if is_lesson_with_exercises(nb):
            copies[path.name] = render(make_student_copy(nb, path.name))
        else:
            for index, cell in enumerate(nb.cells):
                if has_markers(cell.source):
                    raise MarkerError(
                        f"{path.name}, cell {index}: solution markers in a notebook without exercise "
                        "cells; tag the cell 'exercise'"
                    )
    return copies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report copies that are missing, stale or extra")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOKS, help="folder of the lesson notebooks")
    args = parser.parse_args(argv)
    student_dir = args.notebooks / "student"
    try:
        copies = expected_copies(args.notebooks)
    except MarkerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    existing = {p.name for p in student_dir.glob("*.ipynb")} if student_dir.exists() else set()
    stale = sorted(
        n for n, text in copies.items() if n not in existing or (student_dir / n).read_text(encoding="utf-8") != text
    )
    extra = sorted(existing - set(copies))
    if args.check:
        for name in stale:
            print(f"out of date or missing: {student_dir / name}")
        for name in extra:
            print(f"no source with exercises: {student_dir / name}")
        if stale or extra:
            print("run: python scripts/make_student_copies.py")
            return 1
        print(f"{len(copies)} student copies are in sync")
        return 0
    student_dir.mkdir(parents=True, exist_ok=True)
    for name, text in copies.items():
        (student_dir / name).write_text(text, encoding="utf-8")
    for name in extra:
        (student_dir / name).unlink()
        print(f"removed {student_dir / name} (its source has no exercises any more)")
    print(f"wrote {len(copies)} student copies to {student_dir}" + (f" ({len(stale)} changed)" if stale else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
