"""checks.hint / checks.solution: tiers and solutions come from the lesson notebooks; the success line is
honest; no failure message hands out a line of the solution."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
import torch

from resnet_lab import checks
from resnet_lab.checks import exercises, hints

ROOT = Path(__file__).resolve().parent.parent
LESSONS = ROOT / "notebooks"
EXPECTED = [
    "residual_unit",
    "conv_output_size",
    "basic_block",
    "plain_switch",
    "bottleneck",
    "stage",
    "imagenet_resnet",
    "cifar_net",
    "preact_block",
    "grouped_bottleneck",
    "squeeze_excitation",
    "se_block",
]


@pytest.fixture(autouse=True)
def fresh_usage(monkeypatch):
    monkeypatch.setattr(hints, "_HINTS_SHOWN", {})
    monkeypatch.setattr(hints, "_SOLUTIONS_SHOWN", set())


def test_every_exercise_is_found_with_its_checker_and_at_least_three_tiers():
    found = exercises.all_exercises(LESSONS)
    assert [e.name for e in found] == EXPECTED
    for e in found:
        assert e.name in checks.CHECKERS
        assert e.target in e.defines
        assert len(e.hints) >= 3, e.name
        assert "### BEGIN" not in e.source and "# HINT:" not in e.source and e.source.strip()
    assert exercises.find("MyBottleneck").name == "bottleneck"
    assert exercises.find("imagenet_resnet").check_kwargs == {"depth": 50}


def test_every_stub_has_a_hint():
    """Issue 14: each BEGIN..END block (so each stub) has a # HINT: line right above it."""
    for path in sorted(LESSONS.glob("0*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if "exercise" in cell.metadata.get("tags", []):
                lines = cell.source.split("\n")
                for i, line in enumerate(lines):
                    if line.strip() == exercises.BEGIN:
                        assert exercises.HINT_RE.match(lines[i - 1]), f"{path.name} {cell.id}: stub without a hint"


def test_hint_gives_the_next_tier_each_call_then_stays_on_the_last(capsys):
    tiers = exercises.find("bottleneck").hints
    for level in range(1, len(tiers) + 2):
        checks.hint("bottleneck")
        out = capsys.readouterr().out
        shown = min(level, len(tiers))
        assert out.startswith(f"Hint {shown} of {len(tiers)} for bottleneck: {tiers[shown - 1]}")
    assert "checks.solution('bottleneck')" in out
    checks.hint("MyBottleneck", level=1)
    assert capsys.readouterr().out.startswith(f"Hint 1 of {len(tiers)} for bottleneck:")
    assert hints.usage() == {"bottleneck": {"hints": len(tiers), "solution": False}}


def test_hint_rejects_unknown_names_and_levels():
    with pytest.raises(ValueError, match="no exercise called 'botleneck'.*\"bottleneck\""):
        checks.hint("botleneck")
    with pytest.raises(ValueError, match="has hints 1 to 3; got level=7"):
        checks.hint("stage", level=7)


def test_solution_asks_first_and_prints_the_lesson_solution_only_after_yes(capsys, monkeypatch):
    answers = iter(["no", "yes"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    checks.solution("conv_output_size")
    assert capsys.readouterr().out.startswith("Not shown.")
    checks.solution("conv_output_size")
    out = capsys.readouterr().out
    assert out.startswith("Solution for conv_output_size (from notebooks/02_basic_block.ipynb):")
    assert "return (n + 2 * padding - kernel) // stride + 1" in out and "SOLUTION" not in out
    assert hints.usage()["conv_output_size"]["solution"] is True


def test_solution_without_a_terminal_says_how_to_confirm(capsys, monkeypatch):
    def no_stdin(prompt):
        raise EOFError

    monkeypatch.setattr("builtins.input", no_stdin)
    checks.solution("stage")
    assert "checks.solution('stage', confirm=True)" in capsys.readouterr().out
    checks.solution("stage", confirm=True)
    assert "in_channels = planes * block.expansion" in capsys.readouterr().out


def test_in_a_hand_out_without_lessons_hints_still_work_and_the_solution_is_not_there(tmp_path):
    (tmp_path / "student").mkdir()
    shutil.copy(LESSONS / "student" / "03_bottleneck_block.ipynb", tmp_path / "student")
    exercise = exercises.find("bottleneck", tmp_path)
    assert exercise.hints == exercises.find("bottleneck", LESSONS).hints and exercise.source == ""


def test_solution_from_a_student_copy_only_is_refused(monkeypatch, tmp_path, capsys):
    (tmp_path / "student").mkdir()
    shutil.copy(LESSONS / "student" / "04_stages.ipynb", tmp_path / "student")
    monkeypatch.setattr(exercises, "NOTEBOOKS", tmp_path)
    checks.solution("stage", confirm=True)
    assert "is not on this machine" in capsys.readouterr().out


def _lesson_10_setup() -> str:
    """Notebook 10's first two code cells (imports; the blocks Basic and Bottle the exercises build on)."""
    cells = [
        c.source for c in nbformat.read(LESSONS / "10_resnet_family.ipynb", as_version=4).cells if c.cell_type == "code"
    ]
    return "\n".join(line for line in "\n".join(cells[:2]).split("\n") if not line.startswith("%"))


@pytest.mark.parametrize("name", [n for n in EXPECTED if n != "imagenet_resnet"])
def test_every_exercise_checker_says_these_checks_passed(name, capsys):
    exercise = exercises.find(name)
    namespace: dict = {}
    prelude = (
        "import torch\nfrom torch import nn\nfrom resnet_lab import BasicBlock, Bottleneck, IMAGENET_CONFIGS, "
        "make_stage\n"
    )
    before = exercises.find("basic_block").source + "\n" if name == "plain_switch" else ""  # it subclasses MyBasicBlock
    if exercise.lesson.startswith("10_"):  # notebook 10's exercises build on its set-up cells (Basic, Bottle, F)
        before = (
            _lesson_10_setup()
            + ("\n" + exercises.find("squeeze_excitation").source if name == "se_block" else "")
            + "\n"
        )
    exec(prelude + "\n" + before + exercise.source, namespace)  # noqa: S102 - the course's own solution
    capsys.readouterr()  # what the set-up printed
    checks.CHECKERS[name](namespace[exercise.target])
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"✓ {name}: ") and line.endswith(": these checks passed"), line


def _mutants(source: str) -> list[str]:
    """Plausible wrong versions of a solution: each drops or changes one thing."""
    swaps = [
        ("stride=stride", "stride=1"),
        ("out + identity", "out"),
        ("padding=1", "padding=0"),
        ("// stride + 1", "// stride"),
        ("self.relu(out + identity)", "self.relu(out) + identity"),
        ("stride if i == 0 else 1", "stride"),
        ("in_channels = planes * block.expansion", "pass"),
        ("kernel_size=3, stride=1, padding=1", "kernel_size=1, stride=1, padding=1"),
        ('shortcut="A"', 'shortcut="B"'),
        ("out + x", "out"),
    ]
    return [source.replace(old, new, 1) for old, new in swaps if old in source]


@pytest.mark.parametrize("name", ["residual_unit", "conv_output_size", "basic_block", "bottleneck", "stage"])
def test_failure_messages_never_print_a_line_of_the_solution(name):
    exercise = exercises.find(name)
    solution_lines = {
        line.strip()
        for line in exercise.source.split("\n")
        if len(line.strip()) >= 24 and not line.strip().startswith(("def ", "class ", '"""', "#"))
    }
    prelude = "import torch\nfrom torch import nn\nfrom resnet_lab import BasicBlock, Bottleneck\n"
    failures = 0
    for mutant in _mutants(exercise.source):
        namespace: dict = {}
        exec(prelude + mutant, namespace)  # noqa: S102
        try:
            checks.CHECKERS[name](namespace[exercise.target])
        except AssertionError as exc:
            failures += 1
            leaked = [line for line in solution_lines if line in str(exc)]
            assert not leaked, f"{name}: the message quotes the solution: {leaked}"
    assert failures >= 1, f"no mutant of {name} failed: the test would prove nothing"


def test_grading_finds_hint_and_solution_lines_in_saved_outputs():
    from resnet_lab.grade.worker import stored_usage

    nb = {
        "cells": [
            {
                "cell_type": "code",
                "outputs": [
                    {"output_type": "stream", "text": ["Hint 1 of 3 for stage: a\n", "Hint 2 of 3 for stage: b\n"]},
                    {
                        "output_type": "stream",
                        "text": "Solution for cifar_net (from notebooks/06_cifar_resnets.ipynb):\n",
                    },
                ],
            }
        ]
    }
    assert stored_usage(nb) == {"stage": {"hints": 2, "solution": False}, "cifar_net": {"hints": 0, "solution": True}}
    assert json.dumps(stored_usage({"cells": []})) == "{}"


def test_hints_do_not_touch_torch_state():
    before = torch.random.get_rng_state()
    checks.hint("stage")
    checks.solution("stage", confirm=True)
    assert torch.equal(before, torch.random.get_rng_state())
