"""Every statement of a run record's provenance in the prose agrees with the record.

A *provenance claim* is a phrase about how a run was made: its precision ("bf16", "bf16 autocast", "native
bf16", "fp32", "without native bf16", "AVX2"), its torch threads ("1 thread", "two torch threads"), its epochs
("20 epochs", "a 35-epoch record") or its number of seeds ("one seed", "three seeds"). A *record mention* is a
record of ``data/runs/`` named in backticks: `` `degradation-long` ``, `` `degradation-long.json` `` or
`` `data/runs/degradation-long.json` ``.

In each sentence (or ``;``-separated clause) of the checked prose, every claim is attributed to the record
mentioned nearest to it in the same sentence and compared with that record's ``environment`` and ``config``
(for a record of several seeds, those of every seed). A sentence that makes a precision or thread claim must
mention a record, so that the claim can be checked; the few sentences that state how the *code* behaves
rather than how a record was made are listed in ``GENERAL`` with the reason.

To check another lesson, add it to ``CHECKED`` (and its general statements to ``GENERAL``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "data" / "runs"

CHECKED = [
    "notebooks/07_degradation.ipynb",
    "notebooks/08_train_a_resnet.ipynb",
    "notebooks/10_resnet_family.ipynb",
    "notebooks/11_why_residuals_work.ipynb",
    "README.md",
]

# Sentences with a precision or thread claim that are not about a record: (file, a fragment of the sentence, why).
GENERAL: list[tuple[str, str, str]] = [
    ("notebooks/08_train_a_resnet.ipynb", 'with `precision="auto"` (the default)', "how training.train chooses"),
    ("notebooks/08_train_a_resnet.ipynb", "bf16 autocast keeps 8 bits", "what the precisions are"),
    ("notebooks/08_train_a_resnet.ipynb", "bf16 convolutions and linear layers when", "what autocast does in the loop"),
    ("notebooks/08_train_a_resnet.ipynb", "eager fp32 engine at batch 128", "a benchmark, dated in the README"),
    (
        "notebooks/08_train_a_resnet.ipynb",
        "## 9 · Twelve minutes on a CPU without",
        "a heading; its section names the records",
    ),
    ("notebooks/08_train_a_resnet.ipynb", "8. asks what **12 minutes**", "the contents; section 9 names the records"),
    ("notebooks/07_degradation.ipynb", "PyTorch's two compute threads", "advice for a busy machine"),
    ("README.md", "on GPUs with native bfloat16", "how the engine behaves on GPUs"),
    ("notebooks/11_why_residuals_work.ipynb", "into a new fp32 model", "how weights.load_degradation_net loads"),
    ("notebooks/11_why_residuals_work.ipynb", "Every probe below evaluates in fp32", "how the probes compute"),
    ("README.md", "### In 12 minutes on a CPU without bf16", "a heading; its section names the records"),
    ("README.md", "## Performance", "the benchmarks' own provenance, measured and dated in the text"),
    ("README.md", "## Tests", "the lead's section: the suite's own timing"),
    ("README.md", "`OMP_NUM_THREADS=1`", "torchrun advice"),
]

EPOCH_REACH = 40
WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
NUMBER = r"(\d+|one|two|three|four|five)"
RECORD_RE = re.compile(r"`(?:data/runs/)?([A-Za-z0-9_.-]+?)(?:\.json)?`")
CLAIM_RES: list[tuple[str, re.Pattern[str]]] = [
    ("precision:fp32", re.compile(r"\b(?:no|without)(?: native)? bf16\b|\bAVX2\b|\bfp32\b")),
    ("precision:bf16", re.compile(r"\bbf16\b")),
    ("threads", re.compile(rf"\b{NUMBER} (?:torch |compute )?threads?\b")),
    ("epochs", re.compile(r"\b(\d+)[- ]epochs?\b")),
    ("seeds", re.compile(rf"\b{NUMBER} seeds?\b")),
]


@dataclass(frozen=True)
class Claim:
    kind: str  # "precision", "threads", "epochs" or "seeds"
    value: Any  # "bf16"/"fp32" or an int
    text: str
    record: str | None  # the record it is attributed to
    sentence: str


def record_names() -> set[str]:
    return {p.stem for p in RUNS.glob("*.json")}


def _number(text: str) -> int:
    return int(text) if text.isdigit() else WORDS[text]


def sentences(text: str) -> list[str]:
    """Sentences and ;-clauses of markdown prose: code blocks removed, split at paragraphs, headings and
    bullets, then at sentence ends; lines joined."""
    text = re.sub(r"```.*?```", "\n\n", text, flags=re.S)
    blocks = re.split(r"\n\s*\n|\n(?=#|\s*[*-] |\s*\d+\. )", text)
    found = []
    for block in blocks:
        block = re.sub(r"\s+", " ", block).strip()
        found += [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z*`(\d])|;\s+", block) if s.strip()]
    return found


def _owner(sentence: str, start: int, mentions: list[tuple[int, int, str]], reach: int | None = None) -> str | None:
    """The record a claim at ``start`` belongs to: inside parentheses, the record named last before it in them
    or right before them; otherwise the record mentioned nearest to it (within ``reach`` characters if given)."""
    depth, opening = 0, None
    for i in range(start - 1, -1, -1):
        if sentence[i] == ")":
            depth += 1
        elif sentence[i] == "(":
            if depth == 0:
                opening = i
                break
            depth -= 1
    if opening is not None:
        inside = [m for m in mentions if opening < m[0] < start]
        if inside:
            return inside[-1][2]
        before = [m for m in mentions if m[1] <= opening and not sentence[m[1] : opening].strip()]
        if before:
            return before[-1][2]

    def distance(r: tuple[int, int, str]) -> int:
        return min(abs(start - r[1]), abs(r[0] - start))

    nearest = min(mentions, key=distance, default=None)
    if nearest is None or (reach is not None and distance(nearest) > reach):
        return None
    return nearest[2]


def claims_in(sentence: str, names: set[str]) -> list[Claim]:
    """The provenance claims of one sentence, each attributed to a record mentioned in it (see ``_owner``)."""
    mentions = [(m.start(), m.end(), m.group(1)) for m in RECORD_RE.finditer(sentence) if m.group(1) in names]
    # a claim inside a record name or a code span (a command line's --threads 2) is not prose
    code_spans = [(m.start(), m.end()) for m in re.finditer(r"`[^`]*`", sentence)]
    taken: list[tuple[int, int]] = []
    found = []
    for kind, pattern in CLAIM_RES:
        for m in pattern.finditer(sentence):
            if any(a <= m.start() < b for a, b in code_spans + taken):
                continue
            taken.append((m.start(), m.end()))
            if kind.startswith("precision"):
                kind_name, value = "precision", kind.split(":")[1]
            else:
                kind_name, value = kind, _number(m.group(1))
            # Epochs and seeds are often hypothetical ("12 minutes hold 16 epochs"): only those written next to a
            # record (within EPOCH_REACH characters, or in its parentheses) are its provenance.
            reach = None if kind_name in ("precision", "threads") else EPOCH_REACH
            owner = _owner(sentence, m.start(), mentions, reach)
            found.append(Claim(kind_name, value, m.group(0), owner, sentence))
    return found


def provenance(name: str) -> list[dict[str, Any]]:
    """(environment, config, seeds) of each run in a record: one entry, or one per seed of a multi-seed record."""
    record = json.loads((RUNS / f"{name}.json").read_text())
    runs = list(record["runs"].values()) if "runs" in record else [record]
    return [{"environment": r["environment"], "config": r["config"], "seeds": len(runs)} for r in runs]


def disagreement(claim: Claim) -> str | None:
    """Why the claim does not fit its record (None when it does)."""
    assert claim.record is not None
    for run in provenance(claim.record):
        env, config = run["environment"], run["config"]
        actual: Any
        if claim.kind == "precision":
            actual = "bf16" if env["precision"].startswith("bf16") else "fp32"
        elif claim.kind == "threads":
            actual = env["torch_threads"]
        elif claim.kind == "epochs":
            actual = config["epochs"]
        else:
            actual = run["seeds"]
        if actual != claim.value:
            return f"{claim.record} has {claim.kind} {actual}, the prose says {claim.text!r}"
    return None


def prose(path: str) -> list[tuple[str, str]]:
    """(where, markdown text) of a checked file: each markdown cell of a notebook, or the README's sections."""
    file = ROOT / path
    if file.suffix == ".ipynb":
        cells = json.loads(file.read_text())["cells"]
        return [(f"{path} [{i}]", "".join(c["source"])) for i, c in enumerate(cells) if c["cell_type"] == "markdown"]
    parts = re.split(r"(?m)^(?=## )", file.read_text())
    return [(f"{path} ({part.splitlines()[0][:40]})", part) for part in parts if part.strip()]


