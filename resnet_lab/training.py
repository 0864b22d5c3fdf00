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
of the training steps, and validation every k-th epoch; and (``levers``) Nesterov momentum, no weight decay or
a scaled lr for the norm and bias parameters, flip + translation TTA, a Dirac or whitening first conv, and
progressive resizing.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel

from . import levers
from .checkpoints import save_checkpoint
from .data import ImageSet, Splits, batches
from .runtime import (  # noqa: F401 (use_bf16 and autocast: public here too)
    Processes,
    autocast,
    compile_unsupported,
    is_positive_int,
    pick_device,
    processes,
    same_buffers_everywhere,
    seed_everything,
    sum_over_processes,
    torch_threads,
    use_bf16,
)
from .schedules import (  # noqa: F401 (all public here too, where the course first met them)
    SCHEDULE_ALIASES,
    SCHEDULES,
    canonical_schedule,
    learning_rate,
    linear_scaling,
    step_milestones,
    steps_per_epoch,
    warmup_steps,
)


@dataclass
class TrainConfig:
    """How to train. ``epochs`` passes over the training set; lr is the peak learning rate.

    schedule (per iteration):
      "warmup_cosine": linear warm-up from lr/10 to lr over ``warmup_epochs`` (default: 15% of
                  the run), then cosine decay to 0 -- the best use of a short budget (the old
                  name "onecycle" is accepted and stored as "warmup_cosine");
      "step":     the paper's: lr, divided by 10 at 50% and 75% of the iterations;
      "cosine":   cosine decay from lr to 0;
      "constant": lr throughout;
      "triangular": linear warm-up (default 20% of the run), then linear decay to 0 (airbench's).
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
    nesterov, bn_weight_decay, bn_lr_scale, tta_translate, first_conv_init, progressive_resize: see ``levers``.
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
    nesterov: bool = False
    bn_weight_decay: bool = True  # False: no weight decay on norm-layer parameters and biases
    bn_lr_scale: float = 1.0  # norm-layer parameters and biases train at this x the lr
    tta_translate: int = 0  # with tta_flip: also average the views translated by +/- this many pixels
    first_conv_init: str | None = None  # None, "dirac" or "whiten"
    progressive_resize: tuple[int, int] | None = None  # (k, s): epochs 1..k train on s x s images

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
        if not is_positive_int(self.batch_size):
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
        if not is_positive_int(self.eval_every):
            raise ValueError(f"eval_every must be a positive integer (1 = every epoch); got {self.eval_every!r}")
        levers.check_lever_fields(self)


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


def use_channels_last(config: TrainConfig, device: torch.device, bf16: bool) -> bool:
    """channels_last where measured faster: on CUDA, and for fp32 on the CPU (not for CPU bf16)."""
    if config.channels_last is not None:
        return config.channels_last
    return device.type == "cuda" or not bf16


def predict(model: nn.Module, x: torch.Tensor, tta_flip: bool = False, tta_translate: int = 0) -> torch.Tensor:
    """The logits of ``model`` for the batch ``x``; with ``tta_flip`` the mean of the logits of ``x`` and of
    ``x`` flipped horizontally (test-time augmentation with the flip seen in training); with ``tta_translate``
    the weighted mean over six flipped and translated views (``levers.tta_views``)."""
    if tta_translate:
        return levers.predict_views(model, x, tta_translate)
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
    tta_translate: int = 0,
) -> float:
    """Error in percent of ``model`` on ``dataset`` (e.g. splits.val or splits.test), normalized with ``splits``' statistics.

    With ``group`` of several processes each evaluates every ``world_size``-th image and the counts are summed.
    ``tta_flip``, ``tta_translate``: predict from the mean logits of several views of each image (see ``predict``).
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
            wrong += (predict(model, x, tta_flip, tta_translate).argmax(dim=1) != y).sum().item()
    model.train(was_training)
    wrong, total = sum_over_processes([wrong, len(dataset)], group, device)
    return 100.0 * wrong / max(1, total)


