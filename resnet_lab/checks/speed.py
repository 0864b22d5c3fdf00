"""Checkers for the exercises of notebook 13 (training faster: a schedule, an average of the weights, TTA).

* :func:`triangular_lr`: the triangular learning rate at one iteration, ``fn(step, total_steps, peak_lr) -> float``;
* :func:`ema_update`: one update of an exponential moving average of a model, in place,
  ``fn(average, model, decay) -> None``;
* :func:`flip_tta`: test-time augmentation with the horizontal flip, ``fn(model, images) -> (N, classes) logits``.

``triangular_lr`` compares every step of a few schedules with ``schedules.learning_rate`` (schedule
"triangular", default warm-up); ``ema_update`` runs several consecutive updates on a pair of CIFAR ResNet-8s
with different weights and BN statistics and compares every parameter and buffer of the average with
``decay * average + (1 - decay) * model`` (what ``training.moving_average`` does after its first copy);
``flip_tta`` compares with ``training.predict(model, images, tta_flip=True)`` in eval mode, on a ResNet-8
with BN statistics that are not 0/1 and on a plain conv net, handed over in training or in eval mode. Each
names the mistake when the result equals that of a typical wrong version, never changes the caller's random
state and prints one ``✓`` line.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .. import schedules
from ..models import cifar_resnet
from .engine import SEED, call_student, fail, fmt_shape, n_match, passed, run_configs
from .inside import _PlainNet, resnet8_with_bn_statistics
from .training import schedule_mismatch

__all__ = ["triangular_lr", "ema_update", "flip_tta"]

# --------------------------------------------------------------------------------------------------
# The triangular learning rate


def reference_triangular_lr(step: int, total_steps: int, peak_lr: float) -> float:
    """``schedules.learning_rate`` of a ``TrainConfig(schedule="triangular", lr=peak_lr)`` (default warm-up,
    round(0.2 * total_steps) iterations) at iteration ``step`` (0-based) of ``total_steps``."""
    from ..training import TrainConfig

    config = TrainConfig(epochs=10, lr=peak_lr, schedule="triangular", warmup_epochs=None)
    return schedules.learning_rate(config, step, total_steps)


def _warm(step: int, warmup: int, peak: float) -> float:
    return peak * (0.1 + 0.9 * step / warmup)


def _decay(step: int, total: int, warmup: int, peak: float) -> float:
    return peak * (1 - (step - warmup) / max(1, total - warmup))


def _with(
    warmup_of: Callable[[int], float] = lambda t: round(0.2 * t),
    warm: Callable[[int, float, float], float] | None = None,
    decay: Callable[[int, int, float, float], float] | None = None,
) -> Callable[[int, int, float], float]:
    """A triangular schedule with one part replaced: ``warmup_of(total)``, ``warm(step, warmup, peak)``,
    ``decay(step, total, warmup, peak)``."""

    def lr(step: int, total: int, peak: float) -> float:
        warmup = warmup_of(total)
        if step < warmup:
            return (warm or _warm)(step, warmup, peak)
        return (decay or _decay)(step, total, warmup, peak)

    return lr


_WRONG_LR: list[tuple[Callable[[int, int, float], float], str]] = [
    (
        _with(warm=lambda s, w, p: p * s / w),
        "the warm-up is there to avoid a large first step, but it does not start from nothing: its line starts "
        "at a tenth of the peak at step 0 (not at zero) and climbs to the peak",
    ),
    (
        _with(warmup_of=lambda t: 0),
        "the first fifth of the run is a warm-up that climbs to the peak; the linear decay only starts after it",
    ),
    (  # before the unrounded 0.2 * t: both give 0.01 for a run of one step
        _with(warmup_of=lambda t: math.ceil(0.2 * t)),
        "a warm-up lasts whole iterations, to the nearest one: 0.2 of an iteration (a run of one step) rounds to "
        "no warm-up at all, while math.ceil() makes it 1: use round()",
    ),
    (
        _with(warmup_of=lambda t: 0.2 * t),
        "the warm-up is counted in whole iterations (a step is either in it or not): 20 % of the run, rounded to "
        "the nearest whole number, round(0.2 * total_steps)",
    ),
    (
        _with(warmup_of=lambda t: int(0.2 * t)),
        "a warm-up lasts whole iterations, to the nearest one: 1.6 iterations, say, round to 2, while int() cuts "
        "them to 1: use round(), not int()",
    ),
    (  # after the roundings: round(8 / 6) is int(1.6)
        _with(warmup_of=lambda t: round(t / 6)),
        "the warm-up is 20 % of the whole run, round(0.2 * total_steps) iterations, not 20 % of the decay",
    ),
    (
        _with(decay=lambda s, t, w, p: p * (0.1 + 0.9 * (1 - (s - w) / max(1, t - w)))),
        "the triangle comes down all the way: the decay ends at zero, not at a tenth of the peak",
    ),
    (
        _with(decay=lambda s, t, w, p: p * (1 - (s - w) / max(1, t - 1 - w))),
        "off by one at the end: the line reaches zero at step == total_steps, one past the last iteration, so the "
        "last iteration still has a small positive rate: divide by total_steps - warmup",
    ),
    (
        _with(warm=lambda s, w, p: p * (0.1 + 0.9 * s / max(1, w - 1))),
        "off by one in the warm-up: its line reaches the peak at step == warmup, where the decay takes over, "
        "so the last warm-up iteration is still a little below the peak: 0.9 * step / warmup",
    ),
    (
        _with(decay=lambda s, t, w, p: p * (1 - s / t)),
        "the decay starts from the peak where the warm-up ends: its progress counts from step == warmup, "
        "(step - warmup) / (total_steps - warmup), not from step 0",
    ),
    (
        _with(decay=lambda s, t, w, p: p * (1 - (s - w) / t)),
        "the decay lasts total_steps - warmup iterations, so that it reaches zero at step == total_steps: "
        "divide by total_steps - warmup",
    ),
]


def _plain_number(where: str, value: Any) -> float:
    """``value`` as a float if it is a plain real number, else a failure that says what to return."""
    if isinstance(value, torch.Tensor):
        raise fail(
            where,
            f"returned a tensor ({value!r:.60}), expected a Python float",
            "a learning rate is a plain number (an optimizer's param_groups hold floats): compute it with Python "
            "arithmetic and the math module, or turn a one-element tensor into a float with .item()",
        )
    if value is None:
        raise fail(where, "returned None, expected a float", "end the function with `return` and the rate")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise fail(where, f"returned {type(value).__name__} {value!r:.60}, expected a float", "return a number")
    return float(value)


def _lr_error_hints(exc: BaseException) -> list[str]:
    if isinstance(exc, ZeroDivisionError):
        return [
            "a short run can have no warm-up at all (round(0.2 * 1) is 0): divide by the warm-up's length only "
            "inside the warm-up branch, where it is at least 1"
        ]
    return []


def triangular_lr(fn: Callable[[int, int, float], float], configs: Sequence[tuple[int, float]] | None = None) -> None:
    """Check ``fn(step, total_steps, peak_lr) -> float`` at every step of a few triangular schedules.

    The rate must equal ``schedules.learning_rate`` for ``schedule="triangular"`` with the default warm-up:
    round(0.2 * total_steps) iterations from peak_lr / 10 towards peak_lr, then a straight line from peak_lr
    down to 0 at step == total_steps. ``configs``: (total_steps, peak_lr) pairs; by default (710, 0.1) (the
    lesson's), (50, 0.2), (8, 1.0) (a warm-up of round(1.6) = 2) and (1, 0.1) (no warm-up at all).
    """
    checker = "triangular_lr"
    name = getattr(fn, "__name__", "your function")

    def check_one(config: tuple[int, float]) -> None:
        total, peak = config
        where = f"{checker}, total_steps={total}, peak_lr={peak}"
        got = []
        for step in range(total):
            call = f"{name}({step}, {total}, {peak})"
            value = call_student(checker, where, call, fn, step, total, peak, hints=_lr_error_hints)
            got.append(_plain_number(f"{where}: {call}", value))
        expected, bad, hints = schedule_mismatch(
            got,
            lambda t: reference_triangular_lr(t, total, peak),
            [(lambda t, wrong=wrong: wrong(t, total, peak), hint) for wrong, hint in _WRONG_LR],
            rel_tol=1e-6,
            abs_tol=1e-9,
        )
        if not bad:
            return
        s = bad[0]
        raise fail(
            where,
            f"{name}({s}, {total}, {peak}) returned {got[s]:.6g}, expected {expected[s]:.6g} "
            f"({len(bad)} of {total} steps differ)",
            hints[:1]
            or [
                "two straight lines: up from a tenth of the peak during the first fifth of the run (rounded to "
                "whole iterations), then down from the peak to zero at step == total_steps"
            ],
        )

    n = run_configs(list(configs or [(710, 0.1), (50, 0.2), (8, 1.0), (1, 0.1)]), check_one)
    passed(checker, f"{n_match(n, 'schedules')} schedules.learning_rate ('triangular') at every step")


# --------------------------------------------------------------------------------------------------
# The exponential moving average of the weights


def _perturb(model: nn.Module, generator: torch.Generator, scale: float, counter: int) -> None:
    """Move every parameter and BN statistic of ``model`` a little (as a training step would), in place, and
    add ``counter`` to its BN batch counters."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * scale)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.add_(torch.randn(m.running_mean.shape, generator=generator) * scale)
                m.running_var.mul_(torch.empty(m.running_var.shape).uniform_(0.7, 1.4, generator=generator))
                m.num_batches_tracked.add_(counter)


def _ema_pair(seed: int) -> tuple[nn.Module, nn.Module, torch.Generator]:
    """(average, model): two CIFAR ResNet-8s (1 input channel) with different weights, BN statistics and
    batch counters, both in training mode; and the generator that moves ``model`` between updates."""
    torch.manual_seed(seed)
    model = cifar_resnet(8, in_channels=1)
    torch.manual_seed(seed + 1)
    average = cifar_resnet(8, in_channels=1)
    generator = torch.Generator().manual_seed(seed + 2)
    _perturb(average, generator, 0.2, 5)
    _perturb(model, generator, 0.2, 40)
    average.train()
    model.train()
    return average, model, generator


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict(keep_vars=True).items()}


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and torch.allclose(a.double(), b.double(), rtol=1e-5, atol=1e-6)


