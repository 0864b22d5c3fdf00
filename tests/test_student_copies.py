"""scripts/make_student_copies.py: stubs replace solutions, copies are in sync, bad markers are refused."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("make_student_copies", ROOT / "scripts" / "make_student_copies.py")
msc = importlib.util.module_from_spec(_spec)
assert _spec.loader is not None
_spec.loader.exec_module(msc)

EXERCISE = """class MyUnit(nn.Module):
    def __init__(self, channels):
        super().__init__()
        # HINT: two 3x3 convs, each followed by "BN"
        ### BEGIN SOLUTION
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + x)
        ### END SOLUTION"""

FUNCTION_EXERCISE = """def size(n, kernel, stride, padding):
    # HINT: floor division
    ### BEGIN SOLUTION
    return (n + 2 * padding - kernel) // stride + 1
    ### END SOLUTION"""


def lesson(exercise_source: str = EXERCISE, **tags) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cells = [
        nbformat.v4.new_markdown_cell("# A lesson"),
        nbformat.v4.new_code_cell("import torch\nfrom torch import nn\nfrom resnet_lab import checks"),
        nbformat.v4.new_code_cell(exercise_source, metadata={"tags": tags.get("exercise_tags", ["exercise"])}),
        nbformat.v4.new_code_cell("checks.residual_unit(MyUnit)", metadata={"tags": ["check"]}),
        nbformat.v4.new_code_cell("print(MyUnit(4)(torch.zeros(1, 4, 2, 2)).shape)"),
        nbformat.v4.new_code_cell("import resnet_lab\nprint(resnet_lab.BasicBlock(4, 4).out_channels)"),
        nbformat.v4.new_code_cell(FUNCTION_EXERCISE, metadata={"tags": ["exercise"]}),
    ]
    for number, cell in enumerate(cells[1:], start=1):
        if cell.cell_type == "code":
            cell.execution_count = number
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="something\n")]
    nb.cells = cells
    return nb


@pytest.fixture
def lesson_dir(tmp_path: Path) -> Path:
    (tmp_path / "student").mkdir()
    nbformat.write(lesson(), tmp_path / "01_fixture.ipynb")
    no_exercises = nbformat.v4.new_notebook()
    no_exercises.cells = [nbformat.v4.new_code_cell("print(1)")]
    nbformat.write(no_exercises, tmp_path / "02_no_exercises.ipynb")
    return tmp_path


def test_solutions_become_stubs_with_the_hint(lesson_dir: Path):
    assert msc.main(["--notebooks", str(lesson_dir)]) == 0
    assert sorted(p.name for p in (lesson_dir / "student").iterdir()) == ["01_fixture.ipynb"]
    copy = nbformat.read(lesson_dir / "student" / "01_fixture.ipynb", as_version=4)
    nbformat.validate(copy)
    assert copy.cells[0].id == msc.NOTE_ID and "Student copy" in copy.cells[0].source
    unit = copy.cells[3].source
    assert "### BEGIN SOLUTION" not in unit and "### END SOLUTION" not in unit and "self.conv1" not in unit
    assert '        # HINT: two 3x3 convs, each followed by "BN"\n' in unit
    assert '        raise NotImplementedError("two 3x3 convs, each followed by \\"BN\\"")\n' in unit
    assert unit.endswith(f'        raise NotImplementedError("{msc.DEFAULT_MESSAGE}")')
    ast.parse(unit)  # still valid Python
    assert copy.cells[7].source == (
        "def size(n, kernel, stride, padding):\n    # HINT: floor division\n"
        '    raise NotImplementedError("floor division")'
    )
    for cell in copy.cells[1:]:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_exercise_check_and_dependent_cells_may_raise(lesson_dir: Path):
    copy = msc.make_student_copy(nbformat.read(lesson_dir / "01_fixture.ipynb", as_version=4), "01_fixture.ipynb")
    tags = [c.metadata.get("tags", []) for c in copy.cells]
    assert tags[3] == ["exercise", "raises-exception"]
    assert tags[4] == ["check", "raises-exception"]
    assert tags[5] == ["raises-exception"]  # uses MyUnit, defined by the exercise
    assert tags[2] == [] and tags[6] == []  # independent cells must run cleanly