def shard(dataset: ImageSet, group: Processes, generator: torch.Generator) -> ImageSet:
    """This process's share of ``dataset`` for one epoch: a random order drawn from ``generator`` (seeded alike
    on every rank, so all ranks draw the same order), then every ``world_size``-th image from ``rank`` on.

    Every rank gets ``len(dataset) // world_size`` images (the remainder waits for the next epoch's order),
    so all ranks take the same number of steps.
    """
    order = torch.randperm(len(dataset), generator=generator)
    per_rank = len(dataset) // group.world_size
    return dataset.select(order[group.rank :: group.world_size][:per_rank])


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
        run = _set_up(model, splits, config, device, used, group, sync_bn, checkpoint_path, description, progress)
        return _train(run)


def _train(run: _Run) -> History:
    """The training loop itself (see ``train``), once ``_set_up`` has made the ``run``: per epoch one pass of SGD
    over the training images, then the end of the epoch (evaluate, keep the best, checkpoint); then ``_finish``."""
    try:
        for epoch in range(1, run.config.epochs + 1):
            started = time.perf_counter()
            loss_sum, wrong, seen, lr = _train_one_epoch(run)
            _end_of_epoch(run, epoch, loss_sum, wrong, seen, lr, started)
    except KeyboardInterrupt:
        run.history.interrupted = True
        if run.group.is_main:
            print(f"Interrupted: returning the history of {len(run.history.epoch)} complete epochs.", file=sys.stderr)
    finally:
        run.bar.close()
    return _finish(run)


@dataclass
class _Run:
    """What the phases of one training run share (made by ``_set_up``)."""

    model: nn.Module  # the model being trained (its weights are what the optimizer updates)
    net: nn.Module  # what the training steps call: the model, or its DistributedDataParallel wrapper, compiled or not
    average: AveragedModel | None  # the moving average of the weights (``ema_decay``), else None
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    splits: Splits
    device: torch.device
    group: Processes
    bf16: bool
    memory_format: torch.memory_format
    generator: torch.Generator  # draws every epoch's order and augmentation
    per_epoch: int  # optimizer steps per epoch
    total_steps: int
    history: History
    bar: Any  # the progress bar
    description: str
    checkpoint_path: str | Path | None
    step: int = 0  # optimizer steps taken
    window_wrong: int = 0  # training mistakes and images since the last logged window (a tenth of an epoch)
    window_seen: int = 0
    compiled_shapes: set[tuple[int, ...]] = field(default_factory=set)  # batch shapes the compiled model has seen
    best_val: float = math.inf
    best_state: dict[str, torch.Tensor] | None = None  # the evaluated weights of the best epoch (``keep_best``)

    @property
    def evaluated(self) -> nn.Module:
        """What is evaluated, kept and returned: the weights, or their moving average."""
        return self.model if self.average is None else self.average.module

    @property
    def evaluation(self) -> dict[str, Any]:
        """``evaluate``'s settings for this run."""
        config = self.config
        return dict(precision=config.precision, device=self.device, group=self.group, tta_flip=config.tta_flip,
                    tta_translate=config.tta_translate)  # fmt: skip


