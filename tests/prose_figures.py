"""Find the measured figures a lesson's prose quotes, and where each one comes from.

A *figure* is a number with a decimal point (``31.6``, ``0.9429``) or a number followed by a
percent sign (``17 %``, ``100%``) in a markdown cell, outside code spans, code blocks, LaTeX and
links. It is *backed* when it is

* printed by a cell of the same notebook whose output nbval compares (not tagged
  ``nbval-ignore-output``: an ignored output changes from run to run, so prose cannot quote it),
  rounded to the figure's decimals (31.57 in an output backs "31.6");
* a value in a record under ``data/runs/`` (numbers and text), rounded the same way; or
* on the reviewed list ``REVIEWED`` below: figures quoted from papers, torchvision's
  documentation and the dataset's README, each with its source and the notebooks that quote
  it, matched exactly (so a "0.5" from a paper in notebook 08 backs no "0.5" in notebook 07).

``tests/test_prose_figures.py`` fails for any figure that is none of these.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
RUNS = ROOT / "data" / "runs"
IGNORE_TAG = "nbval-ignore-output"
# A cell tagged FULL_MODE_TAG as well prints a deterministic result of the full-mode run (seeded, on shipped
# weights and fixed images) that nbval cannot compare only because fast mode computes it on less: its committed
# output comes from the full-mode run and backs the prose like a compared output.
FULL_MODE_TAG = "full-mode-result"

# Figures quoted from outside the course: value as written in the prose -> source. Keep it short;
# every entry is checked against /work/shared/reference.md or the cited paper by a reviewer.
REVIEWED: dict[str, tuple[str, str]] = {
    # figure as written: (source, the notebooks that may quote it)
    # He et al. 2015, arXiv:1512.03385
    "27.94": ("He et al. 2015, Table 2: plain-18 ImageNet top-1 error (%, 10-crop)", "01"),
    "28.54": ("He et al. 2015, Table 2: plain-34 top-1 error", "01"),
    "25.03": ("He et al. 2015, Tables 2 and 3: ResNet-34 top-1 error, option A", "01 02"),
    "24.52": ("He et al. 2015, Table 3: ResNet-34 B top-1 error", "01 02"),
    "24.19": ("He et al. 2015, Table 3: ResNet-34 C top-1 error", "01 02"),
    "1.8": ("He et al. 2015, Table 1: ResNet-18 FLOPs (x 10^9)", "05"),
    "3.6": ("He et al. 2015, Table 1: ResNet-34 FLOPs", "05"),
    "3.8": ("He et al. 2015, Table 1: ResNet-50 FLOPs", "03 05"),
    "7.6": ("He et al. 2015, Table 1: ResNet-101 FLOPs", "05"),
    "11.3": ("He et al. 2015, Table 1: ResNet-152 FLOPs", "05"),
    "6.43": ("He et al. 2015, Table 6: ResNet-110 CIFAR-10 test error (%), best of 5 runs", "06"),
    "6.61": ("He et al. 2015, Table 6: ResNet-110 mean over 5 runs (6.61 +- 0.16)", "06"),
    "0.16": ("He et al. 2015, Table 6: ResNet-110 standard deviation over 5 runs", "06"),
    "0.1 %": ("He et al. 2015, Sec. 4.2: ResNet-1202 training error below 0.1%", "06"),
    "0.1": ("He et al. 2015, Sec. 4.2: learning rate 0.1", "07 08"),
    "0.9": ("He et al. 2015, Sec. 3.4 and 4.2: SGD momentum 0.9", "07 08"),
    "50 %": ("He et al. 2015, Sec. 4.2: first lr division at 32k of 64k iterations", "08"),
    "75 %": ("He et al. 2015, Sec. 4.2: second lr division at 48k of 64k iterations", "08"),
    # He et al. 2016, Identity Mappings, arXiv:1603.05027
    "7.61": ("He et al. 2016, Table 3: ResNet-1001 original unit, CIFAR-10 error (%)", "01"),
    "4.92": ("He et al. 2016, Table 3: ResNet-1001 pre-activation unit, CIFAR-10 error (%)", "01"),
    # He et al. 2019, Bag of Tricks, arXiv:1812.01187, Table 5
    "76.21": ("He et al. 2019 (Bag of Tricks), Table 5: ResNet-50 ImageNet top-1 (%)", "03 05 10"),
    "76.66": ("He et al. 2019 (Bag of Tricks), Table 5: ResNet-50-B (stride on the 3x3) top-1 (%)", "03 05 10"),
    "76.87": ("He et al. 2019 (Bag of Tricks), Table 5: ResNet-50-C (deep 3x3 stem) top-1 (%)", "10"),
    # Xie et al. 2017 (ResNeXt), arXiv:1611.05431, Table 3
    "22.2": ("Xie et al. 2017, Table 3: ResNeXt-50 (32x4d) ImageNet top-1 error (%)", "10"),
    "23.9": ("Xie et al. 2017, Table 3: their ResNet-50's ImageNet top-1 error (%), next to ResNeXt-50", "10"),
    "21.9": (
        "Zagoruyko & Komodakis 2016: WRN-50-2-bottleneck ImageNet top-1 error (%), reference.WRN50_2_TOP1_ERROR",
        "10",
    ),
    # Zagoruyko & Komodakis 2016 (Wide ResNets), arXiv:1605.07146, Table 8: not in reference.md; quoted from the
    # paper, where it is the ResNet-50 row printed next to WRN-50-2-bottleneck (the paper reports it; whether the
    # authors trained it is not established). Notebook 10's family table prints it from a constant in the cell.
    "24.01": ("Zagoruyko & Komodakis 2016, Table 8: ResNet-50 ImageNet top-1 error (%), single crop", "10"),
    # He et al. 2016 (identity mappings), arXiv:1603.05027: pre-act ResNet-1001 parameters (M)
    "10.2": ("He et al. 2016, Table 3 / text: ResNet-1001 has 10.2M parameters", "10"),
    # chance level and ln 10 for ten classes (arithmetic, not a measurement)
    "90 %": ("ten classes: a guess is wrong 90 % of the time", "11"),
    "2.3": ("ln 10 = 2.303: the cross-entropy of a uniform guess over ten classes", "11"),
    # torchvision 0.29 documentation (torchvision.models)
    "3.664": ("torchvision docs: resnet34 GFLOPS", "05"),
    "4.089": ("torchvision docs: resnet50 GFLOPS", "03"),
    "4.1": ("torchvision docs: resnet50 4.089 GFLOPS, as usually rounded", "03 05"),
    # Zhong et al. 2017, Random Erasing, arXiv:1708.04896
    "0.5": ("Zhong et al. 2017: erasing probability p = 0.5", "08"),
    "2–40 %": ("Zhong et al. 2017: erased area 0.02 to 0.4 of the image", "08"),
    # zalandoresearch/fashion-mnist README benchmark table; d2l.ai
    "0.949": ("Fashion-MNIST README: ResNet18 test accuracy", "08"),
    "0.89": ("d2l.ai (Chinese edition): ResNet-18 on Fashion-MNIST at 96x96, 10 epochs", "08"),
}

NUMBER = r"\d+(?:,\d{3})*(?:\.\d+)?"
FIGURE = re.compile(rf"(?<![\w.:/^_-])(?P<range>{NUMBER}[–-])?(?P<value>{NUMBER})(?P<percent>\s?%)?(?![\w.]\d|\.\d)")
# Parts of a markdown cell that are not prose: fenced code, inline code, LaTeX, link targets, HTML tags.
NOT_PROSE = re.compile(r"```.*?```|`[^`]*`|\$\$.*?\$\$|\$[^$]*\$|\]\([^)]*\)|<[^>]+>", re.S)
# Decimal numbers that name something rather than measure it: sections, versions.
NAMES = re.compile(r"(?:Section|Sec\.|section|v|version|torch|torchvision|Python)\s?$")


@dataclass(frozen=True)
class Figure:
    notebook: str
    cell: int  # index of the markdown cell, counting from 0
    text: str  # as written, e.g. "31.6 %" or "0.9429"
    value: float
    decimals: int

    def __str__(self) -> str:
        return f"{self.notebook} [{self.cell}]: {self.text!r}"


def figures_in(markdown: str, notebook: str = "", cell: int = 0) -> Iterator[Figure]:
    """Every figure quoted in the prose of one markdown cell."""
    prose = NOT_PROSE.sub(" ", markdown)
    for match in FIGURE.finditer(prose):
        value = match["value"]
        if not ("." in value or match["percent"]):
            continue
        if NAMES.search(prose[: match.start()]):
            continue
        text = match.group(0).strip()
        decimals = len(value.split(".")[1]) if "." in value else 0
        yield Figure(notebook, cell, text, float(value.replace(",", "")), decimals)


@dataclass(frozen=True)
class Number:
    """A number written in an output or a record, and whether it is a percentage there."""

    text: str
    percent: bool
    full_precision: bool = False  # a stored value (any number of decimals), not a printed one


def numbers_in(text: str) -> Iterator[Number]:
    """Every number printed in a cell's output. It is a percentage when its line, or the first line
    of the output (a table's header), has a % sign."""
    lines = text.split("\n")
    header_percent = "%" in lines[0]
    for line in lines:
        line_percent = header_percent or "%" in line
        for match in re.finditer(rf"(?<![\w.]){NUMBER}", line):
            yield Number(match.group(0), line_percent)


def _numbers_in_notes(text: str) -> Iterator[Number]:
    """Numbers in a record's free text; a percentage only when a % sign follows it."""
    for match in re.finditer(rf"(?<![\w.])({NUMBER})(\s?%)?", text):
        yield Number(match.group(1), bool(match.group(2)))


PERCENT_KEYS = ("error", "accuracy")


def _record_values(node: object, key: str = "") -> Iterator[Number]:
    """Scalars of a record: results, timings, configuration, notes. Not the per-epoch and per-step
    logs (lists): among thousands of logged values almost any number would find a match, so prose
    about a curve quotes what a cell prints from it."""
    if isinstance(node, bool) or node is None:
        return
    if isinstance(node, (int, float)):
        yield Number(repr(node), any(k in key for k in PERCENT_KEYS), full_precision=True)
    elif isinstance(node, str):
        yield from _numbers_in_notes(node)
    elif isinstance(node, dict):
        for name, value in node.items():
            yield from _record_values(value, str(name))


def record_numbers(runs: Path = RUNS) -> set[Number]:
    numbers: set[Number] = set()
    for path in sorted(runs.glob("*.json")):
        numbers.update(_record_values(json.loads(path.read_text(encoding="utf-8"))))
    return numbers


def compared_output_numbers(nb: dict) -> set[Number]:
    """Numbers printed by the cells whose output nbval compares, and by cells tagged ``FULL_MODE_TAG``."""
    numbers: set[Number] = set()
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] != "code" or (IGNORE_TAG in tags and FULL_MODE_TAG not in tags):
            continue
        for out in cell.get("outputs", []):
            text = out.get("text") if out["output_type"] == "stream" else out.get("data", {}).get("text/plain")
            if text:
                numbers.update(numbers_in("".join(text)))
    return numbers


