"""Hints in tiers and a solution reveal, for a student stuck on an exercise.

    checks.hint("bottleneck")            # the first hint, then the next one on each call
    checks.hint("bottleneck", level=2)   # a given tier
    checks.solution("bottleneck")        # asks you to type "yes", then prints the reference solution

Both read the lesson notebooks the student copies are generated from (see
:mod:`resnet_lab.checks.exercises`), so there is no second copy of a hint or a solution to keep in
sync. What was shown is remembered in the kernel (:func:`usage`) and printed in a fixed form
("Hint 2 of 3 for bottleneck", "Solution for bottleneck") that the grader finds in a saved notebook.
"""

from __future__ import annotations

from typing import Any

from .exercises import Exercise, ExerciseNotFound, find

__all__ = ["hint", "solution", "usage"]

_HINTS_SHOWN: dict[str, int] = {}
_SOLUTIONS_SHOWN: set[str] = set()
CONFIRM_WORDS = ("yes", "y")


def _exercise(name: str) -> Exercise:
    try:
        return find(name)
    except ExerciseNotFound as exc:
        raise ValueError(str(exc)) from None


def hint(name: str, level: int | None = None) -> None:
    """Print a hint for exercise ``name``: the next tier on each call, or tier ``level`` (1 = the stub's hint)."""
    exercise = _exercise(name)
    tiers = exercise.hints
    if not tiers:
        print(f"No hints are written for {exercise.name}. checks.solution({exercise.name!r}) shows the solution.")
        return
    shown = _HINTS_SHOWN.get(exercise.name, 0)
    if level is None:
        level = min(shown + 1, len(tiers))
    if not 1 <= level <= len(tiers):
        raise ValueError(f"{exercise.name} has hints 1 to {len(tiers)}; got level={level}")
    _HINTS_SHOWN[exercise.name] = max(shown, level)
    print(f"Hint {level} of {len(tiers)} for {exercise.name}: {tiers[level - 1]}")
    if level == len(tiers):
        print(f"That was the last hint. checks.solution({exercise.name!r}) shows the reference solution.")
    else:
        print(f"Still stuck? checks.hint({exercise.name!r}) again gives hint {level + 1}.")


def _ask(exercise: Exercise) -> str | None:
    """The student's typed answer, or None when this kernel cannot ask (no stdin, e.g. when grading)."""
    try:
        return input(f"This shows the finished code of {exercise.name}. Type yes to see it: ")
    except (EOFError, NotImplementedError, OSError):  # IPython's StdinNotImplementedError is a NotImplementedError
        return None


def solution(name: str, confirm: bool | str | None = None) -> None:
    """Print the reference solution of exercise ``name`` after the student confirms that they want it.

    Without ``confirm`` it asks (type yes); ``confirm=True`` (or "yes") skips the question, for
    places where typing is not possible.
    """
    exercise = _exercise(name)
    answer = confirm if confirm is not None else _ask(exercise)
    if answer is None:
        print(f"To see the solution of {exercise.name}, run checks.solution({exercise.name!r}, confirm=True).")
        return
    if answer is not True and str(answer).strip().lower() not in CONFIRM_WORDS:
        print(f"Not shown. Try checks.hint({exercise.name!r}) first, or answer yes to see the solution.")
        return
    if not exercise.source:
        print(
            f"The solution of {exercise.name} is not on this machine: the lesson notebook "
            f"notebooks/{exercise.lesson} was removed from this copy of the course. Ask your teacher."
        )
        return
    _SOLUTIONS_SHOWN.add(exercise.name)
    print(f"Solution for {exercise.name} (from notebooks/{exercise.lesson}):\n")
    print(exercise.source)


def usage() -> dict[str, dict[str, Any]]:
    """What this kernel has shown: ``{exercise: {"hints": highest tier shown, "solution": bool}}``."""
    names = set(_HINTS_SHOWN) | _SOLUTIONS_SHOWN
    return {n: {"hints": _HINTS_SHOWN.get(n, 0), "solution": n in _SOLUTIONS_SHOWN} for n in sorted(names)}