def test_the_stub_raises_and_the_checker_says_not_done(lesson_dir: Path):
    copy = msc.make_student_copy(nbformat.read(lesson_dir / "01_fixture.ipynb", as_version=4))
    namespace: dict = {}
    exec(copy.cells[2].source, namespace)
    exec(copy.cells[3].source, namespace)  # defining the class works
    with pytest.raises(NotImplementedError, match="two 3x3 convs"):
        namespace["MyUnit"](4)
    with pytest.raises(AssertionError, match="this exercise is not done yet: fill in the cell above"):
        exec(copy.cells[4].source, namespace)
    exec(copy.cells[6].source, namespace)  # the package's reference still works


def test_the_source_is_not_modified(lesson_dir: Path):
    path = lesson_dir / "01_fixture.ipynb"
    before = path.read_text()
    nb = nbformat.read(path, as_version=4)
    msc.make_student_copy(nb)
    assert nbformat.writes(nb) == nbformat.writes(nbformat.reads(before, as_version=4))


def test_check_mode_reports_stale_and_extra_copies(lesson_dir: Path, capsys):
    assert msc.main(["--notebooks", str(lesson_dir), "--check"]) == 1
    assert msc.main(["--notebooks", str(lesson_dir)]) == 0
    assert msc.main(["--notebooks", str(lesson_dir), "--check"]) == 0
    (lesson_dir / "student" / "99_orphan.ipynb").write_text("{}")
    assert msc.main(["--notebooks", str(lesson_dir), "--check"]) == 1
    assert "no source with exercises" in capsys.readouterr().out


@pytest.mark.parametrize(
    "source, message",
    [
        ("def f():\n    ### BEGIN SOLUTION\n    return 1\n", "has no matching '### END SOLUTION'"),
        ("def f():\n    return 1\n    ### END SOLUTION\n", "without a '### BEGIN SOLUTION'"),
        (
            "def f():\n    ### BEGIN SOLUTION\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n",
            "again before the '### END SOLUTION'",
        ),
        ("def f():\n    ### BEGIN SOLUTION\n    return 1\n### END SOLUTION\n", "indented differently"),
        ("def f():\n    ### BEGIN SOLUTIONS\n    return 1\n", "unrecognised marker"),
        ("def f():\n    return 1\n", "has no '### BEGIN SOLUTION' ... '### END SOLUTION' block"),
    ],
)
def test_malformed_markers_are_refused(source: str, message: str):
    nb = lesson(source)
    with pytest.raises(msc.MarkerError, match="cell 2") as info:
        msc.make_student_copy(nb, "01_bad.ipynb")
    assert message in str(info.value) and "01_bad.ipynb" in str(info.value)


def test_markers_outside_exercise_cells_are_refused(tmp_path: Path):
    nb = lesson(exercise_tags=[])
    with pytest.raises(msc.MarkerError, match="without the 'exercise' tag"):
        msc.make_student_copy(nb, "01_bad.ipynb")
    nbformat.write(nb, tmp_path / "03_leak.ipynb")
    assert msc.main(["--notebooks", str(tmp_path)]) == 2


# -- the committed copies ---------------------------------------------------------------------

COPIES = msc.expected_copies()
STUDENT_DIR = ROOT / "notebooks" / "student"


def test_every_lesson_with_exercises_has_exactly_one_copy():
    committed = sorted(p.name for p in STUDENT_DIR.glob("*.ipynb")) if STUDENT_DIR.exists() else []
    assert committed == sorted(COPIES), "run: python scripts/make_student_copies.py"


