"""checks.hint / checks.solution: tiers and solutions come from the lesson notebooks; the success line is
honest; no failure message hands out a line of the solution."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest
import torch

from resnet_lab import checks
from resnet_lab.checks import exercises, hints

ROOT = Path(__file__).resolve().parent.parent
LESSONS = ROOT / "notebooks"
# The exercises of the lessons this file pins, in lesson order (other lessons' exercises are found too and
# must meet the same rules: a checker, three tiers, a tier 1 without code).
EXPECTED_BY_LESSON = {
    "01_residual_unit.ipynb": ["residual_unit", "plain_unit"],
    "02_basic_block.ipynb": ["conv_output_size", "basic_block", "plain_switch"],
    "03_bottleneck_block.ipynb": ["bottleneck", "bottleneck_parameters"],
    "04_stages.ipynb": ["stage", "stage_map_sizes"],
    "05_full_networks.ipynb": ["imagenet_resnet", "classifier_head"],
    "06_cifar_resnets.ipynb": ["zero_pad_shortcut", "cifar_net"],
    "09_bug_hunt.ipynb": ["fix_bottleneck", "fix_basic_block", "fix_resnet50"],
    "10_resnet_family.ipynb": ["preact_block", "grouped_bottleneck", "squeeze_excitation", "se_block"],
}
EXPECTED = [name for names in EXPECTED_BY_LESSON.values() for name in names]
SLOW = {"imagenet_resnet", "fix_resnet50"}  # a whole ResNet-50: run by the lessons' own nbval instead


@pytest.fixture(autouse=True)
def fresh_usage(monkeypatch):
    monkeypatch.setattr(hints, "_HINTS_SHOWN", {})
    monkeypatch.setattr(hints, "_SOLUTIONS_SHOWN", set())


def test_every_exercise_is_found_with_its_checker_and_at_least_three_tiers():
    found = exercises.all_exercises(LESSONS)
    for lesson, names in EXPECTED_BY_LESSON.items():
        assert [e.name for e in found if e.lesson == lesson] == names, lesson
    assert len(found) >= 24 and len({e.name for e in found}) == len(found)
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


def _lesson_09_setup(exercise: exercises.Exercise) -> str:
    """Notebook 09's helper cell and the tutorial code cell right before the exercise (the class it subclasses)."""
    cells = nbformat.read(LESSONS / "09_bug_hunt.ipynb", as_version=4).cells
    index = next(i for i, c in enumerate(cells) if c.get("id") == exercise.cell_id)
    helpers = next(c.source for c in cells if c.cell_type == "code" and "def show_error" in c.source)
    tutorial = next(c.source for c in reversed(cells[:index]) if c.cell_type == "code")
    return helpers + "\n" + tutorial + "\n"


@pytest.mark.parametrize("name", [n for n in EXPECTED if n not in SLOW])
def test_every_exercise_checker_says_these_checks_passed(name, capsys):
    exercise = exercises.find(name)
    namespace: dict = {}
    prelude = (
        "import torch\nfrom torch import nn\nimport resnet_lab\nfrom resnet_lab import BasicBlock, Bottleneck, "
        "IMAGENET_CONFIGS, ResNet, count_parameters, make_stage\n"
    )
    before = exercises.find("basic_block").source + "\n" if name == "plain_switch" else ""  # it subclasses MyBasicBlock
    if exercise.lesson.startswith("09_"):  # the bug hunt's exercises subclass the tutorial code above them
        before = _lesson_09_setup(exercise)
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


# ----------------------------------------------------------------------------------------
# Tier 1 names the idea, never the code (issue 20)
# ----------------------------------------------------------------------------------------

_CALL = re.compile(r"\b[A-Za-z_][\w.]*\(")  # nn.Conv2d(, torch.flatten(, F(
_ASSIGNMENT = re.compile(r"(?<![=!<>])=(?!=)|\+=|-=")  # out = ..., kernel_size=3
_OPERATOR_CHAIN = re.compile(r"[\w)\]]\s*(//|\*\*|[+*/%])\s*[\w(]|[\w)\]]\s+-\s+[\w(]")  # planes * 4, n - k
_ATTRIBUTE_CHAIN = re.compile(r"\b[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")  # self.bn1, block.expansion
_PROSE_ABBREVIATIONS = {"e.g", "i.e"}


