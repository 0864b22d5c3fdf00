"""Recorded experiments: the degradation problem (paper Figures 1 and 6), ResNet-20 on full Fashion-MNIST, and the
paper's CIFAR-10 recipe (Table 6) for GPUs.

    python -m resnet_lab.experiments degradation          # 4 nets on the shipped subset, <= 10 min on 2 cores
    python -m resnet_lab.experiments degradation --fast   # the same in under a minute (tiny data)
    python -m resnet_lab.experiments degradation --seeds 3 --save-weights data/weights   # seeds 0, 1, 2
    python -m resnet_lab.experiments fashion-full         # ResNet-20 on the 60k/10k Fashion-MNIST
    torchrun --standalone --nproc_per_node=2 -m resnet_lab.experiments degradation   # the same, 2 processes
    python -m resnet_lab.experiments family               # five ResNet-family nets on the subset (family_experiment.py)
    python -m resnet_lab.experiments cifar10 --depth 110  # Table 6: ResNet-110 on CIFAR-10 (data/cifar-10-batches-py)
    torchrun --standalone --nproc_per_node=4 -m resnet_lab.experiments cifar10 --batch-size 32   # 4 GPUs, global 128

Each run writes a JSON run record to data/runs/: configuration, per-epoch curves per net,
final errors (percent), seconds, torch version, CPU/GPU name and seed. ``load_record`` reads one
(``run_records`` holds the record plumbing; its public names are importable from here too).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from . import data, reference, runtime, weights
from .family_experiment import FAMILY_DATASET, family_config, format_family, run_family
from .models import cifar_resnet
from .run_records import (  # noqa: F401 (RUNS_DIR, SCHEMA, environment, format_seed_epochs, dataset_line: public here too)
    RUNS_DIR,
    SCHEMA,
    dataset_line,
    environment,
    format_record,
    format_seed_epochs,
    format_seeds_record,
    load_record,
    net_result,
    record_path,
    save_record,
    start_run,
)
from .runtime import device_name, fast_mode, pick_device, seed_everything  # noqa: F401 (device_name: public here too)
from .training import (
    SCHEDULE_ALIASES,
    SCHEDULES,
    TrainConfig,
    step_milestones,
    steps_per_epoch,
    train,
    warmup_steps,
)

# (name, depth, residual) of the four nets of Figure 6 (left and right) that we train
DEGRADATION_NETS = (("plain-20", 20, False), ("plain-56", 56, False), ("ResNet-20", 20, True), ("ResNet-56", 56, True))


def degradation_config(fast: bool = False) -> TrainConfig:
    """The recipe of the committed degradation record (full mode) or its fast-mode shrink."""
    if fast:
        return TrainConfig(epochs=2, schedule="warmup_cosine")
    return TrainConfig(epochs=10, schedule="warmup_cosine")


def fashion_full_config(fast: bool = False) -> TrainConfig:
    """The recipe of the ResNet-20 / full Fashion-MNIST record: model picked on validation, test once."""
    if fast:
        return TrainConfig(epochs=1, test_every_epoch=False, keep_best=True)
    # 35 epochs: about 25 minutes on an idle 2-core CPU; random erasing was tried and not chosen on validation
    return TrainConfig(epochs=35, schedule="warmup_cosine", test_every_epoch=False, keep_best=True)


CIFAR10_DEPTHS = (20, 32, 44, 56, 110)  # the ResNets of Table 6 that the paper trains with this recipe
# 64k iterations of batch 128 on the 45k training images: 352 steps per epoch, so 182 epochs (64,064 iterations)
CIFAR10_EPOCHS = round(
    reference.CIFAR_RECIPE["iterations"]
    / steps_per_epoch(reference.CIFAR_RECIPE["train_val_split"][0], reference.CIFAR_RECIPE["batch_size"])
)


def cifar10_config(fast: bool = False, depth: int = 20) -> TrainConfig:
    """The paper's CIFAR-10 recipe (Section 4.2, Table 6) as a ``TrainConfig``.

    SGD with lr 0.1, momentum 0.9, weight decay 1e-4, batch 128; the "step" schedule divides the lr by 10 at
    50% and 75% of the iterations, which for 182 epochs of the 45k training images are iterations 32,032 and
    48,048 of 64,064 (the paper: 32k and 48k of 64k); pad-4 crops and flips. ResNet-110 is warmed up: the paper
    trains at 0.01 until the training error is below 80% (about 400 iterations), then at 0.1; here the lr rises
    linearly from 0.01 to 0.1 over the first epoch (352 iterations). ``fast``: the same recipe for 1 epoch.
    """
    return TrainConfig(
        epochs=1 if fast else CIFAR10_EPOCHS,
        batch_size=reference.CIFAR_RECIPE["batch_size"],
        lr=reference.CIFAR_RECIPE["lr"],
        momentum=reference.CIFAR_RECIPE["momentum"],
        weight_decay=reference.CIFAR_RECIPE["weight_decay"],
        schedule="step",
        warmup_epochs=1.0 if depth >= 110 else None,
        augment=True,
    )


RECIPES = {
    "degradation": degradation_config,
    "fashion-full": fashion_full_config,
    "family": family_config,
    "cifar10": cifar10_config,
}  # experiment -> recipe(fast)
DATASETS = {
    "degradation": "subset",
    "fashion-full": "full",
    "family": FAMILY_DATASET,
}  # experiment -> load_fashion_mnist kind (cifar10 reads data.load_cifar10)


def run_degradation(
    *,
    fast: bool = False,
    config: TrainConfig | None = None,
    zero_init_residual: bool = False,
    nets: Sequence[str] | None = None,
    progress: bool = True,
    threads: int | None = None,
    save_as: str | None = None,
    notes: str = "",
    save_weights: str | Path | None = None,
) -> dict[str, Any]:
    """Train plain-20, plain-56, ResNet-20 and ResNet-56 (CIFAR-style, 1 input channel) on the subset.

    Every net gets the same recipe, the same seed and the same data order. ``fast``: the tiny data and
    recipe of the test suite (the environment is not consulted). ``config``: another recipe. ``nets``
    picks a subset of the four (e.g. only the ResNets for a longer run); None trains all four.
    ``threads``: torch CPU threads (default: 1 in fast mode, else torch's setting), restored after.
    Returns the run record (see module docstring); with ``save_as`` (a file name under data/runs/)
    it is also written.
    With ``save_weights`` (a folder) each net's final weights go to
    <folder>/degradation-seed<seed>/<net>.pt in fp16 (see ``weights``).
    """
    names = [name for name, _, _ in DEGRADATION_NETS]
    nets = names if nets is None else nets
    unknown = set(nets) - set(names)
    if unknown:
        raise ValueError(f"unknown nets {sorted(unknown)}; choose from {names}")
    config = config or degradation_config(fast)
    splits = data.load_fashion_mnist(DATASETS["degradation"], seed=config.seed, fast=fast)
    device, threads, record = start_run("degradation", fast, config, splits, threads, notes)
    record["zero_init_residual"] = zero_init_residual
    started = time.perf_counter()
    for name, depth, residual in [net for net in DEGRADATION_NETS if net[0] in nets]:
        seed_everything(config.seed)
        model = cifar_resnet(
            depth, in_channels=1, residual=residual, zero_init_residual=zero_init_residual and residual
        )
        net_started = time.perf_counter()
        history = train(model, splits, config, progress=progress, device=device, threads=threads, description=name)
        record["nets"][name] = net_result(
            name, depth, residual, model, history, time.perf_counter() - net_started, config.keep_best
        )
        if save_weights is not None and not history.interrupted:
            _save_net_weights(model, name, record, Path(save_weights), save_as)
        if history.interrupted:
            record["notes"] += f" Interrupted during {name}."
            break
    record["total_seconds"] = round(time.perf_counter() - started, 1)
    record["findings"] = degradation_findings(record)
    if save_as and runtime.processes().is_main:  # under torchrun: one record, from rank 0
        save_record(record, save_as)
    return record


def _save_net_weights(
    model: torch.nn.Module, name: str, record: dict[str, Any], root: Path, save_as: str | None
) -> None:
    """Write one trained net's fp16 weights with its provenance (see ``weights``)."""
    final = record["nets"][name]["final"]
    weights.save_half(
        model, weights.weights_path(name, record["seed"], root), net=name, seed=record["seed"],
        experiment=record["experiment"], mode=record["mode"], record=save_as, created=record["created"],
        config=record["config"], train_error=final["train_error"], test_error=final["test_error"],
    )  # fmt: skip


def run_degradation_seeds(
    seeds: Sequence[int],
    *,
    fast: bool = False,
    config: TrainConfig | None = None,
    save_as: str = "degradation-seeds",
    reuse: bool = True,
    **kwargs: Any,
) -> dict[str, Any]:
    """``run_degradation`` once per seed; returns (and writes to data/runs/<save_as>.json) all runs and findings.

    Each seed's record is first written on its own as <save_as>-<seed>.json; with ``reuse`` a seed whose
    record already exists with the same mode and recipe is read instead of rerun (so seeds can be run as
    separate processes, e.g. ``--seed 1 --save-as degradation-seeds-1``, then combined with ``--seeds``).
    ``kwargs`` go to ``run_degradation`` (nets, progress, notes, save_weights, ...). The combined record:
    schema, experiment "degradation-seeds", mode, seeds, runs {seed: run record}, findings (see
    ``seed_findings``), notes.
    """
    base = config or RECIPES["degradation"](fast)
    runs: dict[str, dict[str, Any]] = {}
    for seed in seeds:
        config_k = replace(base, seed=seed)
        name = f"{save_as}-{seed}"
        path = record_path(name)
        if reuse and path.is_file():
            old = load_record(name)
            # A record written before TrainConfig gained a field ran with that field's default.
            recorded = {**asdict(TrainConfig()), **old["config"]}
            if old["mode"] == ("fast" if fast else "full") and recorded == asdict(config_k):
                print(f"seed {seed}: reusing {path}")
                runs[str(seed)] = old
                continue
        runs[str(seed)] = run_degradation(fast=fast, config=config_k, save_as=name, **kwargs)
    record = {
        "schema": SCHEMA,
        "experiment": "degradation-seeds",
        "mode": "fast" if fast else "full",
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "seeds": [int(s) for s in runs],
        "runs": runs,
        "findings": seed_findings(runs),
        "notes": kwargs.get("notes", ""),
    }
    save_record(record, save_as)
    return record


def seed_findings(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Across seeds: each number of ``degradation_findings`` per seed with mean, min and max; each claim
    (a True/False finding) with the seeds where it holds and whether it holds in every seed."""
    per_seed = {seed: run["findings"] for seed, run in runs.items()}
    first = next(iter(per_seed.values()))
    summary: dict[str, Any] = {"numbers": {}, "claims": {}}

    def stats(values: dict[str, float]) -> dict[str, Any]:
        vals = list(values.values())
        return {"per_seed": values, "mean": sum(vals) / len(vals), "min": min(vals), "max": max(vals)}

    for net in first["final_train_error"]:
        summary["numbers"][f"final_train_error/{net}"] = stats(
            {s: f["final_train_error"][net] for s, f in per_seed.items()}
        )
        summary["numbers"][f"final_test_error/{net}"] = stats(
            {s: runs[s]["nets"][net]["final"]["test_error"] for s in runs}
        )
    for key, value in first.items():
        if isinstance(value, bool):
            holds = [s for s, f in per_seed.items() if f.get(key)]
            summary["claims"][key] = {"holds_in_seeds": holds, "every_seed": len(holds) == len(per_seed)}
        elif isinstance(value, (int, float)):
            summary["numbers"][key] = stats({s: f[key] for s, f in per_seed.items()})
    if "plain_gap" in first and "resnet_gap" in first:
        holds = [s for s, f in per_seed.items() if f["resnet_gap"] < f["plain_gap"]]
        summary["claims"]["resnet_gap_below_plain_gap"] = {
            "holds_in_seeds": holds,
            "every_seed": len(holds) == len(per_seed),
        }
    return summary


def run_fashion_full(
    *,
    fast: bool = False,
    config: TrainConfig | None = None,
    progress: bool = True,
    threads: int | None = None,
    save_as: str | None = None,
    notes: str = "",
) -> dict[str, Any]:
    """ResNet-20 on the full Fashion-MNIST (55k train / 5k val / 10k test): model picked on val, test once.

    ``fast``, ``threads``: as for ``run_degradation``.
    """
    config = config or fashion_full_config(fast)
    splits = data.load_fashion_mnist(DATASETS["fashion-full"], seed=config.seed, fast=fast)
    device, threads, record = start_run("fashion-full", fast, config, splits, threads, notes)
    seed_everything(config.seed)
    model = cifar_resnet(20, in_channels=1)
    started = time.perf_counter()
    history = train(model, splits, config, progress=progress, device=device, threads=threads, description="ResNet-20")
    record["nets"]["ResNet-20"] = net_result(
        "ResNet-20", 20, True, model, history, time.perf_counter() - started, config.keep_best
    )
    record["total_seconds"] = round(time.perf_counter() - started, 1)
    record["test_accuracy"] = None if history.final_test_error is None else 100.0 - history.final_test_error
    if save_as and runtime.processes().is_main:  # under torchrun: one record, from rank 0
        save_record(record, save_as)
    return record


def choose_on_validation(
    candidates: dict[str, dict[str, Any]],
    *,
    net: str = "ResNet-20",
    budget_seconds: float | None = None,
    tie_points: float = 0.0,
) -> str:
    """The name of the candidate record with the lowest best validation error, by a rule fixed in advance.

    ``candidates``: name -> run record, the simplest recipe first. A record whose ``total_seconds`` exceeds
    ``budget_seconds`` is out. The first (simplest) candidate still in the budget wins unless another one is
    lower by more than ``tie_points`` percentage points. Test errors play no part.
    """
    if not candidates:
        raise ValueError("choose_on_validation needs at least one candidate record")
    in_budget = {
        name: r for name, r in candidates.items() if budget_seconds is None or r["total_seconds"] <= budget_seconds
    }
    if not in_budget:
        raise ValueError(f"no candidate finished within {budget_seconds} s: " + ", ".join(
            f"{name} took {r['total_seconds']} s" for name, r in candidates.items()))  # fmt: skip
    errors = {name: r["nets"][net]["final"]["best_val_error"] for name, r in in_budget.items()}
    simplest, best = next(iter(errors)), min(errors, key=errors.get)
    return simplest if errors[simplest] - errors[best] <= tie_points + 1e-9 else best  # 1e-9: float rounding


def iteration_plan(config: TrainConfig, train_images: int, processes: int = 1) -> dict[str, Any]:
    """How a run of ``config`` on ``train_images`` images in ``processes`` processes counts its iterations.

    ``batch_size`` is per process, so one iteration uses ``global_batch = processes * batch_size`` images;
    ``lr_divided_by_10_at`` lists the iterations where the "step" schedule divides the lr (see ``step_milestones``).
    """
    per_epoch = steps_per_epoch(train_images, config.batch_size, processes)
    total = per_epoch * config.epochs
    return {
        "processes": processes,
        "batch_size_per_process": config.batch_size,
        "global_batch": processes * config.batch_size,
        "lr": config.lr,
        "steps_per_epoch": per_epoch,
        "iterations": total,
        "warmup_iterations": warmup_steps(config, total),
        "lr_divided_by_10_at": step_milestones(config, total),
    }


def _load_cifar10(root: str | Path | None, val_size: int, seed: int, fast: bool) -> data.Splits:
    """``data.load_cifar10``, downloading only if ``RESNET_LAB_DOWNLOAD=1``; under torchrun rank 0 reads (and
    downloads) first while the other processes wait, so no two processes write the same files."""
    group = runtime.processes()
    if group.distributed and not group.is_main:
        dist.barrier()
    try:
        return data.load_cifar10(
            root=root, val_size=val_size, seed=seed, fast=fast, download=None if group.is_main else False
        )
    finally:
        if group.distributed and group.is_main:
            dist.barrier()


def run_cifar10(
    depth: int = 20,
    *,
    data_root: str | Path | None = None,
    val_size: int = reference.CIFAR_RECIPE["train_val_split"][1],
    fast: bool = False,
    config: TrainConfig | None = None,
    sync_bn: bool = False,
    progress: bool = True,
    threads: int | None = None,
    save_as: str | None = None,
    notes: str = "",
) -> dict[str, Any]:
    """ResNet-``depth`` (3 input channels) on CIFAR-10 with the paper's recipe (``cifar10_config``): Table 6.

    Reads ``data_root/cifar-10-batches-py`` (default data/); holds ``val_size`` training images out (the
    paper's 45k/5k split). Runs as it is under torchrun (``batch_size`` is then per process; ``sync_bn``:
    SyncBatchNorm, CUDA only). The record adds ``schedule`` (``iteration_plan`` of this run), ``sync_bn`` and ``paper``
    (the recipe's iterations and the Table 6 error of this depth). ``fast``, ``threads``: as for ``run_degradation``.
    """
    if depth not in CIFAR10_DEPTHS:
        raise ValueError(f"depth must be one of {CIFAR10_DEPTHS} (the paper's Table 6 recipe); got {depth}")
    config = config or cifar10_config(fast, depth)
    splits = _load_cifar10(data_root, val_size, config.seed, fast)
    device, threads, record = start_run("cifar10", fast, config, splits, threads, notes)
    group = runtime.processes()
    name = f"ResNet-{depth}"
    record["schedule"] = iteration_plan(config, len(splits.train), group.world_size)
    record["sync_bn"] = sync_bn
    record["paper"] = {
        "net": name,
        "test_error": reference.CIFAR_ERRORS[depth],
        "global_batch": reference.CIFAR_RECIPE["batch_size"],
        "lr": reference.CIFAR_RECIPE["lr"],
        "iterations": reference.CIFAR_RECIPE["iterations"],
        "lr_divided_by_10_at": list(reference.CIFAR_RECIPE["lr_drops_at_iterations"]),
    }
    if group.is_main:
        plan = record["schedule"]
        print(f"{name} on {splits.describe(source=False)}")
        print(f"{plan['processes']} process(es) x batch {plan['batch_size_per_process']} = global batch "
              f"{plan['global_batch']}, lr {config.lr}; {plan['iterations']} iterations, lr / 10 at "
              f"{plan['lr_divided_by_10_at']}")  # fmt: skip
    seed_everything(config.seed)
    model = cifar_resnet(depth, in_channels=3)
    started = time.perf_counter()
    history = train(model, splits, config, progress=progress, device=device, threads=threads, sync_bn=sync_bn,
                    description=name)  # fmt: skip
    record["nets"][name] = net_result(
        name, depth, True, model, history, time.perf_counter() - started, config.keep_best
    )
    record["total_seconds"] = round(time.perf_counter() - started, 1)
    if save_as and group.is_main:  # under torchrun: one record, from rank 0
        save_record(record, save_as)
    return record


def degradation_findings(record: dict[str, Any]) -> dict[str, Any]:
    """The paper's claims, measured on a degradation record (errors in percentage points).

    plain_gap / resnet_gap: final training error of the 56-layer net minus the 20-layer net's.
    plain56_above_plain20_fraction: share of per-epoch training errors where plain-56 is above
    plain-20. Claims that need a net the record lacks are left out.
    """
    nets = record["nets"]
    final = {name: net["final"]["train_error"] for name, net in nets.items()}
    findings: dict[str, Any] = {"final_train_error": final}
    if {"plain-20", "plain-56"} <= set(nets):
        plain20, plain56 = nets["plain-20"]["history"]["train_error"], nets["plain-56"]["history"]["train_error"]
        findings["plain_gap"] = final["plain-56"] - final["plain-20"]
        findings["plain56_above_plain20_fraction"] = sum(b > a for a, b in zip(plain20, plain56)) / len(plain20)
        findings["degradation"] = findings["plain56_above_plain20_fraction"] > 0.5 and findings["plain_gap"] > 0
    if {"ResNet-20", "ResNet-56"} <= set(nets):
        findings["resnet_gap"] = final["ResNet-56"] - final["ResNet-20"]
        findings["resnet56_at_or_below_resnet20"] = findings["resnet_gap"] <= 0
    if "plain_gap" in findings and "resnet_gap" in findings:
        findings["residual_removes_most_of_gap"] = (
            0 < findings["plain_gap"] and findings["resnet_gap"] <= findings["plain_gap"] / 3
        )
        findings["resnet56_below_plain56"] = final["ResNet-56"] < final["plain-56"]
    return findings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m resnet_lab.experiments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("experiment", choices=tuple(RECIPES))
    parser.add_argument(
        "--fast", action="store_true", help="tiny data, 1-2 epochs, 1 thread (also on with RESNET_LAB_FAST=1)"
    )
    parser.add_argument("--epochs", type=int, help="override the recipe's number of epochs")
    parser.add_argument(
        "--schedule",
        choices=(*SCHEDULES, *SCHEDULE_ALIASES),
        help="learning-rate schedule (onecycle: the old name of warmup_cosine)",
    )
    parser.add_argument("--warmup-epochs", type=float)
    parser.add_argument("--batch-size", type=int, help="override the recipe's batch size; under torchrun it is per "
                        "process, so the global batch is processes x batch size")  # fmt: skip
    parser.add_argument("--lr", type=float, help="override the recipe's peak learning rate (e.g. scaled linearly "
                        "with the global batch: 0.1 x global batch / 128)")  # fmt: skip
    parser.add_argument(
        "--random-erasing", type=float, help="probability of random erasing per training image (0 = off)"
    )
    parser.add_argument("--label-smoothing", type=float, help="training loss only (TrainConfig.label_smoothing)")
    parser.add_argument("--ema-decay", type=float, help="evaluate an EMA of the weights (TrainConfig.ema_decay)")
    parser.add_argument("--tta-flip", action="store_true", help="evaluate each image and its mirror image, averaged")
    parser.add_argument("--compile", action="store_true", help="torch.compile the training step (TrainConfig.compile)")
    parser.add_argument(
        "--eval-every", type=int, help="validate every k epochs and at the last (TrainConfig.eval_every)"
    )
    parser.add_argument("--channels-last", choices=("on", "off"), help="memory format (default: the recipe's, auto)")
    parser.add_argument(
        "--zero-init-residual", action="store_true", help="degradation: residual nets start as identity"
    )
    parser.add_argument(
        "--nets",
        nargs="+",
        help="degradation: which of plain-20 plain-56 ResNet-20 ResNet-56 (default all); "
        "family: names from family_experiment.FAMILY_NETS (default all)",
    )
    parser.add_argument(
        "--depth", type=int, default=20, choices=CIFAR10_DEPTHS, help="cifar10: the ResNet of Table 6 (default 20)"
    )
    parser.add_argument("--data-root", help="cifar10: the folder holding cifar-10-batches-py (default data/)")
    parser.add_argument("--val-size", type=int, default=reference.CIFAR_RECIPE["train_val_split"][1],
                        help="cifar10: training images held out for validation (default 5000, the paper's)")  # fmt: skip
    parser.add_argument("--sync-bn", action="store_true", help="cifar10 under torchrun on GPUs: SyncBatchNorm, "
                        "batch statistics over all processes (CUDA only)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--seeds",
        type=int,
        help="degradation: run seeds seed..seed+N-1 and record them all "
        "(default name degradation-seeds; per seed <name>-<seed>.json, reused if present)",
    )
    parser.add_argument(
        "--save-weights",
        help="degradation: folder for each net's final fp16 weights "
        "(<folder>/degradation-seed<seed>/<net>.pt), e.g. data/weights",
    )
    parser.add_argument("--save-as", help="record file name under data/runs/ (default: <experiment>[-fast].json)")
    parser.add_argument("--notes", default="")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: 1 with --fast, else torch's, = cores); "
                        "1 can be faster on a busy machine")  # fmt: skip
    args = parser.parse_args(argv)

    fast = args.fast or fast_mode()  # decided here, once, and passed down
    base = cifar10_config(fast, args.depth) if args.experiment == "cifar10" else RECIPES[args.experiment](fast)
    overrides = {"seed": args.seed}
    for field in ("batch_size", "lr", "warmup_epochs", "random_erasing", "label_smoothing", "ema_decay", "eval_every"):
        if getattr(args, field) is not None:
            overrides[field] = getattr(args, field)
    for field in ("epochs", "schedule", "tta_flip", "compile"):  # flags and options where a false value means unset
        if getattr(args, field):
            overrides[field] = getattr(args, field)
    if args.channels_last is not None:
        overrides["channels_last"] = args.channels_last == "on"
    config = replace(base, **overrides)
    default_name = {"degradation": "degradation", "family": "family", "cifar10": f"cifar10-resnet{args.depth}"}.get(
        args.experiment, "fashion-full-resnet20"
    )
    save_as = args.save_as or (default_name + ("-fast" if fast else ""))
    progress = not args.no_progress
    if args.experiment == "family":
        record = run_family(fast=fast, config=config, nets=args.nets, progress=progress, threads=args.threads,
                            save_as=save_as, notes=args.notes)  # fmt: skip
        print(format_family(record))
    elif args.experiment == "degradation" and args.seeds:
        seeds_name = args.save_as or ("degradation-seeds" + ("-fast" if fast else ""))
        record = run_degradation_seeds(range(args.seed, args.seed + args.seeds), fast=fast, config=config,
                                       save_as=seeds_name, zero_init_residual=args.zero_init_residual, nets=args.nets,
                                       progress=progress, threads=args.threads, notes=args.notes,
                                       save_weights=args.save_weights)  # fmt: skip
        for run in record["runs"].values():
            print(format_record(run))
        print(format_seeds_record(record))
        print(json.dumps(record["findings"], indent=1))
        print(f"record written to {record_path(seeds_name)}")
        return
    elif args.experiment == "degradation":
        record = run_degradation(fast=fast, config=config, zero_init_residual=args.zero_init_residual, nets=args.nets,
                                 progress=progress, threads=args.threads, save_as=save_as, notes=args.notes,
                                 save_weights=args.save_weights)  # fmt: skip
    elif args.experiment == "cifar10":
        record = run_cifar10(args.depth, data_root=args.data_root, val_size=args.val_size, fast=fast, config=config,
                             sync_bn=args.sync_bn, progress=progress, threads=args.threads, save_as=save_as,
                             notes=args.notes)  # fmt: skip
    else:
        record = run_fashion_full(fast=fast, config=config, progress=progress, threads=args.threads, save_as=save_as,
                                  notes=args.notes)  # fmt: skip
    if not runtime.processes().is_main:
        return  # under torchrun: rank 0 reports
    if args.experiment != "family":
        print(format_record(record))
    if args.experiment == "cifar10":
        print(f"paper (Table 6): {record['paper']['net']} {record['paper']['test_error']:.2f}% test error")
    if record.get("findings"):
        print(json.dumps(record["findings"], indent=1))
    print(f"total {record['total_seconds']:.0f} s; record written to {record_path(save_as)}")


if __name__ == "__main__":
    main()
