"""Is it the shortcut, or the scale of the signal? (issue 21) Four arms against the degradation baselines.

    python -m resnet_lab.scale_experiment --arm layer-lr --seed 0   # one arm, one seed: data/runs/shortcut-or-scale-layer-lr-0.json
    python -m resnet_lab.scale_experiment --arm fixup --seed 0 --fast   # the same code path on tiny data

The arms (each trained with the degradation recipe of ``degradation-seeds-<seed>``: 10 epochs of the
9,000-image subset, batch 128, SGD 0.1 / 0.9 / 1e-4, warm-up + cosine, fp32, 1 torch thread):

- ``layer-lr``: plain-56 from the baseline's own initialisation (same seed, same constructor), each conv /
  fc weight trained with learning rate lr * min(1, r_last / r), r = ||dL/dW|| / ||W|| at initialisation
  on lesson 11's batch (128 training images, seed 1), r_last that of the last conv: no weight starts
  moving faster, relative to its size, than the last conv. A gentler optimisation for the early layers
  whose gradients explode, and nothing else changed.
- ``lsuv``: plain-56 (with its BN) initialised by LSUV (Mishkin & Matas 2016): orthogonal weights, each
  layer's output rescaled to unit variance on that batch.
- ``fixup``: ResNet-56 without any BatchNorm, Fixup-initialised (Zhang et al. 2019; ``fixup``), every
  parameter at the recipe's learning rate (the arm of the committed plan).
- ``fixup-lr10``: the same net, with the scalar biases and multipliers (every parameter named ``*bias*`` or
  ``*scale*``, the classifier's bias included) at lr/10, as Zhang et al.'s CIFAR training code does
  (added by the plan's amendment after ``fixup`` seed 0 collapsed).

Each record (schema ``resnet_lab.run/1``, experiment "shortcut-or-scale") has one net, the arm's, plus
``arm`` (what it changes) and ``at_init`` (first/last conv gradient norms, the probe of lesson 11).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from . import data, probes
from .experiments import degradation_config
from .fixup import fixup_cifar_resnet
from .init_schemes import layer_lr_scales, lsuv_, scale_layer_learning_rates
from .models import cifar_resnet
from .run_records import load_record, net_result, record_path, save_record, start_run
from .runtime import seed_everything
from .training import TrainConfig, train

EXPERIMENT = "shortcut-or-scale"
ARMS = {
    "layer-lr": "plain-56, baseline init, per-layer lr = lr x min(1, r_last / r) (r = ||dL/dW||/||W|| at init)",
    "lsuv": "plain-56 (with BN), LSUV init: orthogonal, then unit output variance per layer on one batch",
    "fixup": "ResNet-56 without BatchNorm, Fixup init (scalar biases/multiplier, zero last layers, L^-1/2)",
    "fixup-lr10": "as fixup, with the scalar biases and multipliers at lr/10 (as in Zhang et al.'s CIFAR code)",
}
NET_NAMES = {
    "layer-lr": "plain-56 layer-lr",
    "lsuv": "plain-56 LSUV",
    "fixup": "Fixup ResNet-56",
    "fixup-lr10": "Fixup ResNet-56 lr/10",
}
SCALAR_LR_FACTOR = 0.1  # Zhang et al.'s cifar_train.py: parameters named *bias* or *scale* at base_lr / 10
N_PROBE = 128  # lesson 11's batch for the gradient norms: 128 training images drawn with seed 1
PROBE_SEED = 1


def arm_config(seed: int, fast: bool = False) -> TrainConfig:
    """The degradation recipe (``experiments.degradation_config``) for ``seed``, precision fixed to fp32.

    The baselines ran with precision "auto", which was fp32 on their CPU; here "auto" would pick bf16.
    """
    return replace(degradation_config(fast), seed=seed, precision="fp32")


def probe_batch(splits: data.Splits, fast: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Lesson 11's fixed batch: (B, 1, 28, 28) normalized training images and (B,) labels (B = 128; 32 in fast mode)."""
    return probes.fixed_images(splits.train, splits, 32 if fast else N_PROBE, seed=PROBE_SEED)


