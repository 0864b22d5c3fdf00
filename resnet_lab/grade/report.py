"""The grading report: a CSV written row by row, a summary table, and a bar chart."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

COLUMNS = [
    "student",
    "notebook",
    "exercise",
    "status",
    "score",
    "checks_passed",
    "checks_total",
    "hidden_passed",
    "hidden_total",
    "hints_used",
    "solution_revealed",
    "seconds",
    "detail",
    "run",
]
STATUSES = [
    "passed",
    "failed",
    "not attempted",
    "missing",
    "error",
    "timed out",
    "notebook failed",
    "tampered",
    "reference used",
    "needs review",
]
_COLOURS = {  # Okabe-Ito, colour-blind safe
    "passed": "#009E73",
    "failed": "#D55E00",
    "not attempted": "#BBBBBB",
    "missing": "#CC79A7",
    "error": "#E69F00",
    "timed out": "#56B4E9",
    "notebook failed": "#000000",
    "tampered": "#0072B2",
    "reference used": "#F0E442",
    "needs review": "#882255",
}


def score(row: dict[str, Any]) -> float:
    """Partial credit: the share of configurations (visible and hidden) that passed; 0 unless checked."""
    total = int(row["checks_total"]) + int(row["hidden_total"])
    if row["status"] not in ("passed", "failed") or total == 0:
        return 0.0
    return round((int(row["checks_passed"]) + int(row["hidden_passed"])) / total, 3)


class CsvReport:
    """Appends one row per student and exercise and flushes each, so an interrupted run keeps what it has."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("w", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._file, fieldnames=COLUMNS)
        self._writer.writeheader()
        self._file.flush()
        self.rows: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        row = {key: row.get(key, "") for key in COLUMNS}
        row["score"] = score(row)
        self._writer.writerow(row)
        self._file.flush()
        self.rows.append(row)

    def close(self) -> None:
        self._file.close()


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def summary(rows: Iterable[dict[str, Any]]) -> str:
    """A plain-text table: per exercise, how many students got each status, and the mean score."""
    rows = list(rows)
    exercises = list(dict.fromkeys(r["exercise"] for r in rows))
    used = [s for s in STATUSES if any(r["status"] == s for r in rows)]
    width = max([len("exercise"), *map(len, exercises)]) + 2
    head = f"{'exercise':<{width}}" + "".join(f"{s:>{max(len(s), 6) + 2}}" for s in used) + f"{'mean score':>12}"
    lines = [head, "-" * len(head)]
    for exercise in exercises:
        mine = [r for r in rows if r["exercise"] == exercise]
        counts = Counter(r["status"] for r in mine)
        mean = sum(float(r["score"]) for r in mine) / len(mine)
        lines.append(
            f"{exercise:<{width}}"
            + "".join(f"{counts.get(s, 0):>{max(len(s), 6) + 2}}" for s in used)
            + f"{mean:>12.2f}"
        )
    students = len({r["student"] for r in rows})
    lines.append(f"{students} students, {len(rows)} graded exercises")
    return "\n".join(lines)


def bar_chart(rows: Iterable[dict[str, Any]], path: Path, title: str = "How the class did") -> Path:
    """Stacked bars: for each exercise, the number of students per status. Saved as PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows = list(rows)
    exercises = list(dict.fromkeys(r["exercise"] for r in rows))
    used = [s for s in STATUSES if any(r["status"] == s for r in rows)]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(exercises) + 2.5), 3.8))
    bottoms = [0] * len(exercises)
    for status in used:
        counts = [sum(1 for r in rows if r["exercise"] == e and r["status"] == status) for e in exercises]
        ax.bar(exercises, counts, bottom=bottoms, label=status, color=_COLOURS[status], edgecolor="white")
        bottoms = [b + c for b, c in zip(bottoms, counts)]
    ax.set_ylim(0, max(bottoms, default=0) + 0.5)
    ax.set_title(title)
    ax.set_xlabel("exercise (checker)")
    ax.set_ylabel("students")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(title="status", bbox_to_anchor=(1.02, 1), loc="upper left", frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