@pytest.mark.parametrize("name", sorted(COPIES))
def test_committed_copy_is_in_sync(name: str):
    path = STUDENT_DIR / name
    assert path.exists(), f"missing {path}: run python scripts/make_student_copies.py"
    assert path.read_text(encoding="utf-8") == COPIES[name], (
        f"{path} is stale: run python scripts/make_student_copies.py"
    )


@pytest.mark.parametrize("name", sorted(COPIES))
def test_committed_copy_has_no_solutions_or_outputs(name: str):
    copy = nbformat.reads(COPIES[name], as_version=4)
    source = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    begins = sum(line.strip() == msc.BEGIN for c in source.cells for line in c.source.split("\n"))
    stubs = sum(
        line.strip().startswith("raise NotImplementedError(") for c in copy.cells for line in c.source.split("\n")
    )
    assert begins > 0 and stubs >= begins
    for cell in copy.cells:
        assert msc.BEGIN not in cell.source and msc.END not in cell.source
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
            tags = cell.metadata.get("tags", [])
            if "exercise" in tags or "check" in tags:
                assert "raises-exception" in tags


def test_the_note_says_exactly_which_cells_use_the_students_code():
    """Issue 14: "later cells use the finished versions" must be exact: the note names the other cells."""
    for name in sorted(p.name for p in STUDENT_DIR.glob("*.ipynb")):
        copy = nbformat.read(STUDENT_DIR / name, as_version=4)
        note = copy.cells[0].source
        using = [
            c
            for c in copy.cells[1:]
            if c.cell_type == "code"
            and "raises-exception" in c.metadata.get("tags", [])
            and not {"exercise", "check"} & set(c.metadata.get("tags", []))
        ]
        if using:
            assert note.count("the code cell after") == len(using), name
        else:
            assert "Only the check cells use your code" in note, name
        checkers = {
            c for cell in copy.cells if "check" in cell.metadata.get("tags", []) for c in msc.checker_calls(cell.source)
        }
        assert all(f'`"{c}"`' in note for c in checkers) and "checks.hint(name)" in note, name


# -- relative links: the copies sit one folder deeper ---------------------------------------------


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("the [list](../docs/mistakes.md).", "the [list](../../docs/mistakes.md)."),
        ("[a](../data/x.csv) and [b](../docs/glossary.md)", "[a](../../data/x.csv) and [b](../../docs/glossary.md)"),
        ("[ref]: ../docs/teachers.md", "[ref]: ../../docs/teachers.md"),
        ('<img src="../data/figure.png">', '<img src="../../data/figure.png">'),
        ("[web](https://example.org/../x) [same folder](01_residual_unit.ipynb)", None),
        ("a path in prose, ../docs/mistakes.md, is not a link", None),
    ],
)
def test_relative_links_get_one_more_level(markdown: str, expected: str | None):
    assert msc.deeper_links(markdown) == (markdown if expected is None else expected)


def test_markdown_links_are_rewritten_in_the_copy_and_not_in_code():
    nb = lesson()
    nb.cells.insert(1, nbformat.v4.new_markdown_cell("See [`docs/mistakes.md`](../docs/mistakes.md)."))
    nb.cells.insert(2, nbformat.v4.new_code_cell('print("../docs/mistakes.md")'))
    copy = msc.make_student_copy(nb, "01_links.ipynb")
    assert copy.cells[2].source == "See [`docs/mistakes.md`](../../docs/mistakes.md)."
    assert copy.cells[3].source == 'print("../docs/mistakes.md")'


LINK = re.compile(r"\]\(\s*<?([^)>\s#]+)")


@pytest.mark.parametrize("name", sorted(COPIES))
def test_relative_links_in_the_committed_copies_resolve(name: str):
    copy = nbformat.reads(COPIES[name], as_version=4)
    for cell in copy.cells:
        if cell.cell_type != "markdown":
            continue
        for target in LINK.findall(cell.source):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (STUDENT_DIR / target).resolve().exists(), f"{name}: broken link {target}"