def problems(path: str, names: set[str] | None = None) -> list[str]:
    names = names if names is not None else record_names()
    general = [fragment for file, fragment, _ in GENERAL if file == path]
    found = []
    for where, text in prose(path):
        if any(fragment in text and fragment.startswith("## ") for fragment in general):
            continue
        for sentence in sentences(text):
            if any(fragment in sentence for fragment in general):
                continue
            for claim in claims_in(sentence, names):
                if claim.record is None:
                    if claim.kind in ("precision", "threads"):
                        found.append(f"{where}: {claim.text!r} names no record: {sentence[:160]!r}")
                    continue
                why = disagreement(claim)
                if why:
                    found.append(f"{where}: {why}: {sentence[:160]!r}")
    return found


@pytest.mark.parametrize("path", CHECKED)
def test_provenance_in_prose_agrees_with_the_records(path: str) -> None:
    assert not problems(path), "\n".join(problems(path))


def test_general_statements_are_still_there() -> None:
    for path, fragment, _ in GENERAL:
        text = "\n".join(markdown for _, markdown in prose(path))
        assert fragment in text, f"{fragment!r} is no longer in {path}: remove it from GENERAL"


def test_claims_are_attributed_to_the_nearest_record() -> None:
    names = {"degradation-long", "degradation-seeds"}
    sentence = (
        "`degradation-long` ran in bf16 autocast with 1 thread, while the three seeds of `degradation-seeds` "
        "ran in fp32"
    )
    claims = {(c.kind, c.value): c.record for c in claims_in(sentence, names)}
    assert claims == {
        ("precision", "bf16"): "degradation-long",
        ("threads", 1): "degradation-long",
        ("seeds", 3): "degradation-seeds",
        ("precision", "fp32"): "degradation-seeds",
    }
    assert [c.value for c in claims_in("a CPU without native bf16 (`degradation-seeds.json`)", names)] == ["fp32"]
    assert claims_in("`python -m x --threads 2` and `degradation-long`", names) == []