def _set_up(
    model: nn.Module,
    splits: Splits,
    config: TrainConfig,
    device: torch.device,
    threads: int,
    group: Processes,
    sync_bn: bool,
    checkpoint_path: str | Path | None,
    description: str,
    progress: bool,
) -> _Run:
    """Seed, settle precision and memory format, move the model, wrap it (SyncBatchNorm, EMA, DDP, compile), make SGD."""
    generator = seed_everything(config.seed)
    if config.first_conv_init is not None:  # draws no random numbers
        levers.init_first_conv(model, config.first_conv_init, splits)
    bf16 = use_bf16(config.precision, device)
    channels_last = use_channels_last(config, device, bf16)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device=device, memory_format=memory_format)
    if group.distributed and sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # swaps the BN layers in place
    average = moving_average(model, config.ema_decay) if config.ema_decay is not None else None  # a copy made here
    net = model
    if group.distributed:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    net, compiled = _compiled(net, config, device)
    optimizer = levers.make_optimizer(model, config)  # SGD(model.parameters(), ...) with the levers off
    per_epoch = steps_per_epoch(len(splits.train), config.batch_size, group.world_size)
    history = History(
        device=device.type, precision="bf16" if bf16 else "fp32", channels_last=channels_last, threads=threads,
        processes=group.world_size, evaluated_weights="raw" if average is None else "ema", compiled=compiled,
    )  # fmt: skip
    bar = _progress_bar(per_epoch * config.epochs, progress and group.is_main, description)
    return _Run(
        model, net, average, optimizer, config, splits, device, group, bf16, memory_format, generator,
        per_epoch, per_epoch * config.epochs, history, bar, description, checkpoint_path,
    )  # fmt: skip


def _compiled(net: nn.Module, config: TrainConfig, device: torch.device) -> tuple[nn.Module, bool]:
    """``net`` through torch.compile when ``config.compile`` asks and this machine can (else ``net``, with a warning)."""
    if not config.compile:
        return net, False
    why_not = compile_unsupported(device)
    if why_not:
        warnings.warn(f"compile=True: {why_not}; training without it.", stacklevel=4)  # the caller of ``train``
        return net, False
    return torch.compile(
        net, dynamic=False
    ), True  # static shapes: fastest kernels; a smaller last batch compiles once more


def _train_one_epoch(run: _Run) -> tuple[float, float, float, float]:
    """One pass of SGD over the training images, a step per batch. Returns the loss summed over the images, the
    mistakes, the images seen and the last learning rate."""
    run.model.train()
    loss_sum = wrong = seen = 0.0
    for batch_index, (x, y) in enumerate(_epoch_batches(run)):
        lr = learning_rate(run.config, run.step, run.total_steps)
        for param_group in run.optimizer.param_groups:
            param_group["lr"] = lr
        with _timed_if_compiling(run, x):
            with autocast(run.device, run.bf16):
                logits = run.net(x)  # (B, num_classes)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=run.config.label_smoothing)
            run.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            run.optimizer.step()
            if run.average is not None:
                run.average.update_parameters(run.model)
        batch_wrong, batch_loss = (logits.argmax(dim=1) != y).sum().item(), loss.item()
        loss_sum += batch_loss * len(y)
        wrong += batch_wrong
        seen += len(y)
        run.step += 1
        _log_window(run, batch_index, batch_wrong, len(y))
        run.bar.update(1)
        _check_finite(run, batch_loss)
    return loss_sum, wrong, seen, lr