def gradient_ratio(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Lesson 11's probe: ||dL/dW|| of the first and last conv and the fc, and first/last (None if last is 0)."""
    norms = probes.layer_gradient_norms(model, images, labels)
    convs = [v for k, v in norms.items() if k != "fc.weight"]
    first, last = convs[0], convs[-1]
    return {
        "first_conv": first,
        "last_conv": last,
        "fc": norms["fc.weight"],
        "first_over_last": first / last if last > 0 else None,  # None: undefined (Fixup: every conv's is 0)
        "min_over_max": min(convs) / max(convs) if max(convs) > 0 else None,
    }


def build_arm(
    arm: str, seed: int, images: torch.Tensor, labels: torch.Tensor, weight_decay: float
) -> tuple[nn.Module, dict[str, Any]]:
    """The arm's net for ``seed`` (1 input channel, 10 classes), ready to train, and what was done to it.

    ``layer-lr`` installs gradient hooks (``init_schemes.scale_layer_learning_rates``) that need SGD's
    ``weight_decay``. The returned dict: ``at_init`` (``gradient_ratio`` of the net as it starts
    training) and arm-specific details (the lr factors, LSUV's variances).
    """
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; choose from {list(ARMS)}")
    seed_everything(seed)
    details: dict[str, Any] = {}
    if arm.startswith("fixup"):
        model: nn.Module = fixup_cifar_resnet(56, in_channels=1)
    else:
        model = cifar_resnet(56, in_channels=1, residual=False)  # the baseline plain-56's init for this seed
        details["baseline_at_init"] = gradient_ratio(model, images, labels)
        if arm == "lsuv":
            details["lsuv_output_variance"] = lsuv_(model, images)
    details["at_init"] = gradient_ratio(model, images, labels)
    if arm == "layer-lr":
        scales = layer_lr_scales(model, images, labels)
        details["lr_factors"] = scales
        scale_layer_learning_rates(model, scales, weight_decay)
    if arm == "fixup-lr10":
        scalars = {n: SCALAR_LR_FACTOR for n, _ in model.named_parameters() if "bias" in n or "scale" in n}
        details["lr_factors"] = scalars
        scale_layer_learning_rates(model, scalars, weight_decay)
    return model, details


def run_arm(
    arm: str,
    seed: int,
    *,
    fast: bool = False,
    progress: bool = True,
    threads: int = 1,
    save_as: str | None = None,
    notes: str = "",
) -> dict[str, Any]:
    """Train one arm with one seed; returns its run record (written to data/runs/<save_as>.json if given)."""
    config = arm_config(seed, fast)
    splits = data.load_fashion_mnist("subset", seed=seed, fast=fast)
    device, threads, record = start_run(EXPERIMENT, fast, config, splits, threads, notes)
    images, labels = probe_batch(splits, fast)
    model, details = build_arm(arm, seed, images, labels, config.weight_decay)
    name = NET_NAMES[arm]
    record["arm"] = {"key": arm, "net": name, "changes": ARMS[arm], **details}
    started = time.perf_counter()
    try:
        history = train(model, splits, config, progress=progress, device=device, threads=threads, description=name)
    except FloatingPointError as error:  # a diverging run is a result too: record it, with no history
        record["diverged"] = str(error)
        record["total_seconds"] = round(time.perf_counter() - started, 1)
        record["complete"] = False
        if save_as:
            save_record(record, save_as)
        return record
    residual = arm.startswith("fixup")
    record["nets"][name] = net_result(name, 56, residual, model, history, time.perf_counter() - started, False)
    record["total_seconds"] = round(time.perf_counter() - started, 1)
    record["complete"] = not history.interrupted
    if save_as:
        save_record(record, save_as)
    return record


BASELINES = ("plain-20", "plain-56", "ResNet-20", "ResNet-56")  # the nets of degradation-seeds-<seed>


def record_name(arm: str, seed: int) -> str:
    """The committed record of ``arm`` and ``seed``: shortcut-or-scale-<arm>-<seed>."""
    return f"{EXPERIMENT}-{arm}-{seed}"


def load_scale_records(
    seeds: Sequence[int] = (0, 1, 2), arms: Sequence[str] = tuple(ARMS)
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The arms' records and the baselines' (``degradation-seeds-<seed>``) from data/runs/.

    Returns ({seed: {arm: record}}, {seed: baseline record}); an arm or seed without a record is left out.
    """
    arm_records: dict[str, dict[str, Any]] = {}
    baselines: dict[str, dict[str, Any]] = {}
    for seed in seeds:
        found = {
            arm: load_record(record_name(arm, seed)) for arm in arms if record_path(record_name(arm, seed)).is_file()
        }
        if found:
            arm_records[str(seed)] = found
            baselines[str(seed)] = load_record(f"degradation-seeds-{seed}")
    return arm_records, baselines


def _final_train_error(record: dict[str, Any]) -> float | None:
    """The final training error (%) of an arm's record; None if the run diverged or has no net."""
    if "diverged" in record or not record["nets"]:
        return None
    return next(iter(record["nets"].values()))["final"]["train_error"]


def _claim(per_seed: dict[str, bool]) -> dict[str, Any]:
    holds = [s for s, ok in per_seed.items() if ok]
    return {"holds_in_seeds": holds, "every_seed": len(holds) == len(per_seed) > 0, "no_seed": not holds}


def scale_findings(
    arm_records: dict[str, dict[str, dict[str, Any]]], baselines: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The plan's rule (data/runs/plans/shortcut-or-scale.md) applied per seed and arm. Errors in %.

    ``per_seed[seed]``: ``baseline`` {net: final train error} and ``arms`` {arm: train_error (None if it
    diverged), closes_gap (<= plain-20's), helps (< plain-56's), minus_plain20 / minus_plain56 / minus_resnet56}.
    ``arms[arm]``: ``seeds`` with a record, ``closes_gap`` and ``helps`` as {holds_in_seeds, every_seed,
    no_seed}, and ``verdict``: "closes the gap in every seed", "closes the gap in no seed" or "seeds disagree".
    Raises ValueError if a seed of ``arm_records`` has no baseline.
    """
    per_seed: dict[str, Any] = {}
    for seed, records in arm_records.items():
        if seed not in baselines:
            raise ValueError(f"seed {seed} has arm records but no baseline record (degradation-seeds-{seed})")
        base = {net: baselines[seed]["nets"][net]["final"]["train_error"] for net in BASELINES}
        arms = {}
        for arm, record in records.items():
            err = _final_train_error(record)
            ok = err is not None
            arms[arm] = {
                "train_error": err,
                "closes_gap": ok and err <= base["plain-20"],
                "helps": ok and err < base["plain-56"],
                "minus_plain20": err - base["plain-20"] if ok else None,
                "minus_plain56": err - base["plain-56"] if ok else None,
                "minus_resnet56": err - base["ResNet-56"] if ok else None,
            }
        per_seed[seed] = {"baseline": base, "arms": arms}
    summary: dict[str, Any] = {}
    for arm in dict.fromkeys(a for s in per_seed.values() for a in s["arms"]):
        seeds = [s for s in per_seed if arm in per_seed[s]["arms"]]
        closes = _claim({s: per_seed[s]["arms"][arm]["closes_gap"] for s in seeds})
        helps = _claim({s: per_seed[s]["arms"][arm]["helps"] for s in seeds})
        verdict = (
            "closes the gap in every seed"
            if closes["every_seed"]
            else "closes the gap in no seed"
            if closes["no_seed"]
            else "seeds disagree"
        )
        summary[arm] = {"seeds": seeds, "closes_gap": closes, "helps": helps, "verdict": verdict}
    return {"per_seed": per_seed, "arms": summary}


def _mean_range(values: Sequence[float | None]) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "-"
    text = f"{sum(vals) / len(vals):6.2f} [{min(vals):5.2f}-{max(vals):5.2f}]"
    return text + ("*" if len(vals) < len(values) else "")


def plot_scale_experiment(
    arm_records: dict[str, dict[str, dict[str, Any]]],
    baselines: dict[str, dict[str, Any]],
    *,
    baseline_nets: Sequence[str] = ("plain-20", "plain-56", "ResNet-56"),
    ax: Any = None,
) -> Any:
    """Training error per epoch: for each arm and baseline net, the mean over the seeds that have it (line)
    with a band from the lowest to the highest seed. Baselines dashed grey-ish, arms solid. Returns the Figure."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(8, 4.5)) if ax is None else (ax.figure, ax)
    curves: dict[str, tuple[list[list[float]], dict[str, Any]]] = {}
    styles = {"plain-20": "tab:gray", "plain-56": "black", "ResNet-20": "tab:olive", "ResNet-56": "tab:brown"}
    for net in baseline_nets:
        runs = [baselines[s]["nets"][net]["history"]["train_error"] for s in arm_records]
        curves[f"{net} (baseline)"] = (runs, {"color": styles.get(net, "tab:gray"), "linestyle": "--"})
    for arm, colour in zip(ARMS, ("tab:blue", "tab:orange", "tab:green", "tab:red")):
        runs = [
            next(iter(recs[arm]["nets"].values()))["history"]["train_error"]
            for recs in arm_records.values()
            if arm in recs and _final_train_error(recs[arm]) is not None
        ]
        if runs:
            curves[NET_NAMES[arm]] = (runs, {"color": colour, "linestyle": "-"})
    for label, (runs, style) in curves.items():
        values = np.array(runs, dtype=float)  # (seeds, epochs)
        epochs = np.arange(1, values.shape[1] + 1)
        ax.plot(
            epochs,
            values.mean(axis=0),
            marker="o",
            markersize=3,
            label=f"{label}, {len(runs)} seed{'' if len(runs) == 1 else 's'}",
            **style,
        )
        ax.fill_between(epochs, values.min(axis=0), values.max(axis=0), color=style["color"], alpha=0.15, linewidth=0)
    title = "Shortcut or scale? Training error per epoch (mean over seeds; band: min to max)"
    ax.set(xlabel="epoch", ylabel="training error (%)", title=title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def format_scale_table(findings: dict[str, Any]) -> str:
    """Final training error (%) per net and seed, then mean [min-max] over the seeds, baselines first, then arms.

    An arm row ends with the seeds where it closes the gap (<= plain-20) and where it helps (< plain-56);
    "div." marks a diverged run (left out of the mean, which then carries a *).
    """
    seeds = list(findings["per_seed"])
    lines = [
        f"{'net':<22}"
        + "".join(f"{'seed ' + s:>9}" for s in seeds)
        + f"{'mean [min-max]':>22}   closes gap in / helps in"
    ]
    for net in BASELINES:
        values = [findings["per_seed"][s]["baseline"][net] for s in seeds]
        lines.append(f"{net:<22}" + "".join(f"{v:>9.2f}" for v in values) + f"{_mean_range(values):>22}")
    for arm, summary in findings["arms"].items():
        cells, values = "", []
        for s in seeds:
            entry = findings["per_seed"][s]["arms"].get(arm)
            value = None if entry is None else entry["train_error"]
            cells += f"{'-' if entry is None else 'div.' if value is None else f'{value:.2f}':>9}"
            if entry is not None:
                values.append(value)
        closes, helps = (",".join(summary[k]["holds_in_seeds"]) or "none" for k in ("closes_gap", "helps"))
        seeds_text = f"   {closes} / {helps}"
        lines.append(f"{NET_NAMES[arm]:<22}" + cells + f"{_mean_range(values):>22}" + seeds_text)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m resnet_lab.scale_experiment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--arm", required=True, choices=tuple(ARMS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fast", action="store_true", help="tiny data, 2 epochs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--save-as", help="record name under data/runs/ (default shortcut-or-scale-<arm>-<seed>)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--notes", default="")
    args = parser.parse_args(argv)
    save_as = args.save_as or f"{EXPERIMENT}-{args.arm}-{args.seed}" + ("-fast" if args.fast else "")
    record = run_arm(args.arm, args.seed, fast=args.fast, progress=not args.no_progress, threads=args.threads,
                     save_as=save_as, notes=args.notes)  # fmt: skip
    if "diverged" in record:
        print(f"{args.arm} seed {args.seed} diverged: {record['diverged']}")
        return
    net = record["nets"][record["arm"]["net"]]
    summary = {"arm": args.arm, "seed": args.seed, "final": net["final"], "seconds": net["seconds"]}
    print(json.dumps({**summary, "at_init": record["arm"]["at_init"]}, indent=1))


if __name__ == "__main__":
    main()
