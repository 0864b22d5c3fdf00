"""Fewer epochs to 94 % (issue 25): an ablation of the levers on the shipped subset, and the full-data headline.

    python -m resnet_lab.speedrun --arm baseline --seed 0          # data/runs/speedrun-baseline-0.json
    python -m resnet_lab.speedrun --arm ema --seed 1               # one lever on top of the baseline
    python -m resnet_lab.speedrun --arm combo --levers ema,nesterov --seed 2
    python -m resnet_lab.speedrun --table                          # the ablation table and the combo the rule picks
    python -m resnet_lab.speedrun --figure speedrun.png            # validation error vs epoch and vs seconds
    python -m resnet_lab.speedrun --data full --arm combo --levers ema,nesterov --epochs 12 --threads 1
    python -m resnet_lab.speedrun --read-test --epochs 12          # the rule picks among the full runs; test once
    python -m resnet_lab.speedrun --arm nesterov --seed 0 --fast   # the same code path on tiny data, in seconds

The plan, with the rule fixed before the runs, is data/runs/plans/fewer-epochs.md.

Baseline (``recipe``): the recipe of the degradation records (``experiments.degradation_config``): ResNet-20,
SGD lr 0.1, momentum 0.9, weight decay 1e-4, batch 128, warm-up (1.5 epochs from lr/10) + cosine to 0, pad-4
crops and flips, **fp32** (on a CPU with native bf16 "auto" would pick bf16), 10 epochs on the subset
(9,000 train / 1,000 validation, split by the seed). Validation error every epoch; the model of the last epoch
is scored. The test set is never read by the ablation: the runs train on the splits with the test set emptied.
With ``--data full``: the split of the ``fashion-full`` records (55,000 / 5,000 / 10,000, split by the seed),
the model of the best validation epoch kept (``keep_best``), the test set withheld from the run, the weights
saved under data/checkpoints/speedrun/; ``--read-test`` applies the plan's rule to the full runs of one epoch
budget and evaluates the chosen one on the test set, once (a second read is refused).

Each record (schema ``resnet_lab.run/1``, experiment "speedrun" or "speedrun-full") has one net, ResNet-20,
plus ``arm`` (its levers and the config fields they change), ``machine`` (CPU model, native bf16, the CPU's
bf16 flags, niceness, load average at the start and end) and ``command`` (the command line that redoes it).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from . import data, run_records
from .experiments import choose_on_validation, degradation_config, fashion_full_config
from .models import cifar_resnet
from .run_records import load_record, net_result, record_path, save_record, start_run
from .runtime import device_name, fast_mode, seed_everything, use_bf16
from .schedules import linear_scaling
from .training import TrainConfig, evaluate, train

EXPERIMENT = {"subset": "speedrun", "full": "speedrun-full"}
DEPTH = 20
EPOCHS = {"subset": 10, "full": 12}
FAST_EPOCHS = 2
FAST_DEPTH = 8
SEEDS = (0, 1, 2)
TARGET_ACCURACY = 94.0  # % on the full test set
TIE_POINTS = 0.02  # one validation image of the full data's 5,000: within this the baseline (the simpler) wins
WEIGHTS_DIR = data.DATA_DIR / "checkpoints" / "speedrun"  # git-ignored; each record keeps its weights' sha256
PROGRESSIVE_FRACTION, PROGRESSIVE_SIZE = 0.3, 20  # the first round(0.3 x epochs) epochs at 20 x 20

# lever -> (what it does, the TrainConfig fields it sets for an ``epochs``-epoch run)
LEVERS: dict[str, tuple[str, Callable[[int], dict[str, Any]]]] = {
    "label-smoothing": ("training loss against targets smoothed by 0.1", lambda e: {"label_smoothing": 0.1}),
    "ema": ("evaluate an EMA of the weights and BN buffers, decay 0.99 per step", lambda e: {"ema_decay": 0.99}),
    "tta-flip": ("evaluation averages each image's logits with its mirror's", lambda e: {"tta_flip": True}),
    "tta-translate": (
        "evaluation averages 6 views: the image and its mirror (1/4 each), both shifted by (+1,+1) and (-1,-1) px "
        "(1/8 each)",
        lambda e: {"tta_flip": True, "tta_translate": 1},
    ),
    "triangular": ("triangular lr: warm-up 20% of the run from lr/10, then linear to 0", lambda e: {"schedule": "triangular"}),
    "nesterov": ("Nesterov momentum 0.9", lambda e: {"nesterov": True}),
    "bn-no-wd": ("no weight decay on BN weights and biases and the fc bias", lambda e: {"bn_weight_decay": False}),
    "bn-lr": ("BN weights and biases and the fc bias at 4x the lr (their decay / 4)", lambda e: {"bn_lr_scale": 4.0}),
    "dirac": ("stem filter 0 the identity (Dirac), filters 1-15 He as before", lambda e: {"first_conv_init": "dirac"}),
    "whiten": ("stem = whitening of the training 3x3 patches (9 directions, 7 negated)", lambda e: {"first_conv_init": "whiten"}),
    "progressive": (
        "the first round(0.3 x epochs) epochs train on 20x20 (bilinear) images, the rest on 28x28",
        lambda e: {"progressive_resize": (max(1, round(PROGRESSIVE_FRACTION * e)), PROGRESSIVE_SIZE)},
    ),
    "batch256": ("batch 256, lr 0.2 (linear scaling)", lambda e: {"batch_size": 256, "lr": linear_scaling(0.1, 256)}),
}  # fmt: skip
# levers that are two versions of one idea: the combo takes at most one of each pair (the lower mean error)
ALTERNATIVES = (("tta-flip", "tta-translate"), ("dirac", "whiten"))
ARMS = ("baseline", *LEVERS, "combo")


def recipe(data_kind: str = "subset", seed: int = 0, epochs: int | None = None, fast: bool = False) -> TrainConfig:
    """The baseline ``TrainConfig``: the degradation recipe (subset) or the fashion-full one (full), fp32.

    subset: last epoch scored (``keep_best=False``); full: best validation epoch kept. Neither evaluates the
    test set during the run (``test_every_epoch=False``; the runner also withholds it, see ``withhold_test``).
    """
    if data_kind not in EPOCHS:
        raise ValueError(f"data must be 'subset' (the ablation) or 'full' (the headline); got {data_kind!r}")
    epochs = epochs or (FAST_EPOCHS if fast else EPOCHS[data_kind])
    base = degradation_config() if data_kind == "subset" else fashion_full_config()
    return replace(base, epochs=epochs, seed=seed, precision="fp32", test_every_epoch=False,
                   keep_best=data_kind == "full")  # fmt: skip


def lever_changes(levers: Sequence[str], epochs: int) -> dict[str, Any]:
    """The ``TrainConfig`` fields that ``levers`` set together. Raises ``ValueError`` for an unknown lever, two
    alternatives, or two levers setting one field differently."""
    changes: dict[str, Any] = {}
    for lever in levers:
        if lever not in LEVERS:
            raise ValueError(f"unknown lever {lever!r}; choose from {', '.join(LEVERS)}")
        for field, value in LEVERS[lever][1](epochs).items():
            if field in changes and changes[field] != value:
                raise ValueError(f"levers {list(levers)} set {field} to both {changes[field]!r} and {value!r}")
            changes[field] = value
    for pair in ALTERNATIVES:
        if set(pair) <= set(levers):
            raise ValueError(f"{pair[0]} and {pair[1]} are alternatives: the combo takes one of them")
    return changes


def arm_levers(arm: str, combo: Sequence[str] = ()) -> list[str]:
    """The levers of ``arm``: none for the baseline, its own for a lever arm, ``combo`` for "combo"."""
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; choose from {', '.join(ARMS)}")
    if combo and arm != "combo":
        raise ValueError(f"--levers is for the combo arm; arm {arm!r} has its own")
    if arm == "combo":
        if not combo:
            raise ValueError("the combo arm needs its levers, e.g. --levers ema,nesterov (chosen by the plan's rule)")
        return list(combo)
    return [] if arm == "baseline" else [arm]


def arm_config(arm: str, seed: int, data_kind: str = "subset", epochs: int | None = None,
               combo: Sequence[str] = (), fast: bool = False) -> tuple[TrainConfig, list[str], dict[str, Any]]:  # fmt: skip
    """The arm's ``TrainConfig`` (the baseline recipe with its levers' changes), its levers and those changes."""
    base = recipe(data_kind, seed, epochs, fast)
    levers = arm_levers(arm, combo)
    changes = lever_changes(levers, base.epochs)
    return replace(base, **changes), levers, changes


def record_name(arm: str, seed: int, data_kind: str = "subset", epochs: int | None = None, fast: bool = False) -> str:
    """speedrun-<arm>-<seed> (subset) or speedrun-full-<arm>-<epochs>-<seed> (full); "-fast" in fast mode."""
    name = f"speedrun-{arm}-{seed}" if data_kind == "subset" else f"speedrun-full-{arm}-{epochs}-{seed}"
    return name + ("-fast" if fast else "")


def machine() -> dict[str, Any]:
    """What the seconds depend on: CPU model, native bf16 (what precision "auto" would pick), the CPU's bf16 and
    AMX flags, the process's niceness and the load average (1, 5, 15 min)."""
    cpu = torch.device("cpu")
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
        bf16_flags = sorted({f for f in flags.split(":", 1)[1].split() if "bf16" in f or f.startswith("amx")})
    except (OSError, StopIteration):
        bf16_flags = []
    return {
        "cpu_model": device_name(cpu),
        "bf16_native": use_bf16("auto", cpu),
        "cpu_bf16_flags": bf16_flags,
        "niceness": os.nice(0),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
    }


