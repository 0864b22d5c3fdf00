"""The learning-rate schedule, per iteration, and the counts it is computed from.

    learning_rate(config, step, total_steps)   # the rate at iteration ``step`` (0-based) of a ``TrainConfig`` run

``config`` is a ``training.TrainConfig``. Its ``__post_init__`` stores the schedule's current name, but a
config whose field was set after construction (an older pickle) may still say "onecycle", so the functions
here read ``canonical_schedule(config.schedule)``. ``training`` re-exports every name here.

The schedules (``TrainConfig.schedule``), each after an optional linear warm-up from lr/10 to lr:
  "warmup_cosine" (warm-up 15% of the run by default), then cosine decay to 0;
  "triangular" (warm-up 20% of the run by default), then linear decay, reaching 0 at step total_steps (one
      past the last iteration): the short
      triangular schedule of airbench (Jordan 2024); airbench warms up from 0.2 lr, this course from lr/10;
  "step": the paper's, lr / 10 at 50% and 75% of the iterations after the warm-up; "cosine"; "constant".
"""

from __future__ import annotations

import math
from typing import Protocol


class ScheduleConfig(Protocol):
    """The fields of a ``training.TrainConfig`` that the schedule reads."""

    epochs: int
    lr: float
    schedule: str
    warmup_epochs: float | None


SCHEDULES = ("warmup_cosine", "step", "cosine", "constant", "triangular")
# Warm-up (fraction of the run) when ``warmup_epochs`` is None; the other schedules start at their peak.
DEFAULT_WARMUP_FRACTION = {"warmup_cosine": 0.15, "triangular": 0.2}
# Old names that still work. "onecycle" was this course's first name for warm-up + cosine; it is not
# Smith's one-cycle policy (no momentum cycle, no annealing below the start), so it was renamed.
SCHEDULE_ALIASES = {"onecycle": "warmup_cosine"}


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


def warmup_steps(config: ScheduleConfig, total_steps: int) -> int:
    """Iterations of linear warm-up (from lr/10 to lr) at the start of a run of ``total_steps``."""
    warmup_epochs = config.warmup_epochs
    if warmup_epochs is None:
        warmup_epochs = DEFAULT_WARMUP_FRACTION.get(canonical_schedule(config.schedule), 0.0) * config.epochs
    return int(round(warmup_epochs * (total_steps / config.epochs)))  # as the schedule always computed it


def step_milestones(config: ScheduleConfig, total_steps: int) -> list[int]:
    """The iterations (0-based) at which the "step" schedule divides the learning rate by 10: after the
    warm-up, at 50% and 75% of the remaining iterations (the paper's 32k and 48k of 64k). [] for other schedules."""
    if canonical_schedule(config.schedule) != "step":
        return []
    warmup = warmup_steps(config, total_steps)
    remaining = max(1, total_steps - warmup)
    drops = [warmup + -(-remaining // 2), warmup + -(-3 * remaining // 4)]  # ceil: the first step at or past 50%, 75%
    return [step for step in drops if step < total_steps]


def learning_rate(config: ScheduleConfig, step: int, total_steps: int) -> float:
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
    if schedule == "triangular":
        return config.lr * (1.0 - progress)
    return config.lr
