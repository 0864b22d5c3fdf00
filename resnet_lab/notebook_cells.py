"""Reading notebook cells as Python: a cell's source as one string, and its syntax tree.

Shared by the exercise finder (``checks.exercises``) and the grader's worker (``grade/worker.py``).
It imports only the standard library on purpose: the worker loads this file by its path, without
importing ``resnet_lab`` (and so torch), to start in a blink.
"""

from __future__ import annotations

import ast
from typing import Any


def cell_source(cell: Any) -> str:
    """A cell's source as one string (nbformat stores it as a string or as a list of lines)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def parse_cell(source: str) -> ast.Module | None:
    """The syntax tree of a code cell, IPython magics (``%...``) and shell lines (``!...``) blanked out;
    None if it is not valid Python (a student's half-written cell)."""
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n")]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None
