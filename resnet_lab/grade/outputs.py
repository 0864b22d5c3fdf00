"""What the grader writes besides the long CSV: a gradebook, per-student feedback, and a regrade's changes.

* :func:`write_gradebook`: one row per student, one column per exercise (score 0-1), and a total, for a
  learning platform's grade import.
* :func:`write_feedback`: one short Markdown file per student: each exercise, its status, and for a
  failure the first line and first hint of the visible checks. Nothing about the teacher's hidden
  configurations (only how many failed) and no solution code.
* :func:`changes`: what changed per student between an earlier long CSV and this run.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

_EXPLAIN = {
    "passed": "every check passed",
    "not attempted": "the stub is still there: fill in the cell and run its check cell",
    "missing": "the notebook does not define it",
    "error": "the exercise's cell raised an error",
    "timed out": "it did not finish in time (an endless loop?)",
    "notebook failed": "the notebook could not be run to this point",
    "tampered": "the notebook changed the course's or torch's code, so this was not graded",
    "reference used": "the answer uses the course's finished version instead of your own code",
    "needs review": "the answer uses code an exercise does not need, so your teacher will read it before grading",
}


def _exercises(rows: list[dict[str, Any]]) -> list[str]:
    return [e for e in dict.fromkeys(r["exercise"] for r in rows) if e != "?"]


def write_gradebook(rows: list[dict[str, Any]], path: Path) -> Path:
    """``student, <exercise>..., total``: scores 0-1, empty where the student handed in no notebook for it."""
    exercises = _exercises(rows)
    students = list(dict.fromkeys(r["student"] for r in rows))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["student", *exercises, "total"])
        for student in students:
            scores = {r["exercise"]: float(r["score"]) for r in rows if r["student"] == student}
            cells = [f"{scores[e]:g}" if e in scores else "" for e in exercises]
            total = sum(scores.get(e, 0.0) for e in exercises)
            writer.writerow([student, *cells, f"{round(total, 3):g}"])
    return path


def _hint_line(row: dict[str, Any]) -> str:
    """A failure's first line and first hint, without anything from the hidden checks."""
    detail = str(row.get("detail") or "")
    if row["status"] != "failed":  # the grader's own words (what raised, what was replaced): no hidden checks
        explain = _EXPLAIN.get(row["status"], "")
        if row["status"] == "tampered" and detail:
            return f"{explain} ({detail})"
        return explain if row["status"] == "not attempted" or not detail else detail
    if int(row["checks_passed"]) < int(row["checks_total"]) and not detail.startswith("hidden checks:"):
        return detail
    hidden_failed = int(row["hidden_total"]) - int(row["hidden_passed"])
    return f"your check cell's checks pass, but {hidden_failed} of the teacher's {row['hidden_total']} further checks failed"


def _safe_name(student: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", student).strip("._") or "student"


def feedback_text(student: str, rows: list[dict[str, Any]]) -> str:
    """The Markdown feedback for one student (their rows of the long report)."""
    lines = [f"# Feedback for {student}", ""]
    for notebook in dict.fromkeys(r["notebook"] for r in rows):
        lines += [f"## {Path(notebook).name}", "", "| exercise | status | score |", "|---|---|---|"]
        mine = [r for r in rows if r["notebook"] == notebook]
        lines += [f"| {r['exercise']} | {r['status']} | {float(r['score']):g} |" for r in mine]
        lines.append("")
        for r in mine:
            if r["status"] != "passed":
                text = _hint_line(r).replace("\n", " ")
                lines.append(f"- **{r['exercise']}** ({r['status']}): {text}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_feedback(rows: list[dict[str, Any]], folder: Path) -> list[Path]:
    """One ``<student>.md`` per student in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for student in dict.fromkeys(r["student"] for r in rows):
        path = folder / f"{_safe_name(student)}.md"
        path.write_text(feedback_text(student, [r for r in rows if r["student"] == student]), encoding="utf-8")
        paths.append(path)
    return paths


def changes(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    """One line per student whose results changed: ``alice: basic_block failed 0.5 -> passed 1``."""
    before = {(r["student"], r["exercise"]): r for r in old}
    after = {(r["student"], r["exercise"]): r for r in new}
    lines = []
    for student in dict.fromkeys([r["student"] for r in new] + [r["student"] for r in old]):
        diffs = []
        for exercise in dict.fromkeys(
            [k[1] for k in after if k[0] == student] + [k[1] for k in before if k[0] == student]
        ):
            a, b = before.get((student, exercise)), after.get((student, exercise))
            if a is None:
                diffs.append(f"{exercise} new: {b['status']} {float(b['score']):g}")
            elif b is None:
                diffs.append(f"{exercise} no longer graded (was {a['status']} {float(a['score']):g})")
            elif (a["status"], float(a["score"])) != (b["status"], float(b["score"])):
                diffs.append(f"{exercise} {a['status']} {float(a['score']):g} -> {b['status']} {float(b['score']):g}")
        if diffs:
            lines.append(f"{student}: " + "; ".join(diffs))
    return lines
