"""The recorded family comparison: five small CIFAR-style members of the ResNet family on the shipped subset.

    python -m resnet_lab.experiments family          # full mode: 5 nets x 5 epochs, ~10 min on an idle 2-core CPU
    python -m resnet_lab.experiments family --fast   # the same code path on tiny data, well under a minute

Every net gets the same recipe, the same seed and the same data order (the seed is reset before each
net), so a net's result does not depend on which other nets run with it. The record (schema
``resnet_lab.run/1``) gets one entry per net with its parameters, multiply-adds at 1x28x28, seconds
and curves, and ``findings`` computed by the rule below. It is written after every net, so an
interrupted run keeps what it finished (``"complete": false``).

The rule, fixed before the recorded run: each net is judged by its validation error after the last
epoch (1,000 held-out training images; the test set is evaluated once per net at the end and plays
no part). Two nets are called different only if their validation errors differ by more than twice
the binomial standard error of that difference (about 2 x 1.4 points at 12% error on 1,000 images);
otherwise the record says the comparison cannot separate them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from .costs import count_macs
from .data import load_fashion_mnist
from .models import cifar_resnet, cifar_resnext, preact_resnet, wide_resnet
from .run_records import net_result, save_record, start_run
from .runtime import processes, seed_everything
from .training import TrainConfig, train

# name -> (depth, builder for 1-channel 28x28 images, what it changes against ResNet-20)
FAMILY_NETS: dict[str, tuple[int, Callable[[], nn.Module], str]] = {
    "ResNet-20": (20, lambda: cifar_resnet(20, in_channels=1), "the 2015 CIFAR net (option A shortcuts)"),
    "pre-act ResNet-20": (20, lambda: preact_resnet(20, in_channels=1), "BN -> ReLU -> conv, no ReLU after the add"),
    "SE-ResNet-20": (
        20,
        lambda: cifar_resnet(20, in_channels=1, se=True),
        "squeeze-excitation (r = 16) before the add",
    ),
    "ResNeXt-20 (8x4d)": (
        20,
        lambda: cifar_resnext(20, groups=8, base_width=16, in_channels=1),
        "bottlenecks, 3x3 conv in 8 groups",
    ),
    "WRN-16-2": (16, lambda: wide_resnet(16, 2, in_channels=1), "pre-act basic blocks, twice as wide, 2 per stage"),
}
FAMILY_DATASET = "subset"  # the shipped 9,000 / 1,000 / 2,000 Fashion-MNIST images
SIGNIFICANCE_Z = 2.0  # the rule: a difference counts when it exceeds 2 standard errors


def family_config(fast: bool = False) -> TrainConfig:
    """The comparison's recipe: 5 epochs of SGD with warm-up + cosine (full) or 1 on tiny data (fast); last epoch counts."""
    return TrainConfig(epochs=1 if fast else 5, schedule="warmup_cosine", test_every_epoch=False, keep_best=False)


def run_family(
    *,
    fast: bool = False,
    config: TrainConfig | None = None,
    nets: Sequence[str] | None = None,
    progress: bool = True,
    threads: int | None = None,
    save_as: str | None = None,
    notes: str = "",
) -> dict[str, Any]:
    """Train the nets of ``FAMILY_NETS`` (all, or the names in ``nets``) with one recipe and seed.

    ``fast``: tiny data and one epoch; ``threads``: torch CPU threads (default 1 in fast mode, else
    torch's), restored after. Returns the run record; with ``save_as`` (a file name under data/runs/)
    it is written after each net.
    """
    names = list(FAMILY_NETS) if nets is None else list(nets)
    unknown = [n for n in names if n not in FAMILY_NETS]
    if unknown:
        raise ValueError(f"unknown nets {unknown}; choose from {list(FAMILY_NETS)}")
    config = config or family_config(fast)
    splits = load_fashion_mnist(FAMILY_DATASET, seed=config.seed, fast=fast)
    device, threads, record = start_run("family", fast, config, splits, threads, notes)
    record["rule"] = (
        "judge each net by its validation error after the last epoch; call two nets different only if the "
        f"errors differ by more than {SIGNIFICANCE_Z:g} binomial standard errors of the difference; test set once, not used"
    )
    record["complete"] = False
    started = time.perf_counter()
    for name in names:
        depth, build, change = FAMILY_NETS[name]
        seed_everything(config.seed)
        model = build()
        macs = count_macs(model, (1, *splits.train.images.shape[1:]))  # one 1x28x28 image
        net_started = time.perf_counter()
        history = train(model, splits, config, progress=progress, device=device, threads=threads, description=name)
        entry = net_result(name, depth, True, model, history, time.perf_counter() - net_started, config.keep_best)
        entry["macs"] = macs
        entry["change"] = change
        record["nets"][name] = entry
        record["total_seconds"] = round(time.perf_counter() - started, 1)
        if history.interrupted:
            record["notes"] += f" Interrupted during {name}."
            break
        record["findings"] = family_findings(record)
        if save_as and processes().is_main:  # under torchrun: one record, from rank 0
            save_record(record, save_as)
    else:
        record["complete"] = True
    record["findings"] = family_findings(record)
    if save_as and processes().is_main:
        save_record(record, save_as)
    return record


