"""Every measured figure a lesson's prose quotes is printed by the notebook, stored in a record
under data/runs/, or on the reviewed list of paper and torchvision figures (tests/prose_figures.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prose_figures import NOTEBOOKS, REVIEWED, Number, backs, figures_in, is_reviewed, record_numbers, unbacked_figures

LESSONS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def records() -> set[Number]:
    return record_numbers()


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_every_quoted_figure_is_backed(path: Path, records: set[Number]) -> None:
    missing = unbacked_figures(path, records)
    assert not missing, (
        "figures in the prose that no compared output, no record in data/runs/ and no entry of "
        "prose_figures.REVIEWED backs (print them from a cell, or fix the number):\n  " + "\n  ".join(map(str, missing))
    )


def test_figures_are_found_in_prose_only() -> None:
    text = (
        "plain-56 ends at 31.6 % training error, 17 % more parameters, test accuracy 0.9429; "
        "Section 4.2, v1.5, torch 2.14.1, `lr=0.5`, $0.25$ and [a link](https://arxiv.org/abs/1512.03385) "
        "are not figures, nor are 9,000 images or 3 layers."
    )
    assert [f.text for f in figures_in(text)] == ["31.6 %", "17 %", "0.9429"]


def test_rounding_and_percent_rules() -> None:
    (rounded,) = figures_in("31.6 %")
    assert backs(rounded, {Number("31.57", percent=True)})
    assert not backs(rounded, {Number("31.57", percent=False)})  # a % figure needs a percentage
    assert not backs(rounded, {Number("36.1", percent=True)})
    assert backs(rounded, {Number("31.566666666666666", percent=True, full_precision=True)})
    assert not backs(rounded, {Number("31.566666666666666", percent=True)})  # printed: at most 2 more decimals
    (decimal,) = figures_in("about 5.6 points")
    assert not backs(decimal, {Number("6", percent=False)})  # an integer does not back a decimal


def test_a_wrong_number_in_a_lesson_is_caught(tmp_path: Path, records: set[Number]) -> None:
    """Change one quoted figure of a real lesson and the check names it."""
    source = NOTEBOOKS / "07_degradation.ipynb"
    nb = json.loads(source.read_text(encoding="utf-8"))
    cell = next(
        i
        for i, c in enumerate(nb["cells"])
        if c["cell_type"] == "markdown" and "What holds in **every one of the three seeds**" in "".join(c["source"])
    )
    text = "".join(nb["cells"][cell]["source"])
    figure = next(figures_in(text))
    wrong = f"{figure.value + 4.5:.{figure.decimals}f}"
    nb["cells"][cell]["source"] = text.replace(
        figure.text, figure.text.replace(f"{figure.value:.{figure.decimals}f}", wrong), 1
    )
    broken = tmp_path / source.name
    broken.write_text(json.dumps(nb), encoding="utf-8")
    assert unbacked_figures(source, records) == []
    assert [f.text.split()[0].rstrip("%") for f in unbacked_figures(broken, records)] == [wrong]


def test_reviewed_figures_have_sources_and_are_used() -> None:
    """The list stays short: every entry has a source and is quoted by each notebook it names."""
    quoted = {
        (path.stem[:2], key)
        for path in LESSONS
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]
        if cell["cell_type"] == "markdown"
        for f in figures_in("".join(cell["source"]), path.stem)
        for key in {f.text, f.text.replace(" ", ""), f.text.rstrip("%").rstrip()}
    }
    unused = []
    for figure, (source, notebooks) in REVIEWED.items():
        assert source.strip() and notebooks.split(), figure
        unused += [f"{figure} in {nb}" for nb in notebooks.split() if (nb, figure) not in quoted]
    assert not unused, f"reviewed figures a listed notebook doesn't quote (update the list): {unused}"


def test_a_reviewed_figure_backs_only_its_notebooks() -> None:
    (paper,) = figures_in("a 1001-layer net: error 7.61%", "01_residual_unit")
    assert is_reviewed(paper)
    (elsewhere,) = figures_in("7.61", "07_degradation")
    assert not is_reviewed(elsewhere)