def backs(figure: Figure, numbers: Iterable[Number]) -> bool:
    """Whether one of ``numbers`` is the figure, rounded to the figure's decimals.

    A printed number must have the figure's decimals or up to two more (31.57 backs "31.6", an
    integer does not back "5.6"; a value stored in a record backs the figure it rounds to); a figure with a
    % sign needs a percentage.
    """
    percent = figure.text.endswith("%")
    tolerance = 0.5 * 10**-figure.decimals + 1e-9
    for number in numbers:
        if percent and not number.percent:
            continue
        value = float(number.text.replace(",", ""))
        written = len(number.text.split(".")[1]) if "." in number.text else 0
        enough = number.full_precision or figure.decimals <= written <= figure.decimals + 2
        if enough and abs(value - figure.value) <= tolerance:
            return True
    return False


def is_reviewed(figure: Figure) -> bool:
    """Whether the figure is on the reviewed list for its notebook (a paper's "7.61" also as "7.61%")."""
    keys = {figure.text, figure.text.replace(" ", "")}
    if "." in figure.text:
        keys.add(re.sub(r"\s?%$", "", figure.text))
    number = figure.notebook[:2]
    return any(key in REVIEWED and number in REVIEWED[key][1].split() for key in keys)


def unbacked_figures(path: Path, records: set[Number] | None = None) -> list[Figure]:
    """The figures in the markdown of notebook ``path`` that nothing backs."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    outputs = compared_output_numbers(nb)
    records = record_numbers() if records is None else records
    missing = []
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        for figure in figures_in("".join(cell["source"]), path.stem, index):
            if is_reviewed(figure):
                continue
            if backs(figure, outputs) or backs(figure, records):
                continue
            missing.append(figure)
    return missing