def _epoch_batches(run: _Run) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """This epoch's augmented, normalized batches (resized by ``progressive_resize``). One process: ``batches``
    shuffles the whole training set; several: each takes its shard of an order shared by all."""
    images, shuffle = (
        (shard(run.splits.train, run.group, run.generator), False)
        if run.group.distributed
        else (run.splits.train, True)
    )
    made = batches(
        images, run.splits.mean, run.splits.std, batch_size=run.config.batch_size, shuffle=shuffle,
        augment=run.config.augment, random_erasing=run.config.random_erasing, generator=run.generator,
        device=run.device, memory_format=run.memory_format,
    )  # fmt: skip
    size = levers.training_size(run.config.progressive_resize, run.step // run.per_epoch + 1)  # None: as they are
    return levers.resized_batches(made, size, run.memory_format)


@contextmanager
def _timed_if_compiling(run: _Run, x: torch.Tensor) -> Iterator[None]:
    """Add the seconds of the ``with`` block (one training step) to ``compile_seconds`` when the compiled model
    has not seen a batch of ``x``'s shape before (so this step compiles)."""
    compiling = run.history.compiled and tuple(x.shape) not in run.compiled_shapes
    started = time.perf_counter()
    yield
    if compiling:
        run.compiled_shapes.add(tuple(x.shape))
        run.history.compile_seconds = (run.history.compile_seconds or 0.0) + time.perf_counter() - started


def _log_window(run: _Run, batch_index: int, batch_wrong: int, batch_size: int) -> None:
    """Count the batch in the current window; after each tenth of the epoch log its training error (``History.step``)."""
    run.window_wrong += batch_wrong
    run.window_seen += batch_size
    if (batch_index + 1) * 10 // run.per_epoch > batch_index * 10 // run.per_epoch:  # a tenth of the epoch
        window_wrong, window_seen = sum_over_processes([run.window_wrong, run.window_seen], run.group, run.device)
        run.history.step.append(run.step)
        run.history.step_train_error.append(100.0 * window_wrong / window_seen)
        run.window_wrong = run.window_seen = 0


def _check_finite(run: _Run, batch_loss: float) -> None:
    """Stop with ``FloatingPointError`` when the loss is no longer a finite number (the run diverged)."""
    if not math.isfinite(batch_loss):
        raise FloatingPointError(
            f"{run.description}: the loss became {batch_loss} at iteration {run.step}; lower lr or add warm-up."
        )


def _end_of_epoch(run: _Run, epoch: int, loss_sum: float, wrong: float, seen: float, lr: float, started: float) -> None:
    """Sum the epoch over processes, evaluate (every ``eval_every``-th epoch and the last), record the epoch in the
    history, keep the best weights, show progress and save a checkpoint."""
    loss_sum, wrong, seen = sum_over_processes([loss_sum, wrong, seen], run.group, run.device)
    same_buffers_everywhere(run.model, run.group)
    if run.average is not None:
        same_buffers_everywhere(run.average.module, run.group)
    val_error = test_error = None
    if epoch % run.config.eval_every == 0 or epoch == run.config.epochs:
        val_error = evaluate(run.evaluated, run.splits.val, run.splits, **run.evaluation)
        if run.config.test_every_epoch:
            test_error = evaluate(run.evaluated, run.splits.test, run.splits, **run.evaluation)
    history = run.history
    history.epoch.append(epoch)
    history.train_loss.append(loss_sum / seen)
    history.train_error.append(100.0 * wrong / seen)
    history.val_error.append(val_error)
    history.test_error.append(test_error)
    history.lr.append(lr)
    history.seconds.append(time.perf_counter() - started)
    if val_error is not None and val_error < run.best_val:
        run.best_val, history.best_epoch = val_error, epoch
        if run.config.keep_best:
            run.best_state = copy.deepcopy(run.evaluated.state_dict())
    val_text = "" if val_error is None else f", val err {val_error:.1f}%"
    run.bar.set_postfix_str(f"epoch {epoch}: train err {history.train_error[-1]:.1f}%{val_text}")
    if run.checkpoint_path is not None and run.group.is_main:
        raw = (
            {}
            if run.average is None
            else {"raw_model": run.model.state_dict(), "ema_updates": int(run.average.n_averaged)}
        )
        save_checkpoint(
            run.checkpoint_path, run.evaluated, history=history.to_dict(), config=asdict(run.config), epoch=epoch, **raw
        )


def _finish(run: _Run) -> History:
    """Leave the returned weights in the model (the best epoch's with ``keep_best``, else the moving average with
    ``ema_decay``), measure the final test error if no epoch did, restore the default memory format."""
    model, config, history = run.model, run.config, run.history
    if config.keep_best and run.best_state is not None:
        model.load_state_dict(run.best_state)
    elif run.average is not None:
        model.load_state_dict(run.average.module.state_dict())
    if history.epoch:
        final_epoch = history.best_epoch if config.keep_best and run.best_state is not None else history.epoch[-1]
        history.final_test_error = history.test_error[final_epoch - 1]
        if history.final_test_error is None:  # test_every_epoch=False, or that epoch was not evaluated
            history.final_test_error = evaluate(model, run.splits.test, run.splits, **run.evaluation)
    model.to(memory_format=torch.contiguous_format)
    return history