def code_in_tier_one(hint: str, solution: str) -> list[str]:
    """What in a tier-1 hint is code: calls, assignments, operator chains, attribute chains, the solution's
    variable and layer names (``in_channels``, ``bn3``) and fragments of its lines."""
    found = [m.group(0) for m in _CALL.finditer(hint)]
    found += [f"assignment {hint[max(0, m.start() - 12) : m.end() + 12]!r}" for m in _ASSIGNMENT.finditer(hint)]
    found += [f"operator chain {m.group(0)!r}" for m in _OPERATOR_CHAIN.finditer(hint)]
    found += [m.group(0) for m in _ATTRIBUTE_CHAIN.finditer(hint) if m.group(0).lower() not in _PROSE_ABBREVIATIONS]
    identifiers = set(re.findall(r"[A-Za-z_]\w*", "\n".join(line.split("#")[0] for line in solution.split("\n"))))
    found += [
        f"the solution's name {token!r}"
        for token in re.findall(r"\b(?:[A-Za-z]+_\w*|[a-z]+\d+)\b", hint)  # in_channels, bn3, conv1
        if token in identifiers
    ]
    code_lines = [line.strip() for line in solution.split("\n") if line.strip() and not line.strip().startswith("#")]
    words = hint.split()
    for n in range(len(words) - 2):
        fragment = " ".join(words[n : n + 3])
        if any(c in fragment for c in "(=[.") and any(fragment in line for line in code_lines):
            found.append(f"solution fragment {fragment!r}")
    return found


def _tier_one_hints(path: Path) -> list[tuple[str, str, str]]:
    """(cell id, hint, solution) for every # HINT: line above a BEGIN marker, and every stub's message."""
    found = []
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code" or "exercise" not in cell.metadata.get("tags", []):
            continue
        solution = exercises.solution_text(cell.source)
        for line in cell.source.split("\n"):
            match = exercises.HINT_RE.match(line)
            if match:
                found.append((cell.get("id"), match.group("text"), solution))
    return found


@pytest.mark.parametrize(
    ("hint", "why"),
    [
        ("self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)", "nn.Conv2d("),
        ("after each block, the next block's in_channels is planes * block.expansion", "operator chain"),
        ("n = (depth - 2) // 6; stages (planes, stride)", "assignment"),
        ("the projection reads bn1's input: use self.bn1", "self.bn1"),
        ("Python's // is floor division", "operator chain"),
        ("no ReLU between bn3 and the addition", "'bn3'"),
    ],
)
def test_the_tier_one_rule_catches_code(hint, why):
    solution = "out = self.bn3(self.conv3(out))"
    assert any(why in problem for problem in code_in_tier_one(hint, solution)), code_in_tier_one(hint, solution)


def test_no_tier_one_hint_of_any_lesson_contains_code():
    """Every lesson, including exercises added later: the stub's # HINT: line (also the NotImplementedError
    message of the student copy) names the idea without code from the solution."""
    problems = []
    paths = sorted(LESSONS.glob(exercises.LESSON_PATTERN))
    for path in paths:
        for cell_id, hint, solution in _tier_one_hints(path):
            found = code_in_tier_one(hint, solution)
            if found:
                problems.append(f"{path.name} {cell_id}: {hint!r} contains code: {found}")
    assert sum(len(_tier_one_hints(p)) for p in paths) >= 24
    assert not problems, "\n".join(problems)


def test_student_copies_raise_the_tier_one_hint():
    """The NotImplementedError of each stub says exactly its # HINT: line, nothing more."""
    for path in sorted((LESSONS / "student").glob(exercises.LESSON_PATTERN)):
        for cell in nbformat.read(path, as_version=4).cells:
            if "exercise" not in cell.metadata.get("tags", []):
                continue
            lines = cell.source.split("\n")
            for i, line in enumerate(lines):
                if "raise NotImplementedError(" in line:
                    hint = exercises.HINT_RE.match(lines[i - 1])
                    assert hint, f"{path.name} {cell.get('id')}: a stub without a # HINT: line above it"
                    assert (
                        line.strip()
                        == f"raise NotImplementedError({json.dumps(hint.group('text'), ensure_ascii=False)})"
                    )