def withhold_test(splits: data.Splits) -> data.Splits:
    """``splits`` with an empty test set: the run cannot read it (its ``final_test_error`` is then meaningless
    and the record stores None)."""
    return replace(splits, test=splits.test.select(torch.arange(0)))


def load_splits(data_kind: str, seed: int, fast: bool) -> data.Splits:
    """The subset (9,000 / 1,000 / 2,000) or the full data (55,000 / 5,000 / 10,000), split by ``seed``."""
    return data.load_fashion_mnist("subset" if data_kind == "subset" else "full", seed=seed, fast=fast)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _repo_relative(path: Path) -> str:
    """``path`` relative to the repository (as records name files), or absolute if it lies elsewhere."""
    try:
        return str(path.resolve().relative_to(data.DATA_DIR.parent))
    except ValueError:
        return str(path.resolve())


def redo_command(arm: str, seed: int, data_kind: str, epochs: int, levers: Sequence[str], depth: int, threads: int,
                 fast: bool) -> str:  # fmt: skip
    """The command line that trains this run again (kept in its record)."""
    command = f"python -m resnet_lab.speedrun --data {data_kind} --arm {arm}"
    command += f" --levers {','.join(levers)}" if arm == "combo" else ""
    command += f" --epochs {epochs} --seed {seed} --threads {threads}"
    command += f" --depth {depth}" if depth != (FAST_DEPTH if fast else DEPTH) else ""
    return command + (" --fast" if fast else "")