def _all(names: Sequence[str], got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> bool:
    return bool(names) and all(_close(got[n], want[n]) for n in names)


def _ema_error_hints(exc: BaseException) -> list[str]:
    text = str(exc)
    if "leaf Variable that requires grad" in text:
        return [
            "autograd refuses to change a parameter it tracks in place: the average is not trained by "
            "backpropagation, so do the whole update inside `with torch.no_grad():`"
        ]
    if "Long" in text:
        return [
            "num_batches_tracked (in every BN layer) is an integer counter, not a weight: copy it from model "
            "instead of averaging it (tensor.is_floating_point() tells the two kinds apart)"
        ]
    return []


def ema_update(
    fn: Callable[[nn.Module, nn.Module, float], None], configs: Sequence[tuple[float, int]] | None = None
) -> None:
    """Check ``fn(average, model, decay) -> None``: one EMA update of ``average`` towards ``model``, in place.

    After each call every floating-point tensor of ``average`` (parameters and BN's running_mean and
    running_var) must be ``decay * average + (1 - decay) * model`` of its value before the call, its integer
    buffers (BN's num_batches_tracked) a copy of the model's; ``average`` must keep its own tensor objects,
    with no autograd graph and still requiring gradients, and ``model`` must not change. ``configs``:
    (decay, consecutive calls), the model moving between calls; by default (0.9, 3), (0.99, 2) and (0.7, 2),
    on two CIFAR ResNet-8s (1 input channel) with different weights, BN statistics and counters.
    """
    checker = "ema_update"
    name = getattr(fn, "__name__", "your function")

    def check_one(config: tuple[float, int]) -> None:
        decay, calls = config
        with torch.random.fork_rng(devices=[]):
            average, model, generator = _ema_pair(SEED + int(decay * 1000))
            objects = dict(average.state_dict(keep_vars=True))
            requires = {n: p.requires_grad for n, p in average.named_parameters()}
            params = list(requires)
            floats = [n for n, v in objects.items() if v.is_floating_point() and n not in requires]
            ints = [n for n, v in objects.items() if not v.is_floating_point()]
            for k in range(1, calls + 1):
                where = f"{checker}, decay={decay}, call {k} of {calls}"
                call = f"{name}(average, model, {decay})"
                before, now = _state(average), _state(model)
                result = call_student(checker, where, call, fn, average, model, decay, hints=_ema_error_hints)
                _check_ema_call(where, call, average, model, decay, result, before, now, objects, requires)
                new_module = isinstance(result, nn.Module) and result is not average
                _ema_values(where, decay, new_module, _state(average), before, now, params, floats, ints)
                _perturb(model, generator, 0.05, 3)  # a few training steps before the next update

    n = run_configs(list(configs or [(0.9, 3), (0.99, 2), (0.7, 2)]), check_one)
    passed(
        checker,
        f"{n_match(n, 'decays')} decay * average + (1 - decay) * model over consecutive calls "
        "(parameters and BN statistics in place, counters copied, no graph, model unchanged)",
    )


def _ema_values(
    where: str,
    decay: float,
    new_module: bool,
    got: dict[str, torch.Tensor],
    before: dict[str, torch.Tensor],
    now: dict[str, torch.Tensor],
    params: list[str],
    floats: list[str],
    ints: list[str],
) -> None:
    """Compare ``got`` (average's tensors after the call) with the EMA of ``before`` (average's, before) and
    ``now`` (model's); a failure naming the mistake when it recognises one if they differ. ``new_module``: the
    function returned a module other than ``average``."""

    def ema(a: float) -> dict[str, torch.Tensor]:
        return {n: a * v + (1 - a) * now[n] if v.is_floating_point() else now[n] for n, v in before.items()}

    expected, names, weights = ema(decay), params + floats + ints, params + floats
    bad = [n for n in names if not _close(got[n], expected[n])]
    if not bad:
        return
    unchanged = _all(weights, got, before)
    hints = []
    if _all(weights, got, ema(1 - decay)):
        hints.append(
            "the average should move only a little towards the model at each step: it keeps `decay` "
            "of itself and takes 1 - decay of model (you have the two weights swapped)"
        )
    elif _all(weights, got, now):
        hints.append(
            "average became a copy of model: an EMA keeps decay of its old value at every call "
            "(average already holds a model's weights, so nothing is copied first)"
        )
    elif unchanged and new_module:
        hints.append(
            "the caller keeps using its own `average`: update its tensors in place and return None "
            "(a new module you return is thrown away)"
        )
    elif unchanged:
        hints.append(
            "average did not change: assigning to a loop variable or to a copy changes nothing; "
            "change each tensor itself in place (.mul_() and .add_(), .lerp_() or .copy_())"
        )
    elif _all(params, got, expected) and _all(floats, got, before):
        hints.append(
            "only the parameters were averaged: BatchNorm's running_mean and running_var are buffers "
            "(model.buffers(), not model.parameters()) and the average needs them too, averaged the "
            "same way, or it normalises with statistics that do not match its weights"
        )
    elif _all(params, got, expected) and _all(floats, got, now):
        hints.append("BN's running_mean and running_var are averaged like the weights, not copied")
    elif _all(weights, got, expected):
        left = all(torch.equal(got[n], before[n]) for n in bad)
        hints.append(
            "num_batches_tracked (in every BN layer) counts batches: it is an integer, not a weight, "
            + ("so copy it from model (it was left as it was)" if left else "so copy it, don't average it")
        )
    worst = max(float((got[n].double() - expected[n].double()).abs().max()) for n in bad)
    raise fail(
        where,
        f"{len(bad)} of {len(names)} tensors of average differ from decay * average + (1 - decay) * "
        f"model (the first: {bad[0]}, by up to {worst:.3g})",
        hints[:1]
        or [
            "every floating-point tensor of average (weights and BN statistics) becomes decay times "
            "itself plus 1 - decay times model's; integer buffers are copied"
        ],
    )


def _check_ema_call(
    where: str,
    call: str,
    average: nn.Module,
    model: nn.Module,
    decay: float,
    result: Any,
    before: dict[str, torch.Tensor],
    now: dict[str, torch.Tensor],
    objects: dict[str, torch.Tensor],
    requires: dict[str, bool],
) -> None:
    """What must hold after one call, whatever the values: model untouched, average's own tensors, no graph."""
    after = _state(model)
    changed = [n for n, v in now.items() if not torch.equal(after[n], v)]
    if changed or any(p.grad is not None for p in model.parameters()):
        onto_model = changed and all(  # model moved towards average, with either weighting
            any(_close(after[n], d * before[n] + (1 - d) * now[n]) for d in (decay, 1 - decay))
            for n in changed
            if now[n].is_floating_point()
        )
        raise fail(
            where,
            f"{call} changed model ({len(changed)} tensors, the first: {changed[0] if changed else 'a gradient'})",
            "the arguments are (average, model, decay): the average moves, model stays as training left it"
            if onto_model
            else "only average changes: read model's tensors without writing to them",
        )
    current = dict(average.state_dict(keep_vars=True))
    replaced = [n for n, t in objects.items() if current.get(n) is not t]
    if replaced and not isinstance(result, nn.Module):
        raise fail(
            where,
            f"{call} replaced {len(replaced)} tensors of average with new ones (the first: {replaced[0]})",
            "anything that holds average's tensors (an optimizer, a hook, the caller) keeps the old ones: change "
            "the values inside each tensor in place (.mul_(), .add_(), .lerp_(), .copy_()) instead of assigning new "
            "tensors or Parameters",
        )
    graph = [(n, p.grad_fn) for n, p in average.named_parameters() if p.grad_fn is not None]
    if graph:
        raise fail(
            where,
            f"autograd recorded the update: {graph[0][0]} of average now has a grad_fn ({type(graph[0][1]).__name__})",
            "the average is never trained through backpropagation, and a recorded update keeps every step's graph "
            "alive: do the update inside `with torch.no_grad():`",
        )
    off = [n for n, p in average.named_parameters() if p.requires_grad != requires[n]]
    if off:
        raise fail(
            where,
            f"{call} switched requires_grad off for {len(off)} parameters of average (the first: {off[0]})",
            "`with torch.no_grad():` keeps autograd out of the update without changing the tensors' flags, so the "
            "average stays a normal model (to fine-tune, or to load into one)",
        )


# --------------------------------------------------------------------------------------------------
# Test-time augmentation with the horizontal flip

FlipConfig = tuple[str, str]  # (net: "resnet8" or "plain", mode handed over: "train" or "eval")


def _flip_setup(config: FlipConfig) -> tuple[nn.Module, torch.Tensor]:
    net, mode = config
    torch.manual_seed(SEED)
    if net == "resnet8":
        model: nn.Module = resnet8_with_bn_statistics()
        size = (16, 12)  # not square: a transposed view cannot pass for a flip
    else:
        model = _PlainNet()
        size = (12, 10)
    model.train(mode == "train")
    images = torch.randn(4, 1, *size, generator=torch.Generator().manual_seed(SEED + 2))
    return model, images


def _tta(model: nn.Module, images: torch.Tensor, how: str) -> torch.Tensor:
    """(N, classes): the reference logits (``training.predict`` with ``tta_flip``), or a typical mistake's, on a
    copy of ``model``."""
    from ..training import predict

    model = copy.deepcopy(model)
    model.train(how.startswith("train"))
    x, mirror = images.clone(), images.flip(-1)
    with torch.no_grad():
        if how == "reference":
            return predict(model, x, tta_flip=True)
        if how == "train_batch":
            return model(torch.cat([x, mirror])).view(2, len(x), -1).mean(dim=0)
        if how == "vertical":
            return (model(x) + model(x.flip(-2))) / 2
        if how == "both":
            return (model(x) + model(x.flip((-2, -1)))) / 2
        if how == "softmax":
            return (model(x).softmax(dim=1) + model(mirror).softmax(dim=1)) / 2
        if how == "mirror_only":
            return model(mirror)
        if how == "no_mirror":
            return model(x)
        if how == "sum":
            return model(x) + model(mirror)
        return (model(x) + model(mirror)) / 2  # train_separate


_WRONG_TTA: list[tuple[str, str]] = [
    (
        "vertical",
        "the augmentation seen in training mirrors left and right; an upside-down image is not one the net "
        "was trained on: flip the width, the last dimension (images.flip(-1)), not the height",
    ),
    ("both", "mirror left and right only: flip the last dimension (the width), not the height as well"),
    (
        "softmax",
        "average the logits (the model's raw outputs), not the softmax probabilities: the function returns "
        "what the model returns, for two views",
    ),
    ("mirror_only", "average two views: the image as it is and its mirror, not the mirror alone"),
    ("no_mirror", "the mirror image did not count: average the logits of images and of images.flip(-1)"),
    ("sum", "the mean of the two views' logits, not their sum: divide by 2"),
    (
        "train_separate",
        "in training mode BatchNorm normalises with each batch's own statistics (and updates its running ones): "
        "predictions use eval mode, model.eval(), before the forward passes",
    ),
    (
        "train_batch",
        "in training mode BatchNorm normalises with the batch's own statistics: put the model in eval mode first",
    ),
]


def flip_tta(
    fn: Callable[[nn.Module, torch.Tensor], torch.Tensor], configs: Sequence[FlipConfig] | None = None
) -> None:
    """Check ``fn(model, images) -> logits``: (N, classes), the mean of the logits of ``images`` (N, C, H, W)
    and of their horizontal mirror, in eval mode and without an autograd graph.

    ``configs``: (net, mode) pairs, net "resnet8" (a CIFAR ResNet-8, 1 input channel, 16x12 images, BN
    statistics that are not 0/1) or "plain" (two convs, 12x10 images), handed over in mode "train" or "eval";
    by default ("resnet8", "train"), ("resnet8", "eval") and ("plain", "train"). The logits must equal
    ``training.predict(model, images, tta_flip=True)`` in eval mode; the model must come back in the mode it
    was handed over in, with its weights and BN statistics unchanged, and the images unchanged.
    """
    checker = "flip_tta"
    name = getattr(fn, "__name__", "your function")

    def check_one(config: FlipConfig) -> None:
        net, mode = config
        given = "training" if mode == "train" else "eval"
        where = (
            f"{checker}, {'CIFAR ResNet-8' if net == 'resnet8' else 'a plain two-conv net'} handed over in {given} mode"
        )
        call = f"{name}(model, images)"
        with torch.random.fork_rng(devices=[]):
            model, images = _flip_setup(config)
            state, original = _state(model), images.clone()
            got = call_student(checker, where, call, fn, model, images)
            modes = {n: m.training for n, m in model.named_modules()}
            if any(training != (mode == "train") for training in modes.values()):
                now = "training" if model.training else "eval"
                raise fail(
                    where,
                    f"{call} left the model in {now} mode; it was handed over in {given} mode",
                    "note model.training before calling model.eval() and restore it with model.train(was_training) "
                    "at the end (in a finally: block), so the caller gets the model back as it was; always "
                    "calling model.train() is wrong for a model handed over in eval mode",
                )
            after = _state(model)
            changed = [n for n, v in state.items() if not torch.equal(after[n], v)]
            if changed:
                statistics = all("running_" in n or "num_batches" in n for n in changed)
                raise fail(
                    where,
                    f"{call} changed the model ({len(changed)} tensors, the first: {changed[0]})",
                    "the model's BN running statistics moved: it ran in training mode, where BatchNorm normalises "
                    "with the batch's own statistics and updates its running ones; call model.eval() first"
                    if statistics
                    else "predicting must not change the weights: no optimizer step, no in-place change of a parameter",
                )
            if not torch.equal(images, original):
                raise fail(where, f"{call} changed the images it was given", "flip a copy: images.flip(-1) is new")
            expected = _tta(model, images, "reference")
            if not isinstance(got, torch.Tensor):
                raise fail(where, f"{call} returned {type(got).__name__}, expected a tensor", "return the logits")
            if got.requires_grad:
                raise fail(
                    where,
                    f"the logits {call} returned carry an autograd graph (requires_grad=True)",
                    "a prediction needs no gradients, and the graph keeps every activation of both passes in "
                    "memory: run the forward passes inside `with torch.no_grad():`",
                )
            if got.shape != expected.shape:
                raise fail(
                    where,
                    f"logits of shape {fmt_shape(got.shape)}, expected {fmt_shape(expected.shape)}",
                    "one row of logits per image, (N, classes): average the two views' logits, do not stack them"
                    if got.dim() == 3
                    else "return the averaged logits, one row per image: (N, classes)",
                )
            got = got.detach().float()
            if torch.allclose(got, expected, rtol=1e-4, atol=1e-5):
                return
            hints = [
                hint for how, hint in _WRONG_TTA if torch.allclose(got, _tta(model, images, how), rtol=1e-4, atol=1e-5)
            ]
            problem = f"the logits differ from training.predict(..., tta_flip=True) by up to {(got - expected).abs().max().item():.3g}"
        raise fail(
            where,
            problem,
            hints[:1]
            or ["in eval mode and without gradients: the mean of model(images) and model(images mirrored left-right)"],
        )

    n = run_configs(list(configs or [("resnet8", "train"), ("resnet8", "eval"), ("plain", "train")]), check_one)
    passed(
        checker,
        f"{n_match(n, 'nets')} training.predict(tta_flip=True) (logits of each image and its mirror averaged in "
        "eval mode, no graph, model and mode as handed over)",
    )
