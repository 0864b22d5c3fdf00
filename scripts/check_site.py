"""Check the built course website: every internal link and image resolves, nothing loads from the internet.

    python scripts/check_site.py build/site

Fails (exit 1, one line per problem) when
- a link (`<a href>`) to a page or file of the site points to a file that is not there, or to an
  `#anchor` that the target page does not have;
- an image, script, stylesheet or other asset is missing, or is loaded from outside the site
  (http://, https:// or //host): the site must work offline;
- a stylesheet pulls anything (fonts, images, other stylesheets) from the internet;
- a lesson's exercise cell (class `tag_exercise`) is not shown as an exercise: inside an "Exercise"
  admonition (`admonition exercise`) that also holds its hints, collapsed (`<details class="exercise-hints">`).
Links to other websites (`<a href="https://...">`) are allowed: they are for the reader to follow.
"""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

# (tag, attribute) pairs whose URL is loaded by the browser when the page is shown.
ASSET_ATTRIBUTES = {
    ("script", "src"),
    ("img", "src"),
    ("link", "href"),
    ("source", "src"),
    ("iframe", "src"),
    ("video", "src"),
    ("audio", "src"),
    ("embed", "src"),
    ("object", "data"),
}
EXTERNAL_IN_CSS = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])\s*((?:https?:)?//[^'")\s]+)""", re.I)


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.assets: list[tuple[str, str]] = []
        self.exercises_outside_a_box = 0
        self.boxes_without_hints = 0
        self._divs: list[set[str]] = []  # classes of the open <div>s, outermost first
        self._boxes: list[dict[str, bool]] = []  # open exercise boxes: have their hints been seen?

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._divs:
            if {"admonition", "exercise"} <= self._divs.pop() and self._boxes:
                self.boxes_without_hints += not self._boxes.pop()["hints"]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value for name, value in attrs if value is not None}
        classes = set(values.get("class", "").split())
        if tag == "div":
            if "tag_exercise" in classes and not self._boxes:
                self.exercises_outside_a_box += 1
            self._divs.append(classes)
            if {"admonition", "exercise"} <= classes:
                self._boxes.append({"hints": False})
        if tag == "details" and "exercise-hints" in classes and self._boxes:
            self._boxes[-1]["hints"] = True
        for key in ("id", "name"):
            if key in values:
                self.ids.add(values[key])
        if tag == "a" and "href" in values:
            self.links.append(values["href"])
        for attribute in ("src", "href", "data"):
            if (tag, attribute) in ASSET_ATTRIBUTES and attribute in values:
                rel = values.get("rel", "")
                if tag == "link" and rel in ("canonical", "alternate"):
                    continue
                self.assets.append((tag, values[attribute]))


def _is_external(url: str) -> bool:
    return url.startswith("//") or bool(urlsplit(url).scheme)


def check_site(site: Path) -> list[str]:
    """Return the problems found in the built site under `site` (empty list: all good)."""
    if not (site / "index.html").is_file():
        return [f"{site}/index.html not found: build the site first (make site)"]
    # Pages of the site; HTML files under _static/ are the theme's template fragments, not pages.
    pages = {
        path.resolve(): _parse(path) for path in site.rglob("*.html") if "_static" not in path.relative_to(site).parts
    }
    problems: list[str] = []
    for page, parsed in sorted(pages.items()):
        where = page.relative_to(site.resolve())
        for tag, url in parsed.assets:
            if url.startswith("data:"):
                continue
            if _is_external(url):
                problems.append(f"{where}: <{tag}> loads {url} from the internet (the site must work offline)")
            elif not _target(page, url).exists():
                problems.append(f"{where}: <{tag}> asset {url} is missing")
        for url in parsed.links:
            if _is_external(url) or url.startswith(("mailto:", "javascript:")):
                continue
            target = _target(page, url)
            if not target.exists():
                shown = target.relative_to(site.resolve()) if target.is_relative_to(site.resolve()) else target
                problems.append(f"{where}: broken link {url} (no file {shown})")
                continue
            fragment = unquote(urlsplit(url).fragment)
            if fragment and target.suffix == ".html" and target in pages and fragment not in pages[target].ids:
                problems.append(f"{where}: broken link {url} (no #{fragment} on that page)")
        if parsed.exercises_outside_a_box:
            problems.append(f"{where}: {parsed.exercises_outside_a_box} exercise cell(s) not shown in an Exercise box")
        if parsed.boxes_without_hints:
            problems.append(f"{where}: {parsed.boxes_without_hints} Exercise box(es) without their collapsed hints")
    for css in sorted(site.rglob("*.css")):
        for match in EXTERNAL_IN_CSS.finditer(css.read_text(encoding="utf-8", errors="replace")):
            problems.append(f"{css.relative_to(site)}: loads {match.group(1)} from the internet")
    return problems


def _parse(path: Path) -> _PageParser:
    parser = _PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _target(page: Path, url: str) -> Path:
    path = unquote(urlsplit(url).path)
    if not path:
        return page
    target = (page.parent / path).resolve()
    return target / "index.html" if target.is_dir() else target


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    site = Path(argv[1])
    problems = check_site(site)
    for problem in problems:
        print(problem)
    n_pages = sum(1 for path in site.rglob("*.html") if "_static" not in path.relative_to(site).parts)
    if problems:
        print(f"check_site: {len(problems)} problem(s) in {site}")
        return 1
    print(f"check_site: {n_pages} pages, all internal links and assets resolve, nothing loads from the internet")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
