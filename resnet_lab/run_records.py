"""Run records: the JSON files in data/runs/ that every recorded experiment writes, and reading them back.

A record (schema ``resnet_lab.run/1``) holds the experiment's name, mode, creation time, dataset,
seed, configuration (``TrainConfig`` as a dict), environment (versions, hardware, threads, precision),
one entry per net (``net_result``), the total seconds and notes; an experiment adds its own keys
(findings, rule, ...). ``start_run`` writes the header, ``save_record`` / ``load_record`` write and
read a record, ``format_record`` and its siblings print one.

    record = load_record("degradation")
    print(format_record(record))
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from . import runtime
from .costs import count_parameters
from .data import DATA_DIR, Splits
from .training import History, TrainConfig, use_bf16, use_channels_last

RUNS_DIR = DATA_DIR / "runs"
SCHEMA = "resnet_lab.run/1"


def environment(device: torch.device, config: TrainConfig, threads: int | None = None) -> dict[str, Any]:
    """``runtime.environment`` (versions, hardware, torch threads) plus the precision and memory format ``config`` settles on."""
    bf16 = use_bf16(config.precision, device)
    return {
        **runtime.environment(device, threads),
        "precision": "bf16 autocast" if bf16 else "fp32",
        "channels_last": use_channels_last(config, device, bf16),
    }


def start_run(
    experiment: str, fast: bool, config: TrainConfig, splits: Splits, threads: int | None, notes: str
) -> tuple[torch.device, int, dict[str, Any]]:
    """What every recorded run begins with: the device, the threads and the record's header (no nets yet).

    ``config`` and ``splits`` are the run's recipe and data, already chosen by the caller. The threads are
    settled here, once: ``threads``, else 1 in fast mode and torch's setting otherwise; the record states them.
    """
    threads = threads or (1 if fast else torch.get_num_threads())
    device = runtime.pick_device()
    record = {
        "schema": SCHEMA,
        "experiment": experiment,
        "mode": "fast" if fast else "full",
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "dataset": {
            "name": splits.name,
            "description": splits.describe(),
            "train": len(splits.train),
            "val": len(splits.val),
            "test": len(splits.test),
        },
        "seed": config.seed,
        "config": asdict(config),
        "environment": environment(device, config, threads),
        "nets": {},
        "total_seconds": 0.0,
        "notes": notes,
    }
    return device, threads, record


def net_result(
    name: str, depth: int, residual: bool, model: torch.nn.Module, history: History, seconds: float, keep_best: bool
) -> dict[str, Any]:
    """One net's entry of a run record; ``final`` describes the returned model (best-val epoch with keep_best)."""
    best = (history.best_epoch or len(history.epoch)) - 1
    final = best if keep_best else len(history.epoch) - 1
    return {
        "name": name,
        "depth": depth,
        "residual": residual,
        "parameters": count_parameters(model),
        "seconds": round(seconds, 1),
        "final": {
            "train_error": history.train_error[final],
            "val_error": history.val_error[final],
            "test_error": history.final_test_error,
            "best_val_error": history.val_error[best],
            "best_epoch": history.best_epoch,
        },
        "history": history.to_dict(),
    }


def record_path(name: str) -> Path:
    """data/runs/<name>.json (``name`` may end in .json already, or be a path of its own)."""
    return RUNS_DIR / (name if name.endswith(".json") else name + ".json")


def save_record(record: dict[str, Any], name: str) -> Path:
    """Write ``record`` as indented JSON to data/runs/<name> (atomically). Returns the path."""
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    path = record_path(name)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def load_record(name: str = "degradation") -> dict[str, Any]:
    """A committed run record from data/runs/, e.g. "degradation", "degradation-long", "fashion-full-resnet20"."""
    path = record_path(name)
    if not path.is_file():
        available = sorted(p.stem for p in RUNS_DIR.glob("*.json")) if RUNS_DIR.is_dir() else []
        raise FileNotFoundError(
            f"no run record {path}; available: {available or 'none'}. Run `python -m resnet_lab.experiments`."
        )
    record = json.loads(path.read_text())
    if record.get("schema") != SCHEMA:
        raise ValueError(f"{path} is not a run record of schema {SCHEMA!r}")
    return record


def dataset_line(record: dict[str, Any]) -> str:
    """The record's dataset in one line (``Splits.describe``) without the recording machine's data path."""
    return record["dataset"]["description"].split(" (from ")[0]


def format_record(record: dict[str, Any]) -> str:
    """A short table of a record: final train / val / test error and seconds per net."""
    lines = [f"{record['experiment']} ({record['mode']} mode) on {dataset_line(record)}"]
    lines.append(f"{'net':<10} {'train err%':>10} {'val err%':>9} {'test err%':>9} {'seconds':>8}")
    for name, net in record["nets"].items():
        f = net["final"]
        test = "-" if f["test_error"] is None else f"{f['test_error']:.2f}"
        lines.append(f"{name:<10} {f['train_error']:>10.2f} {f['val_error']:>9.2f} {test:>9} {net['seconds']:>8.1f}")
    return "\n".join(lines)


def format_seeds_record(record: dict[str, Any]) -> str:
    """A several-seed record as a table: per net the mean and range (min-max over seeds) of the final errors."""
    runs = list(record["runs"].values())
    lines = [f"{record['experiment']} ({record['mode']} mode), seeds {', '.join(map(str, record['seeds']))}, "
             f"on {dataset_line(runs[0])}; errors in %: mean [min-max] over seeds"]  # fmt: skip
    lines.append(f"{'net':<10} {'train err':>20} {'val err':>20} {'test err':>20} {'seconds':>8}")
    for name in runs[0]["nets"]:
        cells = []
        for key in ("train_error", "val_error", "test_error"):
            values = [run["nets"][name]["final"][key] for run in runs]
            if any(v is None for v in values):
                cells.append(f"{'-':>20}")
                continue
            cells.append(f"{sum(values) / len(values):>6.2f} [{min(values):5.2f}-{max(values):5.2f}]")
        seconds = sum(run["nets"][name]["seconds"] for run in runs) / len(runs)
        lines.append(f"{name:<10} " + " ".join(f"{c:>20}" for c in cells) + f" {seconds:>8.0f}")
    return "\n".join(lines)


def format_seed_epochs(record: dict[str, Any], key: str = "train_error") -> str:
    """Per epoch and net, ``key`` (default the training error, %) as mean [min-max] over the record's seeds."""
    runs = list(record["runs"].values())
    names = list(runs[0]["nets"])
    lines = [f"{'epoch':>5}" + "".join(f"{name:>22}" for name in names)]
    for i, epoch in enumerate(runs[0]["nets"][names[0]]["history"]["epoch"]):
        row = f"{epoch:>5}"
        for name in names:
            values = [run["nets"][name]["history"][key][i] for run in runs]
            row += f"{sum(values) / len(values):>8.2f} [{min(values):5.2f}-{max(values):5.2f}]"
        lines.append(row)
    return "\n".join(lines)
