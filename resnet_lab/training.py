"""One readable training loop: the paper's recipe scaled to a laptop budget.

    history = train(model, splits, TrainConfig(epochs=10))

SGD with momentum 0.9 and weight decay 1e-4, batch 128, peak learning rate 0.1 with a
per-iteration schedule, pad-4 random crops and horizontal flips. Errors are in percent.
Ctrl-C (KeyboardInterrupt) stops training and returns the history so far.

The same ``train`` runs unchanged under ``torchrun --nproc_per_node=N``: it joins the process group
torchrun describes (gloo on the CPU, NCCL on GPUs), wraps the model in ``DistributedDataParallel``,
gives each process its share of the in-memory data (a new order each epoch, the same on every rank
from the shared seed), sums the evaluation over processes, and only rank 0 shows progress and writes
checkpoints. ``batch_size`` is then per process: the global batch is ``N * batch_size``.

Levers for a faster recipe, each off by default (``TrainConfig``): label smoothing, an exponential moving
average of the weights (EMA) evaluated instead of the raw weights, test-time flip averaging, torch.compile
of the training steps, and validation every k-th epoch.
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel

from .checkpoints import save_checkpoint
from .data import ImageSet, Splits, batches
from .runtime import Processes, pick_device, processes, seed_everything, torch_threads

SCHEDULES = ("warmup_cosine", "step", "cosine", "constant")
# Old names that still work. "onecycle" was this course's first name for warm-up + cosine; it is not
# Smith's one-cycle policy (no momentum cycle, no annealing below the start), so it was renamed.
SCHEDULE_ALIASES = {"onecycle": "warmup_cosine"}


@dataclass
class TrainConfig:
    """How to train. ``epochs`` passes over the training set; lr is the peak learning rate.

    schedule (per iteration):
      "warmup_cosine": linear warm-up from lr/10 to lr over ``warmup_epochs`` (default: 15% of
                  the run), then cosine decay to 0 -- the best use of a short budget (the old
                  name "onecycle" is accepted and stored as "warmup_cosine");
      "step":     the paper's: lr, divided by 10 at 50% and 75% of the iterations;
      "cosine":   cosine decay from lr to 0;
      "constant": lr throughout.
    "step", "cosine" and "constant" also take ``warmup_epochs`` (the paper warms ResNet-110 up
    at lr 0.01). precision: "bf16" (autocast, conv/linear in bfloat16), "fp32" or "auto" (bf16
    where the hardware does it natively). channels_last: None = where it is faster.
    augment: pad-4 random crops and horizontal flips; random_erasing: with ``augment``, the
    probability that a training image also gets a random rectangle erased (0 = off; Zhong et
    al. 2017 use 0.5).

    Levers, all off by default:
    label_smoothing: the training loss is cross-entropy against targets smoothed by this much (Szegedy
      et al. 2016 use 0.1); ``History.train_loss`` is that smoothed loss. Evaluation is unchanged.
    ema_decay: keep an exponential moving average of the weights and BN buffers, updated after every
      step (``avg = decay * avg + (1 - decay) * weights``; the first step copies), and evaluate, keep
      (``keep_best``), checkpoint and return it instead of the raw weights (``History.evaluated_weights``).
      Typical: 0.99-0.999; the average spans about 1 / (1 - decay) steps.
    tta_flip: evaluation (validation and test) averages the logits of each image and its horizontal flip.
    compile: train through ``torch.compile(model)`` (after the DistributedDataParallel wrapper under
      torchrun); evaluation stays eager. The first step compiles (seconds to minutes), and a smaller last
      batch compiles once more; ``History.compiled`` and ``History.compile_seconds`` record it.
    eval_every: evaluate on validation (and test, with ``test_every_epoch``) every k-th epoch and at the
      last one; other epochs record None. ``keep_best`` picks among the evaluated epochs.
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "warmup_cosine"
    warmup_epochs: float | None = None
    augment: bool = True
    random_erasing: float = 0.0
    precision: str = "auto"
    channels_last: bool | None = None
    test_every_epoch: bool = True
    keep_best: bool = False
    seed: int = 0
    label_smoothing: float = 0.0
    ema_decay: float | None = None
    tta_flip: bool = False
    compile: bool = False
    eval_every: int = 1

    def __post_init__(self) -> None:
        self.schedule = canonical_schedule(self.schedule)
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}; got {self.schedule!r}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be 'auto', 'bf16' or 'fp32'; got {self.precision!r}")
        if not 0.0 <= self.random_erasing <= 1.0:
            raise ValueError(f"random_erasing is a probability in [0, 1]; got {self.random_erasing}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1; got {self.epochs}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer (the paper's is 128); got {self.batch_size!r}")
        if not self.lr > 0:  # also catches NaN
            raise ValueError(f"lr must be > 0 (it is the peak learning rate; the paper's is 0.1); got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1) (the paper's is 0.9); got {self.momentum}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0 (the paper's is 1e-4); got {self.weight_decay}")
        if not 0.0 <= self.label_smoothing < 1.0:  # also catches NaN
            raise ValueError(f"label_smoothing must be in [0, 1) (0 = off; 0.1 is common); got {self.label_smoothing}")
        if self.ema_decay is not None and (isinstance(self.ema_decay, bool) or not 0.0 < self.ema_decay < 1.0):
            raise ValueError(f"ema_decay must be None (no EMA) or in (0, 1), e.g. 0.999; got {self.ema_decay!r}")
        for name in ("tta_flip", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False; got {getattr(self, name)!r}")
        if isinstance(self.eval_every, bool) or not isinstance(self.eval_every, int) or self.eval_every < 1:
            raise ValueError(f"eval_every must be a positive integer (1 = every epoch); got {self.eval_every!r}")


@dataclass
class History:
    """What happened, per epoch (lists of equal length) and per logged iteration window.

    Errors are percentages. ``test_error`` holds None for epochs where the test set was not
    evaluated (``TrainConfig.test_every_epoch=False``), ``val_error`` and ``test_error`` None for epochs
    skipped by ``TrainConfig.eval_every``. ``train_error`` is measured on the fly on
    the augmented batches of the epoch, as the paper's training curves are. ``device``,
    ``precision`` ("bf16" or "fp32"), ``channels_last`` and ``threads`` are what ``train`` settled
    on (``TrainConfig`` may say "auto"), so a history says how it was made. ``evaluated_weights``
    is "ema" when the moving average of the weights was evaluated (``TrainConfig.ema_decay``), else
    "raw". ``compiled`` says whether training ran through torch.compile, and ``compile_seconds`` how
    long the steps that compiled took (the first step, plus the first of a smaller last batch).
    """

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_error: list[float] = field(default_factory=list)
    val_error: list[float | None] = field(default_factory=list)
    test_error: list[float | None] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    # finer training curve: error over windows of iterations, for Figure-6 style plots
    step: list[int] = field(default_factory=list)
    step_train_error: list[float] = field(default_factory=list)
    interrupted: bool = False
    best_epoch: int | None = None  # epoch with the lowest validation error
    final_test_error: float | None = None  # test error of the returned model
    device: str | None = None  # e.g. "cpu", "cuda"
    precision: str | None = None  # "bf16" (autocast) or "fp32"
    channels_last: bool | None = None
    threads: int | None = None  # torch CPU threads during training
    processes: int | None = None  # training processes (torchrun's world size; 1 without it)
    evaluated_weights: str | None = None  # "raw" or "ema" (the moving average of the weights)
    compiled: bool | None = None  # trained through torch.compile
    compile_seconds: float | None = None  # seconds of the steps that compiled (None without compile)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> History:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def summary(self) -> str:
        """A small text table, one row per epoch."""
        rows = [f"{'epoch':>5} {'loss':>7} {'train err%':>10} {'val err%':>9} {'test err%':>9} {'lr':>8} {'sec':>6}"]
        for i in range(len(self.epoch)):
            val, test = ("-" if e is None else f"{e:.2f}" for e in (self.val_error[i], self.test_error[i]))
            rows.append(
                f"{self.epoch[i]:>5} {self.train_loss[i]:>7.4f} {self.train_error[i]:>10.2f} "
                f"{val:>9} {test:>9} {self.lr[i]:>8.4f} {self.seconds[i]:>6.1f}"
            )
        if self.interrupted:
            rows.append(f"(interrupted after {len(self.epoch)} complete epochs)")
        return "\n".join(rows)


def canonical_schedule(name: str) -> str:
    """The current name of a schedule: "onecycle" (old name, e.g. in older records) -> "warmup_cosine"."""
    return SCHEDULE_ALIASES.get(name, name)


def steps_per_epoch(train_images: int, batch_size: int, world_size: int = 1) -> int:
    """Optimizer steps in one epoch: each of ``world_size`` processes takes ``train_images // world_size`` images
    in batches of ``batch_size`` (the last batch may be smaller). One step uses ``world_size * batch_size`` images."""
    return math.ceil(train_images // world_size / batch_size)


def linear_scaling(lr: float, global_batch: int, reference_batch: int = 128) -> float:
    """Goyal et al. 2017's linear scaling rule: ``lr`` is right for ``reference_batch`` images per step, so use
    ``lr * global_batch / reference_batch`` for ``global_batch`` (with a few epochs of warm-up when it is larger)."""
    return lr * global_batch / reference_batch


def warmup_steps(config: TrainConfig, total_steps: int) -> int:
    """Iterations of linear warm-up (from lr/10 to lr) at the start of a run of ``total_steps``."""
    warmup_epochs = config.warmup_epochs
    if warmup_epochs is None:
        warmup_epochs = 0.15 * config.epochs if canonical_schedule(config.schedule) == "warmup_cosine" else 0.0
    return int(round(warmup_epochs * (total_steps / config.epochs)))  # as the schedule always computed it


def step_milestones(config: TrainConfig, total_steps: int) -> list[int]:
    """The iterations (0-based) at which the "step" schedule divides the learning rate by 10: after the
    warm-up, at 50% and 75% of the remaining iterations (the paper's 32k and 48k of 64k). [] for other schedules."""
    if canonical_schedule(config.schedule) != "step":
        return []
    warmup = warmup_steps(config, total_steps)
    remaining = max(1, total_steps - warmup)
    drops = [warmup + -(-remaining // 2), warmup + -(-3 * remaining // 4)]  # ceil: the first step at or past 50%, 75%
    return [step for step in drops if step < total_steps]


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate at iteration ``step`` (0-based) of ``total_steps``."""
    schedule = canonical_schedule(config.schedule)
    warmup = warmup_steps(config, total_steps)
    if step < warmup:
        return config.lr * (0.1 + 0.9 * step / warmup)
    progress = (step - warmup) / max(1, total_steps - warmup)
    if schedule in ("warmup_cosine", "cosine"):
        return config.lr * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "step":
        return config.lr * (0.01 if progress >= 0.75 else 0.1 if progress >= 0.5 else 1.0)
    return config.lr


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether to autocast to bfloat16: ``precision`` is "bf16", or "auto" and the hardware has native bf16."""
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def use_channels_last(config: TrainConfig, device: torch.device, bf16: bool) -> bool:
    """channels_last where measured faster: on CUDA, and for fp32 on the CPU (not for CPU bf16)."""
    if config.channels_last is not None:
        return config.channels_last
    return device.type == "cuda" or not bf16


def autocast(device: torch.device, bf16: bool) -> torch.autocast:
    """Autocast to bfloat16 on ``device`` when ``bf16``, else a no-op context."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def predict(model: nn.Module, x: torch.Tensor, tta_flip: bool = False) -> torch.Tensor:
    """The logits of ``model`` for the batch ``x``; with ``tta_flip`` the mean of the logits of ``x`` and of
    ``x`` flipped horizontally (test-time augmentation with the flip seen in training)."""
    logits = model(x)
    if tta_flip:
        logits = (logits + model(x.flip(-1))) / 2
    return logits


def evaluate(
    model: nn.Module,
    dataset: ImageSet,
    splits: Splits,
    *,
    batch_size: int = 500,
    precision: str = "auto",
    device: torch.device | None = None,
    group: Processes | None = None,
    tta_flip: bool = False,
) -> float:
    """Error in percent of ``model`` on ``dataset`` (e.g. splits.val or splits.test), normalized with ``splits``' statistics.

    With ``group`` of several processes each evaluates every ``world_size``-th image and the counts are summed.
    ``tta_flip``: predict from the mean logits of each image and its horizontal flip (see ``predict``).
    """
    device = device or next(model.parameters()).device
    group = group or Processes()
    if group.distributed:
        dataset = dataset.select(torch.arange(group.rank, len(dataset), group.world_size))
    bf16 = use_bf16(precision, device)
    was_training = model.training
    model.eval()
    wrong = 0
    with torch.inference_mode(), autocast(device, bf16):
        for x, y in batches(dataset, splits.mean, splits.std, batch_size=batch_size, device=device):
            wrong += (predict(model, x, tta_flip).argmax(dim=1) != y).sum().item()
    model.train(was_training)
    wrong, total = _sum_over_processes([wrong, len(dataset)], group, device)
    return 100.0 * wrong / max(1, total)


def _sum_over_processes(values: list[float], group: Processes, device: torch.device) -> list[float]:
    """``values`` summed over all processes (all-reduce); unchanged in a single process."""
    if not group.distributed:
        return values
    totals = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(totals)
    return totals.tolist()


def shard(dataset: ImageSet, group: Processes, generator: torch.Generator) -> ImageSet:
    """This process's share of ``dataset`` for one epoch: a random order drawn from ``generator`` (seeded alike
    on every rank, so all ranks draw the same order), then every ``world_size``-th image from ``rank`` on.

    Every rank gets ``len(dataset) // world_size`` images (the remainder waits for the next epoch's order),
    so all ranks take the same number of steps.
    """
    order = torch.randperm(len(dataset), generator=generator)
    per_rank = len(dataset) // group.world_size
    return dataset.select(order[group.rank :: group.world_size][:per_rank])


def _same_buffers_everywhere(model: nn.Module, group: Processes) -> None:
    """Copy rank 0's BN running statistics to every rank, so all processes evaluate and return the same model."""
    if group.distributed:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def compile_unsupported(device: torch.device) -> str | None:
    """Why torch.compile cannot train here, or None when it can (on the CPU it needs a C++ compiler)."""
    try:
        import torch._dynamo
    except ImportError:
        return f"torch {torch.__version__} has no torch.compile"
    if not torch._dynamo.is_dynamo_supported():
        return f"torch {torch.__version__} cannot compile on this Python or platform"
    if device.type == "cpu" and not (os.environ.get("CXX") or any(shutil.which(c) for c in ("g++", "clang++", "c++"))):
        return "torch.compile on the CPU needs a C++ compiler (g++ or clang++) and none was found"
    return None


def moving_average(model: nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of ``model``'s weights and buffers (BN running statistics).

    ``average.update_parameters(model)`` after each step sets every floating-point tensor to
    ``decay * average + (1 - decay) * current`` (the first call copies) and copies integer buffers
    (BN's step counter). ``average.module`` is a model of the same class holding the average.
    """

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], _updates: torch.Tensor) -> None:
        for avg, now in zip(averaged, current):  # one dtype per call: all floating point, or all integer
            if avg.is_floating_point():
                avg.lerp_(now, 1.0 - decay)  # avg + (1 - decay) * (now - avg)
            else:
                avg.copy_(now)

    return AveragedModel(model, multi_avg_fn=update, use_buffers=True)


def _progress_bar(total: int, enabled: bool, description: str):
    """tqdm.auto (a widget in notebooks) normally; plain text under CI; a no-op when disabled."""
    if os.environ.get("CI"):
        from tqdm.std import tqdm
    else:
        from tqdm.auto import tqdm
    return tqdm(total=total, disable=not enabled, desc=description, unit="batch", file=sys.stderr, leave=True)


def train(
    model: nn.Module,
    splits: Splits,
    config: TrainConfig | None = None,
    *,
    progress: bool = True,
    device: torch.device | str | None = None,
    threads: int | None = None,
    sync_bn: bool = False,
    checkpoint_path: str | Path | None = None,
    description: str | None = None,
) -> History:
    """Train ``model`` on ``splits.train`` (images (N, C, H, W)), evaluate on val (and test) each epoch.

    Everything the run does is in the arguments: ``config`` (epochs, batch size, precision, ...),
    ``device`` (None: the GPU if there is one), ``threads`` (torch CPU threads while training, the
    count restored after; None: leave torch's setting). The environment is not consulted: to train
    less under the test suite, pass fewer epochs and smaller splits.
    progress: a tqdm progress bar. checkpoint_path: saved atomically after every epoch.
    Under torchrun (see the module docstring) ``sync_bn=True`` normalises with batch statistics over all
    processes (``SyncBatchNorm``; CUDA only, torch refuses it on the CPU).
    Returns a ``History``, including the precision, memory format and threads it settled on; on
    KeyboardInterrupt returns the history of the complete epochs so far (the model keeps its
    weights). With ``keep_best`` the weights of the best validation epoch are restored at the end.
    With ``ema_decay`` the returned model holds the moving average (the weights that were evaluated),
    and a checkpoint stores it as its model and the raw weights as ``raw_model``.
    The test set is evaluated every (evaluated) epoch (``test_every_epoch``) or once at the end on the
    returned model (``History.final_test_error``).
    """
    config = config or TrainConfig()
    device = torch.device(device) if device is not None else pick_device()
    description = description or str(getattr(model, "description", type(model).__name__))
    group = processes()
    if group.distributed and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", group.local_rank)
    if sync_bn and device.type != "cuda":
        raise ValueError(
            "sync_bn=True needs CUDA: torch's SyncBatchNorm refuses CPU tensors. On the CPU leave it off "
            "(each process then normalises its own batch of batch_size images)."
        )
    with torch_threads(threads) as used:
        return _train(model, splits, config, progress, device, used, group, sync_bn, checkpoint_path, description)


def _train(
    model: nn.Module,
    splits: Splits,
    config: TrainConfig,
    progress: bool,
    device: torch.device,
    threads: int,
    group: Processes,
    sync_bn: bool,
    checkpoint_path: str | Path | None,
    description: str,
) -> History:
    """The training loop itself (see ``train``)."""
    generator = seed_everything(config.seed)
    bf16 = use_bf16(config.precision, device)
    channels_last = use_channels_last(config, device, bf16)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    model.to(device=device, memory_format=memory_format)
    if group.distributed and sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # swaps the BN layers in place
    # what is evaluated, kept and returned: the weights, or their moving average (a copy made here)
    average = moving_average(model, config.ema_decay) if config.ema_decay is not None else None
    evaluated = model if average is None else average.module
    net = model  # what the training steps call: the model, or its DistributedDataParallel wrapper, compiled or not
    if group.distributed:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    compiled = False
    if config.compile:
        why_not = compile_unsupported(device)
        if why_not:
            warnings.warn(f"compile=True: {why_not}; training without it.", stacklevel=3)
        else:  # static shapes: fastest kernels; a smaller last batch compiles once more
            net, compiled = torch.compile(net, dynamic=False), True
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    per_epoch = steps_per_epoch(len(splits.train), config.batch_size, group.world_size)
    total_steps = per_epoch * config.epochs
    history = History(
        device=device.type, precision="bf16" if bf16 else "fp32", channels_last=channels_last, threads=threads,
        processes=group.world_size, evaluated_weights="raw" if average is None else "ema", compiled=compiled,
    )  # fmt: skip
    compiled_shapes: set[tuple[int, ...]] = set()  # batch shapes the compiled model has seen
    best_val, best_state = math.inf, None
    evaluation = dict(precision=config.precision, device=device, group=group, tta_flip=config.tta_flip)
    step = 0
    bar = _progress_bar(total_steps, progress and group.is_main, description)
    try:
        for epoch in range(1, config.epochs + 1):
            started = time.perf_counter()
            model.train()
            loss_sum = wrong = seen = 0.0
            window_wrong = window_seen = 0
            # one process: batches() shuffles the whole set; several: each takes its shard of a shared order
            images, shuffle = (
                (shard(splits.train, group, generator), False) if group.distributed else (splits.train, True)
            )
            epoch_batches = batches(
                images, splits.mean, splits.std, batch_size=config.batch_size, shuffle=shuffle,
                augment=config.augment, random_erasing=config.random_erasing, generator=generator, device=device, memory_format=memory_format,
            )  # fmt: skip
            for batch_index, (x, y) in enumerate(epoch_batches):
                lr = learning_rate(config, step, total_steps)
                for param_group in optimizer.param_groups:
                    param_group["lr"] = lr
                compiling = compiled and tuple(x.shape) not in compiled_shapes
                step_started = time.perf_counter()
                with autocast(device, bf16):
                    logits = net(x)  # (B, num_classes)
                    loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if average is not None:
                    average.update_parameters(model)
                if compiling:
                    compiled_shapes.add(tuple(x.shape))
                    history.compile_seconds = (history.compile_seconds or 0.0) + time.perf_counter() - step_started

                batch_wrong = (logits.argmax(dim=1) != y).sum().item()
                batch_loss = loss.item()
                loss_sum += batch_loss * len(y)
                wrong += batch_wrong
                seen += len(y)
                window_wrong += batch_wrong
                window_seen += len(y)
                step += 1
                if (batch_index + 1) * 10 // per_epoch > batch_index * 10 // per_epoch:  # a tenth of the epoch
                    window_wrong, window_seen = _sum_over_processes([window_wrong, window_seen], group, device)
                    history.step.append(step)
                    history.step_train_error.append(100.0 * window_wrong / window_seen)
                    window_wrong = window_seen = 0
                bar.update(1)
                if not math.isfinite(batch_loss):
                    raise FloatingPointError(
                        f"{description}: the loss became {batch_loss} at iteration {step}; lower lr or add warm-up."
                    )

            loss_sum, wrong, seen = _sum_over_processes([loss_sum, wrong, seen], group, device)
            _same_buffers_everywhere(model, group)
            if average is not None:
                _same_buffers_everywhere(average.module, group)
            val_error = test_error = None
            if epoch % config.eval_every == 0 or epoch == config.epochs:
                val_error = evaluate(evaluated, splits.val, splits, **evaluation)
                if config.test_every_epoch:
                    test_error = evaluate(evaluated, splits.test, splits, **evaluation)
            history.epoch.append(epoch)
            history.train_loss.append(loss_sum / seen)
            history.train_error.append(100.0 * wrong / seen)
            history.val_error.append(val_error)
            history.test_error.append(test_error)
            history.lr.append(lr)
            history.seconds.append(time.perf_counter() - started)
            if val_error is not None and val_error < best_val:
                best_val, history.best_epoch = val_error, epoch
                if config.keep_best:
                    best_state = copy.deepcopy(evaluated.state_dict())
            val_text = "" if val_error is None else f", val err {val_error:.1f}%"
            bar.set_postfix_str(f"epoch {epoch}: train err {history.train_error[-1]:.1f}%{val_text}")
            if checkpoint_path is not None and group.is_main:
                raw = (
                    {} if average is None else {"raw_model": model.state_dict(), "ema_updates": int(average.n_averaged)}
                )
                save_checkpoint(
                    checkpoint_path, evaluated, history=history.to_dict(), config=asdict(config), epoch=epoch, **raw
                )
    except KeyboardInterrupt:
        history.interrupted = True
        if group.is_main:
            print(f"Interrupted: returning the history of {len(history.epoch)} complete epochs.", file=sys.stderr)
    finally:
        bar.close()
    if config.keep_best and best_state is not None:
        model.load_state_dict(best_state)
    elif average is not None:
        model.load_state_dict(average.module.state_dict())
    if history.epoch:
        final_epoch = history.best_epoch if config.keep_best and best_state is not None else history.epoch[-1]
        history.final_test_error = history.test_error[final_epoch - 1]
        if history.final_test_error is None:  # test_every_epoch=False, or that epoch was not evaluated
            history.final_test_error = evaluate(model, splits.test, splits, **evaluation)
    model.to(memory_format=torch.contiguous_format)
    return history
