"""Sphinx configuration of the course website (`make site`).

The site is built from the repository as it is: README.md is the home page, every lesson notebook
`notebooks/NN_*.ipynb` becomes a page with its committed outputs (nothing is executed), every
`docs/*.md` becomes a page, and the student copies in `notebooks/student/` are offered as downloads.
Navigation is generated at build time from those file names, so a new lesson or doc page appears
without editing this file. Each exercise cell (tagged `exercise`) is shown with its check cell in an
"Exercise" box, its hints (the `# HINT:` line and the cell's `hints` metadata) collapsed below. Math is rendered by a local copy of MathJax (from the pip package
django-static-mathjax): the site works offline and loads nothing from the internet.

Build: sphinx-build -W --keep-going -c site . build/site (see `make site`).
"""

from __future__ import annotations

import html
import shutil
import sys
from pathlib import Path

import mathjax as mathjax_package  # pip: django-static-mathjax
from docutils import nodes

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # resnet_lab's exercise conventions (markers, hint lines, check calls)

from resnet_lab.checks.exercises import HINTS_KEY, check_calls, first_tier  # noqa: E402

project = "resnet-lab"
author = "resnet-lab contributors"
copyright = "resnet-lab contributors, MIT licence"

extensions = ["myst_nb", "sphinx.ext.mathjax"]

# Only these files are pages; everything else in the repository (.venv, tests, build, ...) is ignored.
root_doc = "README"
include_patterns = ["README.md", "docs/*.md", "notebooks/[0-9][0-9]_*.ipynb", "data/README.md"]
exclude_patterns = [".venv/**", "build/**", "**/.ipynb_checkpoints/**"]

# Notebooks are shown exactly as committed: never executed at build time.
nb_execution_mode = "off"
# Widget state would load require.js and the widget manager from a CDN; the site stays offline.
nb_ipywidgets_js: dict = {}
nb_merge_streams = True

myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# MathJax 3 served by the site itself (copied into _static/mathjax by copy_mathjax below) from the pip
# package django-static-mathjax (the official MathJax 3.2.2 files; no Django needed). MyST configures it.
mathjax_path = "mathjax/tex-chtml.js"
MATHJAX_PARTS = ["tex-chtml.js", "input", "output/chtml.js", "output/chtml", "ui", "a11y", "sre", "adaptors"]

html_theme = "sphinx_book_theme"
html_title = "resnet-lab: build ResNet yourself"
html_favicon = "favicon.svg"
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "navbar_persistent": [],  # one search box (in the sidebar), not a second one in a header bar
}
html_context = {"default_mode": "light"}  # without it the theme logs "invalid theme mode" on a first visit
html_last_updated_fmt = None
html_show_sourcelink = False
html_copy_source = True  # the download button offers each page's .ipynb / .md
# Pages link to each other's .md/.ipynb files the way GitHub does; MyST turns them into page links,
# and a link to a file that is neither a page nor present fails the build (make site passes -W).


def lesson_notebooks() -> list[Path]:
    """Lesson notebooks in course order (by their two-digit prefix)."""
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def doc_pages() -> list[Path]:
    """Pages under docs/ (glossary, teachers' guide, ...), sorted by name."""
    return sorted((ROOT / "docs").glob("*.md"))


def student_copies() -> list[Path]:
    return sorted((ROOT / "notebooks" / "student").glob("[0-9][0-9]_*.ipynb"))


def navigation_markdown() -> str:
    """MyST text appended to the home page at build time: the hidden tables of contents (the
    sidebar) and the student copies as downloads. README.md on disk stays plain GitHub Markdown."""

    def rel(path: Path) -> str:
        return path.relative_to(ROOT).with_suffix("").as_posix()

    lessons = "\n".join(rel(p) for p in lesson_notebooks())
    docs = "\n".join([*(rel(p) for p in doc_pages()), "data/README"])
    downloads = "\n".join(f"- {{download}}`{p.name} <{p.relative_to(ROOT).as_posix()}>`" for p in student_copies())
    return (
        "\n\n## Student copies (downloads)\n\n"
        "Exercises blanked, outputs cleared; open them in JupyterLab next to the lessons.\n\n"
        f"{downloads}\n\n"
        f"```{{toctree}}\n:hidden:\n:caption: Lessons\n\n{lessons}\n```\n\n"
        f"```{{toctree}}\n:hidden:\n:caption: Guides\n\n{docs}\n```\n"
    )


