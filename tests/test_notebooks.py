"""Structure of the committed lesson notebooks: what a reader on GitHub and nbval rely on."""

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
LESSONS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
STRAY_REPR = re.compile(r"^(<Figure size|Text\(|\[<matplotlib|<matplotlib\.)")


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def test_lessons_are_numbered_in_order_from_00():
    numbers = [int(p.name[:2]) for p in LESSONS]
    assert numbers == list(range(len(LESSONS))), [p.name for p in LESSONS]
    assert len(LESSONS) >= 10
    assert all(re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", p.name) for p in LESSONS)


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_kernel_spec_is_python3(path):
    spec = load(path)["metadata"]["kernelspec"]
    assert spec["name"] == "python3" and spec["language"] == "python"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_executed_top_to_bottom_without_errors(path):
    cells = code_cells(load(path))
    assert [c["execution_count"] for c in cells] == list(range(1, len(cells) + 1))
    for cell in cells:
        for out in cell["outputs"]:
            assert out["output_type"] != "error", "".join(cell["source"])[:80]
            if out["output_type"] == "stream":
                assert out["name"] != "stderr" or "warn" not in "".join(out["text"]).lower(), "a warning in the output"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_no_stray_reprs(path):
    for cell in code_cells(load(path)):
        for out in cell["outputs"]:
            if out["output_type"] == "execute_result":
                text = "".join(out["data"].get("text/plain", ""))
                assert not STRAY_REPR.match(text), f"stray repr {text[:30]!r}: end the cell with plt.show() or ';'"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_first_code_cell_imports_resnet_lab_and_shows_its_version(path):
    first = code_cells(load(path))[0]
    source = "".join(first["source"])
    assert re.search(r"^import resnet_lab|^from resnet_lab import|^import .*\bresnet_lab\b", source, re.M)
    assert "__version__" in source
    shown = "".join("".join(o.get("text", "")) for o in first["outputs"] if o["output_type"] == "stream")
    from resnet_lab import __version__

    assert __version__ in shown


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_plots_are_shown_not_leaked(path):
    """Every cell that draws makes its figure complete: a title and axis labels in the code."""
    for cell in code_cells(load(path)):
        source = "".join(cell["source"])
        has_image = any("image/png" in o.get("data", {}) for o in cell["outputs"])
        if has_image and ("plt.subplots" in source or "plt.figure" in source):
            assert re.search(r"set_title|suptitle|plt\.title", source), source[:120]


def test_the_map_of_the_course_in_00_lists_every_lesson():
    """A new lesson is not reachable from 00_start_here until its map links it."""
    cells = json.loads((NOTEBOOKS / "00_start_here.ipynb").read_text(encoding="utf-8"))["cells"]
    course_map = next("".join(c["source"]) for c in cells if "Map of the course" in "".join(c["source"]))
    lessons = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb") if p.stem != "00_start_here")
    missing = [name for name in lessons if f"]({name}.ipynb)" not in course_map]
    assert not missing, f"00_start_here's map of the course does not link {missing}"