def run_arm(arm: str, seed: int, *, data_kind: str = "subset", epochs: int | None = None, combo: Sequence[str] = (),
            fast: bool = False, depth: int | None = None, threads: int = 1, progress: bool = True,
            save_as: str | None = None, notes: str = "") -> dict[str, Any]:  # fmt: skip
    """Train ``arm`` with ``seed``; returns its run record (written to data/runs/<save_as>.json if given).

    Full data: the weights of the kept (best validation) epoch go to data/checkpoints/speedrun/<save_as>.pt and
    the record keeps their path and sha256, for ``read_test``.
    """
    config, levers, changes = arm_config(arm, seed, data_kind, epochs, combo, fast)
    depth = depth or (FAST_DEPTH if fast else DEPTH)
    splits = load_splits(data_kind, seed, fast)
    device, threads, record = start_run(EXPERIMENT[data_kind], fast, config, splits, threads, notes)
    record["arm"] = {"key": arm, "levers": levers, "changes": changes, "data": data_kind, "depth": depth,
                     "what": {lever: LEVERS[lever][0] for lever in levers}}  # fmt: skip
    record["machine"] = machine()
    record["command"] = redo_command(arm, seed, data_kind, config.epochs, levers, depth, threads, fast)
    record["test"] = None  # read later, once, by read_test (full data only)
    seed_everything(seed)
    model = cifar_resnet(depth, in_channels=1)
    name = f"ResNet-{depth}"
    started = time.perf_counter()
    try:
        history = train(model, withhold_test(splits), config, progress=progress, device=device, threads=threads,
                        description=f"{name} {arm}")  # fmt: skip
    except FloatingPointError as error:  # a diverging run is a result too
        record["diverged"] = str(error)
    else:
        history.final_test_error = None  # the test set was withheld
        record["nets"][name] = net_result(name, depth, True, model, history, time.perf_counter() - started,
                                          config.keep_best)  # fmt: skip
        if data_kind == "full" and save_as:
            path = WEIGHTS_DIR / f"{save_as}.pt"
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), path)
            record["weights"] = {"path": _repo_relative(path), "sha256": file_sha256(path)}
        record["complete"] = not history.interrupted
    record["total_seconds"] = round(time.perf_counter() - started, 1)
    record["machine"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    if save_as:
        save_record(record, save_as)
    return record


# ---------------------------------------------------------------------------------------------------------------
# The full-data headline: the rule picks, the test set is read once


def read_test(epochs: int, seed: int = 0, candidates: Sequence[str] = ("baseline", "combo"),
              fast: bool = False, threads: int = 1) -> dict[str, Any]:  # fmt: skip
    """Apply the plan's rule to the full-data records of ``epochs`` epochs and ``seed`` (``candidates`` in order,
    simplest first; the missing ones are skipped), evaluate the chosen one's saved weights on the test set with its
    own evaluation settings (TTA), and write ``test`` and ``choice`` into its record. Returns that record.

    Rule: the lowest best validation error wins, unless the first candidate is within ``TIE_POINTS`` of it (then
    the first, the simpler). Raises ``ValueError`` if the chosen record's test set was read already.
    """
    names = [record_name(arm, seed, "full", epochs, fast) for arm in candidates]
    records = {n: load_record(n) for n in names if record_path(n).is_file()}
    records = {n: r for n, r in records.items() if r["nets"]}  # a diverged run is not a candidate
    if not records:
        raise FileNotFoundError(f"no full-data record among {names}; run `python -m resnet_lab.speedrun --data full`")
    chosen = choose_on_validation(records, net=next(iter(next(iter(records.values()))["nets"])), tie_points=TIE_POINTS)
    record = records[chosen]
    if record.get("test") is not None:
        raise ValueError(f"the test set of {chosen} was read already ({record['test']['read_at']}); it is read once")
    path = data.DATA_DIR.parent / record["weights"]["path"]
    if file_sha256(path) != record["weights"]["sha256"]:
        raise ValueError(f"{path} is not the weights {chosen} saved (sha256 differs); the test cannot be read")
    config = TrainConfig(**record["config"])
    splits = load_splits("full", config.seed, fast)
    model = cifar_resnet(record["arm"]["depth"], in_channels=1)
    model.load_state_dict(torch.load(path, weights_only=True))
    torch.set_num_threads(threads)
    error = evaluate(model, splits.test, splits, precision=config.precision, device=torch.device("cpu"),
                     tta_flip=config.tta_flip, tta_translate=config.tta_translate)  # fmt: skip
    net = next(iter(record["nets"].values()))
    net["final"]["test_error"] = error
    record["test"] = {"error": error, "accuracy": 100.0 - error, "images": len(splits.test),
                      "reached_target": 100.0 - error >= TARGET_ACCURACY, "read_at": _now()}  # fmt: skip
    record["test_accuracy"] = 100.0 - error
    record["choice"] = {
        "candidates": {n: next(iter(r["nets"].values()))["final"]["best_val_error"] for n, r in records.items()},
        "rule": f"lowest best validation error; the first candidate wins ties within {TIE_POINTS} points",
        "chosen": chosen,
    }
    save_record(record, chosen)
    return record


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------------------------
# The ablation: records, the rule, the table, the figure


def load_ablation(
    arms: Sequence[str] = ARMS, seeds: Sequence[int] = SEEDS, fast: bool = False
) -> dict[str, dict[int, dict[str, Any]]]:
    """{arm: {seed: record}} of the subset records in data/runs/ (speedrun-<arm>-<seed>[-fast]); missing ones
    left out."""
    found: dict[str, dict[int, dict[str, Any]]] = {}
    for arm in arms:
        for seed in seeds:
            name = record_name(arm, seed, fast=fast)
            if record_path(name).is_file():
                found.setdefault(arm, {})[seed] = load_record(name)
    return found


def final_val_error(record: dict[str, Any]) -> float | None:
    """The scored validation error (%) of a record: the last epoch's (subset), or None if the run diverged."""
    if "diverged" in record or not record["nets"]:
        return None
    return next(iter(record["nets"].values()))["final"]["val_error"]


def train_seconds(record: dict[str, Any]) -> float | None:
    """Seconds of the run's epochs (training and validation), None if it diverged."""
    if not record["nets"]:
        return None
    return sum(next(iter(record["nets"].values()))["history"]["seconds"])


def verdict(differences: Sequence[float | None], seeds_needed: int = len(SEEDS)) -> str:
    """The plan's rule on the per-seed differences arm - baseline (None: the arm diverged, counted as above):
    "helps" if below in every seed, "hurts" if above in every seed, else "unclear"; "incomplete" with fewer seeds."""
    if len(differences) < seeds_needed:
        return "incomplete"
    if all(d is not None and d < 0 for d in differences):
        return "helps"
    if all(d is None or d > 0 for d in differences):
        return "hurts"
    return "unclear"


def _spread(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "min": None, "max": None, "mean": None}
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "mean": statistics.fmean(values)}  # fmt: skip