def test_a_wrong_provenance_is_caught(tmp_path: Path) -> None:
    names = record_names()
    for wrong in (
        "`degradation-long` ran in fp32.",
        "`degradation-seeds-0` ran in bf16 autocast.",
        "`degradation-idle-timing` used 1 thread.",
        "`degradation-long` trained 10 epochs.",
        "the three seeds of `degradation-long` agree.",
    ):
        (claim,) = [c for c in claims_in(wrong, names)]
        assert disagreement(claim), wrong
    for right in (
        "`degradation-long` (bf16 autocast on 1 thread, 20 epochs, one seed) ended lower.",
        "the three seeds of `data/runs/degradation-seeds.json` ran in fp32 with one torch thread each.",
        "`degradation` (bf16 autocast, 1 thread), `degradation-idle-timing` (bf16, 2 threads) and `degradation-seeds-0`",
        "`fashion-full-12min-a` ran on a CPU with AVX2 and no native bf16, 2 threads.",
    ):
        claims = claims_in(right, names)
        assert claims and all(c.record and disagreement(c) is None for c in claims), right
    # a precision claim that names no record is reported
    readme = tmp_path / "x.md"
    readme.write_text("## Section\n\nOur seeds ran in fp32 on one thread.\n")
    assert len(problems(str(readme))) == 2