def add_navigation(app, docname: str, source: list[str]) -> None:
    if docname == root_doc:
        source[0] += navigation_markdown()


def copy_mathjax(app, exception) -> None:
    """Bundle MathJax with the site so math renders offline."""
    if exception is None and app.builder.format == "html":
        src = Path(mathjax_package.__file__).parent / "static" / "mathjax" / "es5"
        dest = Path(app.outdir) / "_static" / "mathjax"
        for part in MATHJAX_PARTS:
            if (src / part).is_dir():
                shutil.copytree(src / part, dest / part, dirs_exist_ok=True)
            elif (src / part).is_file():
                (dest / part).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src / part, dest / part)


def copy_home_page(app, exception) -> None:
    """Web servers and browsers open index.html: make it the home page (README.html)."""
    if exception is None and app.builder.format == "html":
        shutil.copyfile(Path(app.outdir) / f"{root_doc}.html", Path(app.outdir) / "index.html")


def _cell_tags(node: nodes.Node) -> list[str]:
    if not isinstance(node, nodes.container) or node.get("nb_element") != "cell_code":
        return []
    return list((node.get("cell_metadata") or {}).get("tags", []))


def _cell_source(cell: nodes.container) -> str:
    block = cell.next_node(nodes.literal_block)
    return block.astext() if block is not None else ""


def exercise_box(cell: nodes.container, check: nodes.container | None) -> nodes.admonition:
    """An exercise cell (and its check cell) inside an "Exercise" admonition, its hints collapsed below."""
    source = _cell_source(cell)
    calls = check_calls(_cell_source(check)) if check is not None else []
    name = calls[0][0] if calls else "exercise"
    tiers = [t for t in (first_tier(source), *(cell.get("cell_metadata") or {}).get(HINTS_KEY, [])) if t]
    box = nodes.admonition(classes=["exercise"])
    box += nodes.title(text=f"Exercise: {name}")
    intro = nodes.paragraph()
    intro += nodes.Text("In the student copy the solution below is blank: write it, then run the check cell. ")
    intro += nodes.literal(text=f'checks.hint("{name}")')
    intro += nodes.Text(" shows the hints one at a time.")
    box += intro
    box += cell.deepcopy()
    if check is not None:
        box += check.deepcopy()
    if tiers:
        items = "".join(f"<li>{html.escape(t)}</li>" for t in tiers)
        box += nodes.raw(
            "",
            f'<details class="exercise-hints"><summary>Hints ({len(tiers)}), one more concrete than the last'
            f"</summary><ol>{items}</ol></details>",
            format="html",
        )
    return box


def box_exercises(app, doctree) -> None:
    """Show every exercise of a lesson as an exercise: an admonition with its check cell and collapsed hints."""
    for cell in list(doctree.findall(nodes.container)):
        if "exercise" not in _cell_tags(cell) or cell.parent is None:
            continue
        parent = cell.parent
        index = parent.index(cell)
        following = parent.children[index + 1] if index + 1 < len(parent.children) else None
        check = following if following is not None and "check" in _cell_tags(following) else None
        box = exercise_box(cell, check)
        if check is not None:
            parent.remove(check)
        parent.replace(cell, box)


def setup(app) -> None:
    app.connect("source-read", add_navigation)
    app.connect("doctree-read", box_exercises)
    app.connect("build-finished", copy_mathjax)
    app.connect("build-finished", copy_home_page)