def ablation_findings(records: dict[str, dict[int, dict[str, Any]]], seeds_needed: int = len(SEEDS)) -> dict[str, Any]:
    """Per arm: final validation error per seed, its median / min / max / mean, the paired difference to the
    baseline per seed (only seeds the baseline has) and their median, median seconds per run, ``verdict``, and
    ``same_training_as_baseline`` per seed (identical per-epoch training losses: expected for the TTA arms and
    ``ema``, which change only what is evaluated). Errors in %. Raises ``ValueError`` without a baseline record."""
    if "baseline" not in records:
        raise ValueError("no baseline records (speedrun-baseline-<seed>); the rule compares every arm with them")
    base = {s: final_val_error(r) for s, r in records["baseline"].items()}
    findings: dict[str, Any] = {}
    for arm, by_seed in records.items():
        errors = {s: final_val_error(r) for s, r in sorted(by_seed.items())}
        paired = {
            s: (None if e is None else e - base[s]) for s, e in errors.items() if s in base and base[s] is not None
        }
        seconds = [t for t in (train_seconds(r) for r in by_seed.values()) if t is not None]
        findings[arm] = {
            "levers": next(iter(by_seed.values()))["arm"]["levers"],
            "val_error": errors,
            **{k: v for k, v in _spread([e for e in errors.values() if e is not None]).items()},
            "minus_baseline": paired,
            "median_minus_baseline": _spread([d for d in paired.values() if d is not None])["median"],
            "median_seconds": statistics.median(seconds) if seconds else None,
            "verdict": "baseline" if arm == "baseline" else verdict(list(paired.values()), seeds_needed),
            "same_training_as_baseline": {
                s: _train_losses(r) is not None and _train_losses(r) == _train_losses(records["baseline"][s])
                for s, r in sorted(by_seed.items())
                if s in records["baseline"]
            },
        }
    return findings


