"""scripts/check_site.py finds what would break the offline course website: broken internal links and
anchors, missing images and assets, anything loaded from the internet (no browser needed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "check_site.py"
spec = importlib.util.spec_from_file_location("check_site", SCRIPT)
check_site = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_site)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A tiny site that passes: two pages linking each other (one by anchor), an image, a script, a stylesheet."""
    write(
        tmp_path / "index.html",
        '<html><head><link rel="stylesheet" href="_static/site.css"><script src="_static/site.js"></script></head>'
        '<body><a href="docs/glossary.html#residual">glossary</a> <a href="https://arxiv.org/abs/1512.03385">paper</a>'
        '<img src="_images/figure.png"></body></html>',
    )
    write(
        tmp_path / "docs" / "glossary.html",
        '<html><body><h2 id="residual">residual</h2>'
        '<a href="../index.html">home</a><a href="#residual">here</a></body></html>',
    )
    write(tmp_path / "_static" / "site.css", "body { font-family: sans-serif; }")
    write(tmp_path / "_static" / "site.js", "")
    write(tmp_path / "_images" / "figure.png", "png")
    write(tmp_path / "_static" / "template.html", '<script src="{{ pathto(x) }}"></script>')  # theme fragment
    return tmp_path


def test_a_sound_site_passes(site: Path) -> None:
    assert check_site.check_site(site) == []
    assert check_site.main(["check_site.py", str(site)]) == 0


def test_broken_link_missing_image_and_external_assets_are_reported(site: Path) -> None:
    write(
        site / "lesson.html",
        '<html><head><script src="https://cdn.example.org/mathjax.js"></script>'
        '<link rel="stylesheet" href="//fonts.example.org/font.css"></head>'
        '<body><a href="docs/glosary.html">typo</a><a href="docs/glossary.html#nope">bad anchor</a>'
        '<img src="_images/gone.png"></body></html>',
    )
    write(site / "_static" / "fonts.css", '@font-face { src: url("https://fonts.example.org/a.woff2"); }')
    problems = "\n".join(check_site.check_site(site))
    assert "lesson.html: <script> loads https://cdn.example.org/mathjax.js from the internet" in problems
    assert "lesson.html: <link> loads //fonts.example.org/font.css from the internet" in problems
    assert "lesson.html: broken link docs/glosary.html (no file docs/glosary.html)" in problems
    assert "lesson.html: broken link docs/glossary.html#nope (no #nope on that page)" in problems
    assert "lesson.html: <img> asset _images/gone.png is missing" in problems
    assert "_static/fonts.css: loads https://fonts.example.org/a.woff2 from the internet" in problems
    assert check_site.main(["check_site.py", str(site)]) == 1


def test_an_unbuilt_site_says_what_to_do(tmp_path: Path) -> None:
    assert check_site.check_site(tmp_path) == [f"{tmp_path}/index.html not found: build the site first (make site)"]


def test_exercises_must_be_shown_in_a_box_with_collapsed_hints(site: Path) -> None:
    cell = '<div class="cell tag_exercise docutils container"><div class="cell_input"><pre>code</pre></div></div>'
    hints = '<details class="exercise-hints"><summary>Hints (3)</summary><ol><li>a</li></ol></details>'
    write(
        site / "boxed.html",
        f'<html><body><div class="admonition exercise"><p class="admonition-title">Exercise: stage</p>{cell}'
        f'<div class="cell tag_check docutils container"></div>{hints}</div></body></html>',
    )
    assert check_site.check_site(site) == []
    write(site / "bare.html", f"<html><body>{cell}</body></html>")
    write(
        site / "no_hints.html",
        f'<html><body><div class="admonition exercise"><p class="admonition-title">Exercise</p>{cell}</div>{hints}'
        "</body></html>",
    )
    assert check_site.check_site(site) == [
        "bare.html: 1 exercise cell(s) not shown in an Exercise box",
        "no_hints.html: 1 Exercise box(es) without their collapsed hints",
    ]