def standard_error(error_percent: float, n: int) -> float:
    """Binomial standard error, in percentage points, of an error rate measured on ``n`` images."""
    p = error_percent / 100.0
    return 100.0 * math.sqrt(max(p * (1.0 - p), 1e-12) / n)


def family_findings(record: dict[str, Any]) -> dict[str, Any]:
    """The rule applied to a record: ranking by final validation error, and which gaps are resolvable.

    ``separable``: pairs (better, worse) whose gap exceeds ``SIGNIFICANCE_Z`` standard errors of the
    difference; ``best_separable_from_all``: whether the first-ranked net beats every other by that margin.
    """
    n_val = record["dataset"]["val"]
    val = {name: net["final"]["val_error"] for name, net in record["nets"].items()}
    ranking = sorted(val, key=val.get)
    se = {name: standard_error(err, n_val) for name, err in val.items()}
    separable = []
    for i, better in enumerate(ranking):
        for worse in ranking[i + 1 :]:
            gap = val[worse] - val[better]
            if gap > SIGNIFICANCE_Z * math.hypot(se[better], se[worse]):
                separable.append([better, worse, round(gap, 2)])
    best = ranking[0] if ranking else None
    return {
        "val_error": val,
        "val_standard_error": {k: round(v, 2) for k, v in se.items()},
        "ranking": ranking,
        "spread": round(val[ranking[-1]] - val[ranking[0]], 2) if ranking else 0.0,
        "separable": separable,
        "best_separable_from_all": bool(best) and sum(p[0] == best for p in separable) == len(ranking) - 1,
    }


def merge_records(
    parts: Sequence[dict[str, Any]], order: Sequence[str] | None = None, notes: str = ""
) -> dict[str, Any]:
    """One record from records of the same experiment and recipe that trained different nets (e.g. in two processes).

    Raises ``ValueError`` if the parts differ in experiment, mode, seed, recipe or data, or repeat a net.
    """
    if not parts:
        raise ValueError("merge_records needs at least one record")
    first = parts[0]
    for part in parts[1:]:
        for key in ("experiment", "mode", "seed", "config", "dataset"):
            if part[key] != first[key]:
                raise ValueError(
                    f"records differ in {key!r}: {first[key]!r} vs {part[key]!r}; only the same run can be merged"
                )
    nets: dict[str, Any] = {}
    for part in parts:
        for name, net in part["nets"].items():
            if name in nets:
                raise ValueError(f"net {name!r} is in more than one record")
            nets[name] = net
    order = list(order) if order is not None else list(nets)
    merged = dict(first)
    merged["nets"] = {name: nets[name] for name in order if name in nets}
    merged["total_seconds"] = round(sum(p["total_seconds"] for p in parts), 1)
    merged["complete"] = all(p.get("complete", False) for p in parts) and set(merged["nets"]) == set(nets)
    merged["created"] = max(p["created"] for p in parts)
    merged["notes"] = " ".join(filter(None, [notes, *(p["notes"] for p in parts)]))
    merged["findings"] = family_findings(merged)
    return merged


def format_family(record: dict[str, Any]) -> str:
    """The comparison as a table: parameters, MACs, seconds, final train / val (+- SE) / test error."""
    n_val = record["dataset"]["val"]
    lines = [f"{'net':<19}{'params':>9}{'MMACs':>7}{'seconds':>9}{'train err%':>11}{'val err%':>14}{'test err%':>10}"]
    for name, net in record["nets"].items():
        f = net["final"]
        test = "-" if f["test_error"] is None else f"{f['test_error']:.2f}"
        val = f"{f['val_error']:.1f} +- {standard_error(f['val_error'], n_val):.1f}"
        lines.append(
            f"{name:<19}{net['parameters']:>9,}{net['macs'] / 1e6:>7.1f}{net['seconds']:>9.0f}"
            f"{f['train_error']:>11.2f}{val:>14}{test:>10}"
        )
    return "\n".join(lines)