def _train_losses(record: dict[str, Any]) -> list[float] | None:
    return next(iter(record["nets"].values()))["history"].get("train_loss") if record["nets"] else None


def choose_combo(findings: dict[str, Any]) -> list[str]:
    """The plan's combo: every lever whose verdict is "helps"; of two alternatives that both help, the one with the
    lower mean validation error (the first listed on a tie). In ``LEVERS`` order."""
    helping = [lever for lever in LEVERS if findings.get(lever, {}).get("verdict") == "helps"]
    for first, second in ALTERNATIVES:
        if first in helping and second in helping:
            helping.remove(second if findings[first]["mean"] <= findings[second]["mean"] else first)
    return helping


def format_ablation(findings: dict[str, Any]) -> str:
    """The ablation table: final validation error (%) per seed, median [min-max], the differences to the baseline
    per seed (negative = better), median seconds per run and the verdict; "(trains as baseline)" marks an arm whose
    training losses equal the baseline's in every seed."""
    seeds = sorted({s for f in findings.values() for s in f["val_error"]})
    head = f"{'arm':<16}" + "".join(f"{'seed ' + str(s):>8}" for s in seeds)
    lines = [head + f"{'median [min-max]':>20}{'minus baseline, per seed':>28}{'s/run':>7}  verdict"]
    for arm, f in findings.items():
        cells = "".join(f"{_cell(f['val_error'].get(s)):>8}" for s in seeds)
        spread = "-" if f["median"] is None else f"{f['median']:.2f} [{f['min']:.2f}-{f['max']:.2f}]"
        diffs = " ".join(f"{_cell(f['minus_baseline'].get(s), signed=True):>6}" for s in seeds)
        seconds = "-" if f["median_seconds"] is None else f"{f['median_seconds']:.0f}"
        same = " (trains as baseline)" if arm != "baseline" and all(f["same_training_as_baseline"].values()) else ""
        lines.append(f"{arm:<16}{cells}{spread:>20}{diffs:>28}{seconds:>7}  {f['verdict']}{same}")
    return "\n".join(lines)


