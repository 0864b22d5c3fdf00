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
"""

from __future__ import annotations

import copy
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

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


@dataclass
class History:
    """What happened, per epoch (lists of equal length) and per logged iteration window.

    Errors are percentages. ``test_error`` holds None for epochs where the test set was not
    evaluated (``TrainConfig.test_every_epoch=False``). ``train_error`` is measured on the fly on
    the augmented batches of the epoch, as the paper's training curves are. ``device``,
    ``precision`` ("bf16" or "fp32"), ``channels_last`` and ``threads`` are what ``train`` settled
    on (``TrainConfig`` may say "auto"), so a history says how it was made.
    """

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_error: list[float] = field(default_factory=list)
    val_error: list[float] = field(default_factory=list)
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
            test = "-" if self.test_error[i] is None else f"{self.test_error[i]:.2f}"
            rows.append(
                f"{self.epoch[i]:>5} {self.train_loss[i]:>7.4f} {self.train_error[i]:>10.2f} "
                f"{self.val_error[i]:>9.2f} {test:>9} {self.lr[i]:>8.4f} {self.seconds[i]:>6.1f}"
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


def evaluate(
    model: nn.Module,
    dataset: ImageSet,
    splits: Splits,
    *,
    batch_size: int = 500,
    precision: str = "auto",
    device: torch.device | None = None,
    group: Processes | None = None,
) -> float:
    """Error in percent of ``model`` on ``dataset`` (e.g. splits.val or splits.test), normalized with ``splits``' statistics.

    With ``group`` of several processes each evaluates every ``world_size``-th image and the counts are summed.
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
            wrong += (model(x).argmax(dim=1) != y).sum().item()
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
    The test set is evaluated every epoch (``test_every_epoch``) or once at the end on the returned
    model (``History.final_test_error``).
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
    net = model  # what the training steps call: the model, or its DistributedDataParallel wrapper
    if group.distributed:
        if sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # swaps the BN layers in place
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    per_epoch = steps_per_epoch(len(splits.train), config.batch_size, group.world_size)
    total_steps = per_epoch * config.epochs
    history = History(
        device=device.type, precision="bf16" if bf16 else "fp32", channels_last=channels_last, threads=threads,
        processes=group.world_size,
    )  # fmt: skip
    best_val, best_state = math.inf, None
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
                with autocast(device, bf16):
                    logits = net(x)  # (B, num_classes)
                    loss = F.cross_entropy(logits.float(), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

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
            val_error = evaluate(model, splits.val, splits, precision=config.precision, device=device, group=group)
            test_error = (
                evaluate(model, splits.test, splits, precision=config.precision, device=device, group=group)
                if config.test_every_epoch
                else None
            )
            history.epoch.append(epoch)
            history.train_loss.append(loss_sum / seen)
            history.train_error.append(100.0 * wrong / seen)
            history.val_error.append(val_error)
            history.test_error.append(test_error)
            history.lr.append(lr)
            history.seconds.append(time.perf_counter() - started)
            if val_error < best_val:
                best_val, history.best_epoch = val_error, epoch
                if config.keep_best:
                    best_state = copy.deepcopy(model.state_dict())
            bar.set_postfix_str(f"epoch {epoch}: train err {history.train_error[-1]:.1f}%, val err {val_error:.1f}%")
            if checkpoint_path is not None and group.is_main:
                save_checkpoint(checkpoint_path, model, history=history.to_dict(), config=asdict(config), epoch=epoch)
    except KeyboardInterrupt:
        history.interrupted = True
        if group.is_main:
            print(f"Interrupted: returning the history of {len(history.epoch)} complete epochs.", file=sys.stderr)
    finally:
        bar.close()
    if config.keep_best and best_state is not None:
        model.load_state_dict(best_state)
    if history.epoch and not config.test_every_epoch:
        history.final_test_error = evaluate(
            model, splits.test, splits, precision=config.precision, device=device, group=group
        )
    elif history.epoch:
        final_epoch = history.best_epoch if config.keep_best and best_state is not None else history.epoch[-1]
        history.final_test_error = history.test_error[final_epoch - 1]
    model.to(memory_format=torch.contiguous_format)
    return history