def _cell(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def plot_ablation(records: dict[str, dict[int, dict[str, Any]]], arms: Sequence[str] | None = None) -> Any:
    """Validation error (%) against epoch (left) and against cumulative seconds (right) for each arm: the median
    over its seeds (line) and a band from the lowest to the highest seed. Diverged runs are left out. Returns the
    Figure."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (by_epoch, by_seconds) = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    colours = plt.get_cmap("tab20").colors
    for index, arm in enumerate(arms or list(records)):
        histories = [next(iter(r["nets"].values()))["history"] for r in records.get(arm, {}).values() if r["nets"]]
        if not histories:
            continue
        errors = np.array([h["val_error"] for h in histories], dtype=float)  # (seeds, epochs)
        seconds = np.array([np.cumsum(h["seconds"]) for h in histories]).mean(axis=0)  # mean over the seeds
        epochs = np.arange(1, errors.shape[1] + 1)
        style = {"color": colours[index % len(colours)], "linestyle": "--" if arm == "baseline" else "-"}
        label = f"{arm} ({len(histories)} seed{'s' if len(histories) > 1 else ''})"
        for ax, x in ((by_epoch, epochs), (by_seconds, seconds)):
            ax.plot(x, np.median(errors, axis=0), marker="o", markersize=3, label=label, **style)
            ax.fill_between(x, errors.min(axis=0), errors.max(axis=0), color=style["color"], alpha=0.12, linewidth=0)
    by_epoch.set_xlabel("epoch")
    by_seconds.set_xlabel("seconds (cumulative, mean over seeds)")
    by_epoch.set_ylabel("validation error (%)")
    by_epoch.set_title("Validation error per epoch (median; band: min to max over seeds)")
    by_seconds.set_title("... against the seconds it took")
    by_epoch.legend(fontsize=7, ncol=2)
    for ax in (by_epoch, by_seconds):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_paired_differences(findings: dict[str, Any]) -> Any:
    """What each lever bought: its final validation error minus the baseline's of the same seed (points; below 0 =
    better), one dot per seed and a bar at the median, levers sorted by that median; the verdict in each label.
    Returns the Figure."""
    import matplotlib.pyplot as plt

    arms = [a for a in findings if a != "baseline" and findings[a]["minus_baseline"]]
    arms.sort(
        key=lambda a: findings[a]["median_minus_baseline"] if findings[a]["median_minus_baseline"] is not None else 99
    )
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(arms) + 1.6))
    markers = ("o", "s", "^", "D", "v")
    for row, arm in enumerate(arms):
        for index, (seed, diff) in enumerate(sorted(findings[arm]["minus_baseline"].items())):
            if diff is not None:
                ax.plot(diff, row, markers[index % len(markers)], color=f"C{index}", alpha=0.8,
                        label=f"seed {seed}" if row == 0 else None)  # fmt: skip
        median = findings[arm]["median_minus_baseline"]
        if median is not None:
            ax.plot([median, median], [row - 0.3, row + 0.3], color="black", linewidth=2,
                    label="median over seeds" if row == 0 else None)  # fmt: skip
    ax.axvline(0, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(arms)), [f"{a} ({findings[a]['verdict']})" for a in arms])
    ax.invert_yaxis()
    ax.set_xlabel("final validation error minus the baseline's, same seed (points; left of 0 = better)")
    ax.set_title("What each lever bought on the subset (10 epochs, ResNet-20)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def load_full_runs(seed: int = 0, fast: bool = False) -> dict[str, dict[str, Any]]:
    """{record name: record} of the full-data runs of ``seed`` in data/runs/ (speedrun-full-<arm>-<epochs>-<seed>),
    ordered by epochs, then baseline before combo."""
    suffix = f"-{seed}" + ("-fast" if fast else "")
    found = {}
    for path in sorted(Path(run_records.RUNS_DIR).glob("speedrun-full-*.json")):
        if path.stem.endswith(suffix):
            found[path.stem] = load_record(path.stem)
    order = {arm: index for index, arm in enumerate(ARMS)}
    return dict(sorted(found.items(), key=lambda kv: (kv[1]["config"]["epochs"], order.get(kv[1]["arm"]["key"], 99))))


def format_full_runs(runs: dict[str, dict[str, Any]]) -> str:
    """One line per full-data run: arm, epochs, best validation error (%) and its epoch, seconds, the test accuracy
    if its test set was read (else "not read"), and whether the plan's rule chose it among several runs of the
    same epochs or it was the only one."""
    lines = [f"{'record':<34}{'epochs':>7}{'best val':>10}{'at epoch':>10}{'seconds':>9}  test accuracy"]
    for name, record in runs.items():
        if not record["nets"]:
            lines.append(f"{name:<34}{record['config']['epochs']:>7}  diverged: {record.get('diverged', '')}")
            continue
        final = next(iter(record["nets"].values()))["final"]
        test = record.get("test")
        candidates = len(record.get("choice", {}).get("candidates", {}))
        how = "chosen by the rule" if candidates > 1 else "the only run of its epochs"
        read = "not read" if test is None else f"{test['accuracy']:.2f} % ({how}; read {test['read_at']})"
        lines.append(f"{name:<34}{record['config']['epochs']:>7}{final['best_val_error']:>10.2f}"
                     f"{final['best_epoch']:>10}{record['total_seconds']:>9.0f}  {read}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m resnet_lab.speedrun", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--arm", choices=ARMS)
    parser.add_argument("--levers", default="", help="the combo's levers, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", choices=tuple(EPOCHS), default="subset")
    parser.add_argument("--epochs", type=int, help="default 10 (subset), 12 (full), 2 with --fast")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fast", action="store_true", help="tiny data, ResNet-8, 2 epochs (or RESNET_LAB_FAST=1)")
    parser.add_argument("--depth", type=int, help="default 20 (8 with --fast)")
    parser.add_argument("--save-as", help="record name under data/runs/ (default: record_name)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--notes", default="")
    parser.add_argument("--table", action="store_true", help="print the ablation table and the rule's combo")
    parser.add_argument("--figure", help="save the ablation figure to this file")
    parser.add_argument("--read-test", action="store_true", help="choose among the full runs of --epochs; test once")
    args = parser.parse_args(argv)
    fast = args.fast or fast_mode()
    if args.table or args.figure:
        records = load_ablation(fast=fast)
        if "baseline" not in records:
            parser.exit(1, "no baseline records yet: run `python -m resnet_lab.speedrun --arm baseline --seed <s>`\n")
        if args.table:
            findings = ablation_findings(records)
            print(format_ablation(findings))
            print("combo by the rule:", ",".join(choose_combo(findings)) or "none (no lever helps)")
        if args.figure:
            plot_ablation(records).savefig(args.figure, dpi=120)
        return
    if args.read_test:
        try:
            record = read_test(args.epochs or (FAST_EPOCHS if fast else EPOCHS["full"]), args.seed, fast=fast,
                               threads=args.threads)  # fmt: skip
        except (ValueError, FileNotFoundError) as error:
            parser.exit(1, f"{error}\n")
        print(f"chosen {record['choice']['chosen']}: test accuracy {record['test']['accuracy']:.2f} %")
        return
    if args.arm is None:
        parser.error("give --arm (or --table, --figure, --read-test)")
    combo = [lever for lever in args.levers.split(",") if lever]
    epochs = args.epochs or (FAST_EPOCHS if fast else EPOCHS[args.data])
    try:
        arm_config(args.arm, args.seed, args.data, epochs, combo, fast)  # bad levers: a message, not a traceback
    except ValueError as error:
        parser.error(str(error))
    save_as = args.save_as or record_name(args.arm, args.seed, args.data, epochs, fast)
    record = run_arm(args.arm, args.seed, data_kind=args.data, epochs=epochs, combo=combo, fast=fast,
                     depth=args.depth, threads=args.threads, progress=not args.no_progress, save_as=save_as,
                     notes=args.notes)  # fmt: skip
    if "diverged" in record:
        print(f"{args.arm} seed {args.seed} diverged: {record['diverged']}")
        return
    final = next(iter(record["nets"].values()))["final"]
    print(f"{save_as}: final val error {final['val_error']:.2f} %, best {final['best_val_error']:.2f} % "
          f"(epoch {final['best_epoch']}), {record['total_seconds']:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
