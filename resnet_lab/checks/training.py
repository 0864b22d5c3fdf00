"""Checkers for the exercises of notebooks 07 (degradation) and 08 (training).

* :func:`plain_twin` (07): a function that builds the plain twin of a CIFAR ResNet, with its weights;
* :func:`degradation_gaps` (07): a function that reads the 56-vs-20 gaps from a degradation record;
* :func:`warmup_cosine` (08): the warm-up + cosine learning rate at one iteration;
* :func:`train_step` (08): one SGD step (forward, loss, backward, step, zero-grad) on a tiny net;
* :func:`crop_flip` (08): the pad-crop + flip augmentation of a batch, given its random draws.

Each checker takes the student's function and ``configs=None`` (its default configurations; a teacher may
pass hidden ones), runs them through ``engine.run_configs`` and prints one ``✓`` line, or raises
``AssertionError`` with a hint that names the mistake when it recognises one.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..costs import count_parameters
from ..models import cifar_resnet
from .engine import SEED, build, call_student, fail, n_match, passed, run_configs

__all__ = ["plain_twin", "degradation_gaps", "warmup_cosine", "train_step", "crop_flip"]


def _number(checker: str, where: str, value: Any, what: str) -> float:
    """``value`` as a float if it is a real number (or a one-element tensor), else a failure naming ``what``."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach())
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise fail(checker, f"{where} returned {value!r} for {what}, expected a number", "return a number (a float)")
    return float(value)


# --------------------------------------------------------------------------------------------------
# 07: the plain twin of a ResNet


def _outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(x.clone())


def plain_twin(fn: Callable[[nn.Module], nn.Module], configs: Sequence[tuple[int, int]] | None = None) -> None:
    """Check ``fn(resnet) -> plain net``: the same CIFAR net without shortcuts, with the ResNet's weights.

    ``configs``: (depth, in_channels) pairs; by default (20, 1), (32, 1) and (20, 3). For each, the checker builds
    ``cifar_resnet(depth, in_channels)`` with random weights, calls ``fn`` on it and compares the result with
    ``cifar_resnet(depth, in_channels, residual=False)`` holding the same weights (eval mode, on a random batch).
    The ResNet given to ``fn`` must come back unchanged.
    """
    checker = "plain_twin"
    name = getattr(fn, "__name__", "your function")

    def check_one(config: tuple[int, int]) -> None:
        depth, in_channels = config
        where = f"{checker}, {name}(cifar_resnet({depth}, in_channels={in_channels}))"
        torch.manual_seed(SEED + depth)
        resnet = cifar_resnet(depth, in_channels=in_channels)
        generator = torch.Generator().manual_seed(SEED + 1)
        with torch.no_grad():  # BN statistics that are not 0 and 1, so a missing BN would show
            for module in resnet.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.running_mean.normal_(0, 0.1, generator=generator)
                    module.running_var.uniform_(0.5, 1.5, generator=generator)
        resnet.eval()
        weights = {k: v.clone() for k, v in resnet.state_dict().items()}
        x = torch.randn(2, in_channels, 16, 16, generator=generator)
        resnet_out = _outputs(resnet, x)
        reference = cifar_resnet(depth, in_channels=in_channels, residual=False)
        reference.load_state_dict(weights)
        expected = _outputs(reference, x)

        twin = build(checker, where, f"{name}(resnet)", fn, resnet)
        changed = any(not torch.equal(v, weights[k]) for k, v in resnet.state_dict().items()) or not torch.equal(
            _outputs(resnet, x), resnet_out
        )
        if twin is resnet or changed:
            raise fail(
                where,
                "the ResNet you were given was changed (or returned itself)",
                "build a new network, or work on a copy: the ResNet must stay a ResNet for the comparison",
            )
        if count_parameters(twin) != count_parameters(resnet):
            raise fail(
                where,
                f"your twin has {count_parameters(twin):,} parameters, the ResNet {count_parameters(resnet):,}",
                [
                    "a plain twin has the same depth, in_channels and number of classes as the ResNet",
                    "with option A the shortcuts have no parameters, so the twins have exactly the same ones",
                ],
            )
        twin_state = twin.state_dict()
        if set(twin_state) != set(weights) or any(
            twin_state[k].shape != v.shape or not torch.equal(twin_state[k], v) for k, v in weights.items()
        ):
            raise fail(
                where,
                "your twin's weights are not the ResNet's",
                "copy the ResNet's weights into the twin: both nets have the same layer names and shapes",
            )
        got = _outputs(twin, x)
        if got.shape != expected.shape:
            raise fail(where, f"output shape {tuple(got.shape)}, expected {tuple(expected.shape)}")
        if torch.allclose(got, resnet_out, atol=1e-6):
            raise fail(
                where,
                "your twin computes exactly what the ResNet computes",
                "the twin must not add the shortcuts: switch every block to plain (the residual switch of lesson 02)",
            )
        if not torch.allclose(got, expected, atol=1e-5, rtol=1e-4):
            raise fail(
                where,
                "same weights, but the outputs differ from the plain net's",
                "the plain twin is the same network with every shortcut removed, and nothing else changed",
            )

    with torch.random.fork_rng(devices=[]):
        n = run_configs(list(configs or [(20, 1), (32, 1), (20, 3)]), check_one)
    passed(checker, f"{n_match(n)} cifar_resnet(depth, residual=False) with the ResNet's weights (parameters, outputs)")


# --------------------------------------------------------------------------------------------------
# 07: the degradation gaps from a record


def _synthetic_record(seed: int, epochs: int = 6) -> dict[str, Any]:
    """A degradation record with made-up histories: decreasing, noisy, with a last epoch that is not the best
    and validation/test errors unlike the training errors, so each wrong reading gives another number."""
    generator = torch.Generator().manual_seed(1000 + seed)
    nets = {}
    for name, start, end in (
        ("plain-20", 60.0, 12.0),
        ("plain-56", 85.0, 20.0),
        ("ResNet-20", 55.0, 11.0),
        ("ResNet-56", 58.0, 11.5),
    ):
        end = end + float(torch.rand(1, generator=generator)) * 4
        train = [start + (end - start) * (e / (epochs - 1)) ** 0.5 for e in range(epochs)]
        train[-2] = train[-1] - 0.3 - float(torch.rand(1, generator=generator))  # the last epoch is not the lowest
        val = [t + 1.0 + 2 * float(torch.rand(1, generator=generator)) for t in train]
        test = [t + 0.5 + 2 * float(torch.rand(1, generator=generator)) for t in train]
        steps = list(range(10, 10 * (2 * epochs) + 1, 10))
        windows = [train[min(i // 2, epochs - 1)] + 2.5 * float(torch.rand(1, generator=generator)) for i in steps]
        history = {
            "epoch": list(range(1, epochs + 1)),
            "train_error": [round(t, 4) for t in train],
            "val_error": [round(v, 4) for v in val],
            "test_error": [round(t, 4) for t in test],
            "step": steps,
            "step_train_error": [round(w, 4) for w in windows],
        }
        depth = 20 if name.endswith("20") else 56
        nets[name] = {
            "depth": depth,
            "residual": name.startswith("ResNet"),
            "history": history,
            "final": {
                "train_error": history["train_error"][-1],
                "val_error": history["val_error"][-1],
                "test_error": history["test_error"][-1],
            },
        }
    return {"experiment": "degradation", "seed": seed, "nets": nets}


def _gaps(record: dict[str, Any], key: str = "train_error", pick: Callable[[list[float]], float] = lambda h: h[-1]):
    h = {name: net["history"][key] for name, net in record["nets"].items()}
    return (
        pick(h["plain-56"]) - pick(h["plain-20"]),
        pick(h["ResNet-56"]) - pick(h["ResNet-20"]),
    )


_WRONG_GAPS: list[tuple[Callable[[dict[str, Any]], tuple[float, float]], str]] = [
    (
        lambda r: tuple(-g for g in _gaps(r)),
        "the gap is the 56-layer net's error minus the 20-layer net's (you have it reversed)",
    ),
    (lambda r: _gaps(r, pick=min), "use the final epoch (the last entry of the history), not the best one"),
    (lambda r: _gaps(r, key="val_error"), "degradation is about the training error; you used the validation error"),
    (lambda r: _gaps(r, key="test_error"), "degradation is about the training error; you used the test error"),
    (
        lambda r: _gaps(r, key="step_train_error"),
        "use the training error of the last epoch (history['train_error']), not the last window of iterations",
    ),
    (lambda r: _gaps(r)[::-1], "plain_gap compares the two plain nets, resnet_gap the two ResNets (you swapped them)"),
]


def degradation_gaps(
    fn: Callable[[dict[str, Any]], dict[str, float]], configs: Sequence[dict[str, Any] | int] | None = None
) -> None:
    """Check ``fn(record) -> {"plain_gap": ..., "resnet_gap": ...}`` on degradation records.

    Each gap is the final-epoch training error (%) of the 56-layer net minus the 20-layer net's, as
    ``experiments.degradation_findings`` computes it. ``configs``: records, or integers that seed a
    made-up record; by default three made-up records whose last epoch is not their best.
    """
    checker = "degradation_gaps"
    name = getattr(fn, "__name__", "your function")

    def check_one(config: dict[str, Any] | int) -> None:
        record = _synthetic_record(config) if isinstance(config, int) else config
        label = f"seed {record.get('seed', '?')}" + (" (a made-up record)" if isinstance(config, int) else "")
        where = f"{checker}, {name}(record of {label})"
        got = call_student(checker, where, f"{name}(record)", fn, record)
        if not isinstance(got, dict) or not {"plain_gap", "resnet_gap"} <= set(got):
            raise fail(
                where,
                f"returned {type(got).__name__} {got!r:.80}, expected a dict with the keys 'plain_gap' and 'resnet_gap'",
                "return a dict: {'plain_gap': ..., 'resnet_gap': ...}",
            )
        values = (
            _number(checker, where, got["plain_gap"], "'plain_gap'"),
            _number(checker, where, got["resnet_gap"], "'resnet_gap'"),
        )
        expected = _gaps(record)
        if all(math.isclose(v, e, abs_tol=1e-6) for v, e in zip(values, expected)):
            return
        hints = [
            hint
            for wrong, hint in _WRONG_GAPS
            if all(math.isclose(v, w, abs_tol=1e-6) for v, w in zip(values, wrong(record)))
        ]
        raise fail(
            where,
            f"returned plain_gap {values[0]:+.2f}, resnet_gap {values[1]:+.2f}; "
            f"expected {expected[0]:+.2f} and {expected[1]:+.2f}",
            hints[:1] or ["each gap: final training error of the 56-layer net minus the 20-layer net's, in points"],
        )

    n = run_configs(list(configs or [0, 1, 2]), check_one)
    passed(checker, f"{n_match(n, 'records')} the final training errors' 56-minus-20 gaps of degradation_findings")


# --------------------------------------------------------------------------------------------------
# 08: the warm-up + cosine learning rate


def reference_warmup_cosine(step: int, total_steps: int, warmup_steps: int, peak_lr: float) -> float:
    """The learning rate of ``schedule="warmup_cosine"`` at ``step`` (0-based) of ``total_steps``: a linear
    warm-up from ``peak_lr / 10`` over ``warmup_steps``, then a cosine decay to zero (as ``training.learning_rate``)."""
    if step < warmup_steps:
        return peak_lr * (0.1 + 0.9 * step / warmup_steps)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return peak_lr * 0.5 * (1 + math.cos(math.pi * progress))


def _warmup_from_zero(step: int, total: int, warmup: int, peak: float) -> float:
    return peak * step / warmup if step < warmup else reference_warmup_cosine(step, total, warmup, peak)


def _no_warmup(step: int, total: int, warmup: int, peak: float) -> float:
    return peak * 0.5 * (1 + math.cos(math.pi * step / max(1, total)))


def _cosine_over_total(step: int, total: int, warmup: int, peak: float) -> float:
    if step < warmup:
        return reference_warmup_cosine(step, total, warmup, peak)
    return peak * 0.5 * (1 + math.cos(math.pi * step / max(1, total)))


def _full_cosine(step: int, total: int, warmup: int, peak: float) -> float:
    if step < warmup:
        return reference_warmup_cosine(step, total, warmup, peak)
    return peak * math.cos(math.pi * (step - warmup) / max(1, total - warmup))


def _cosine_to_last_step(step: int, total: int, warmup: int, peak: float) -> float:
    if step < warmup:
        return reference_warmup_cosine(step, total, warmup, peak)
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - 1 - warmup)))


_WRONG_LR: list[tuple[Callable[[int, int, int, float], float], str]] = [
    (_warmup_from_zero, "the warm-up starts at a tenth of the peak, not at zero"),
    (_no_warmup, "the first warmup_steps iterations climb linearly to the peak before the decay starts"),
    (_cosine_over_total, "the decay starts where the warm-up ends: its progress runs over total_steps - warmup_steps"),
    (_full_cosine, "a cosine decay to zero is half of (1 + cos(pi * progress)), times the peak"),
    (_cosine_to_last_step, "progress is (step - warmup_steps) / (total_steps - warmup_steps), as in the lesson"),
]


def schedule_mismatch(
    got: Sequence[float],
    expected_at: Callable[[int], float],
    mistakes: Sequence[tuple[Callable[[int], float], str]],
    rel_tol: float,
    abs_tol: float,
) -> tuple[list[float], list[int], list[str]]:
    """Compare a student's learning rates ``got`` (one per step 0, 1, ...) with ``expected_at(step)``.

    Returns the expected rates, the steps that differ (``math.isclose`` with the tolerances) and, if any differ,
    the hints of the ``mistakes`` (a typical wrong schedule as a function of the step, and its hint) whose rates
    ``got`` equals at every step. Used by the schedule checkers (``warmup_cosine``, ``speed.triangular_lr``).
    """
    steps = range(len(got))
    expected = [expected_at(t) for t in steps]
    bad = [t for t in steps if not math.isclose(got[t], expected[t], rel_tol=rel_tol, abs_tol=abs_tol)]
    hints = [
        hint
        for wrong_at, hint in (mistakes if bad else [])
        if all(math.isclose(got[t], wrong_at(t), rel_tol=rel_tol, abs_tol=abs_tol) for t in steps)
    ]
    return expected, bad, hints


def warmup_cosine(fn: Callable[[int, int, int, float], float], configs: Sequence[tuple] | None = None) -> None:
    """Check ``fn(step, total_steps, warmup_steps, peak_lr) -> float`` at every step of a few schedules.

    ``configs``: (total_steps, warmup_steps, peak_lr) triples; by default the lesson's (710, 106, 0.1),
    (100, 15, 0.05) and (40, 0, 0.2) (no warm-up at all).
    """
    checker = "warmup_cosine"
    name = getattr(fn, "__name__", "your function")

    def check_one(config: tuple) -> None:
        total, warmup, peak = config
        where = f"{checker}, total_steps={total}, warmup_steps={warmup}, peak_lr={peak}"
        got = []
        for step in range(total):
            value = call_student(
                checker, where, f"{name}({step}, {total}, {warmup}, {peak})", fn, step, total, warmup, peak
            )
            got.append(_number(checker, f"{name}({step}, {total}, {warmup}, {peak})", value, "the learning rate"))
        expected, bad, hints = schedule_mismatch(
            got,
            lambda t: reference_warmup_cosine(t, total, warmup, peak),
            [(lambda t, wrong=wrong: wrong(t, total, warmup, peak), hint) for wrong, hint in _WRONG_LR],
            rel_tol=1e-5,
            abs_tol=1e-8,
        )
        if not bad:
            return
        s = bad[0]
        raise fail(
            where,
            f"{name}({s}, {total}, {warmup}, {peak}) returned {got[s]:.6f}, expected {expected[s]:.6f} "
            f"({len(bad)} of {total} steps differ)",
            hints[:1]
            or ["warm-up: from peak/10 to the peak, linearly; then half of (1 + cos(pi * progress)) of the peak"],
        )

    n = run_configs(list(configs or [(710, 106, 0.1), (100, 15, 0.05), (40, 0, 0.2)]), check_one)
    passed(checker, f"{n_match(n, 'schedules')} at every step: warm-up from peak/10, then cosine to zero")


# --------------------------------------------------------------------------------------------------
# 08: one training step


class _TinyNet(nn.Module):
    """conv 3x3 (1 -> 4) - BN - ReLU - global average pool - linear (4 -> 10): (N, 1, 8, 8) -> (N, 10)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


def _reference_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, optimizer: Any) -> float:
    optimizer.zero_grad()
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss.item()


def _no_zero_grad(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, optimizer: Any) -> float:
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss.item()


def _no_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, optimizer: Any) -> float:
    optimizer.zero_grad()
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    return loss.item()


def _softmax_first(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, optimizer: Any) -> float:
    optimizer.zero_grad()
    loss = F.cross_entropy(model(images).softmax(dim=1), labels)
    loss.backward()
    optimizer.step()
    return loss.item()


def _eval_mode(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, optimizer: Any) -> float:
    model.eval()
    return _reference_step(model, images, labels, optimizer)


_WRONG_STEPS: list[tuple[Callable[..., float], str]] = [
    (_no_zero_grad, "the gradients were not cleared: without zero_grad each backward adds to the last step's"),
    (_no_step, "the weights did not change: after backward, the optimizer has to take its step"),
    (_softmax_first, "cross-entropy takes the raw logits: it applies the softmax itself"),
    (_eval_mode, "train in training mode: in eval mode BatchNorm uses its running statistics"),
]

TrainStepConfig = tuple[str, int]  # (optimizer: "sgd" or "momentum", steps)


def _run_steps(
    step_fn: Callable[..., Any], config: TrainStepConfig, student: bool = False, where: str = "", name: str = ""
) -> tuple[list[float], list[torch.Tensor], torch.Tensor]:
    """Train a fresh tiny net for ``steps`` steps with ``step_fn``: (losses, final weights, BN running mean).
    ``student``: call ``step_fn`` as student code (its exceptions and odd return values become hints)."""
    checker = "train_step"
    kind, steps = config
    torch.manual_seed(SEED)
    model = _TinyNet()
    model.train()
    momentum = 0.9 if kind == "momentum" else 0.0
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=momentum, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(SEED + 7)
    losses = []
    for i in range(steps):
        images = torch.randn(6, 1, 8, 8, generator=generator)
        labels = torch.randint(0, 10, (6,), generator=generator)
        if student:
            call = f"{name}(model, images, labels, optimizer) at step {i + 1}"
            value = call_student(checker, where, call, step_fn, model, images, labels, optimizer)
            losses.append(_number(checker, where, value, "the loss"))
        else:
            losses.append(float(step_fn(model, images, labels, optimizer)))
    weights = [p.detach().clone() for p in model.parameters()]
    return losses, weights, model.bn.running_mean.clone()


def _same_run(a: tuple, b: tuple) -> bool:
    losses_a, weights_a, bn_a = a
    losses_b, weights_b, bn_b = b
    return (
        all(math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-6) for x, y in zip(losses_a, losses_b))
        and all(torch.allclose(x, y, atol=1e-6, rtol=1e-5) for x, y in zip(weights_a, weights_b))
        and torch.allclose(bn_a, bn_b, atol=1e-6)
    )


def train_step(fn: Callable[..., float], configs: Sequence[TrainStepConfig] | None = None) -> None:
    """Check ``fn(model, images, labels, optimizer) -> loss``: one step of training with cross-entropy.

    For each configuration (optimizer "sgd" or "momentum", number of steps; by default ("momentum", 3) and
    ("sgd", 2)) the checker trains a tiny net (conv-BN-ReLU-pool-linear) from the same start with ``fn`` and
    with the reference step, on the same random batches of (6, 1, 8, 8) images, and compares the returned
    losses (the loss *before* each step), the weights after the last step and BN's running mean.
    """
    checker = "train_step"
    name = getattr(fn, "__name__", "your function")

    def check_one(config: TrainStepConfig) -> None:
        kind, steps = config
        where = f"{checker}, {steps} steps of SGD" + (" with momentum 0.9" if kind == "momentum" else "")
        with torch.random.fork_rng(devices=[]):
            got = _run_steps(fn, config, student=True, where=where, name=name)
            expected = _run_steps(_reference_step, config)
            if _same_run(got, expected):
                return
            hints = [hint for wrong, hint in _WRONG_STEPS if _same_run(got, _run_steps(wrong, config))]
        losses, weights, _ = got
        problem = (
            f"losses {', '.join(f'{v:.4f}' for v in losses)}; expected {', '.join(f'{v:.4f}' for v in expected[0])}"
            if not all(math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-6) for x, y in zip(losses, expected[0]))
            else "the losses match, but the weights after the last step differ"
        )
        raise fail(
            where,
            problem,
            hints[:1]
            or [
                "one step: clear the gradients, forward, cross-entropy on the logits, backward, optimizer step; "
                "return the loss of this batch"
            ],
        )

    n = run_configs(list(configs or [("momentum", 3), ("sgd", 2)]), check_one)
    passed(checker, f"{n_match(n)} the reference step (losses, weights after the steps, BN running means)")


# --------------------------------------------------------------------------------------------------
# 08: the batch augmentation, given its random draws

CropFlipConfig = tuple[int, int, int, int, int]  # (batch, channels, height, width, pad)


def _draws(batch: int, pad: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """dy, dx (B,) and flip (B,) as ``data.random_crop_flip`` draws them from a generator seeded with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    dy = torch.randint(0, 2 * pad + 1, (batch, 1), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (batch, 1), generator=generator)
    flip = torch.rand(batch, 1, generator=generator) < 0.5
    return dy[:, 0], dx[:, 0], flip[:, 0]


def _crop_flip_loop(
    images: torch.Tensor,
    dy: torch.Tensor,
    dx: torch.Tensor,
    flip: torch.Tensor,
    pad: int,
    flip_first: bool = False,
    dims: int = -1,
    swap: bool = False,
    invert: bool = False,
) -> torch.Tensor:
    """A per-image reference with switches that reproduce the usual mistakes."""
    h, w = images.shape[-2:]
    padded = F.pad(images, (pad, pad, pad, pad))
    out = []
    for i in range(images.shape[0]):
        y, x = (int(dx[i]), int(dy[i])) if swap else (int(dy[i]), int(dx[i]))
        flipped = bool(flip[i]) != invert
        image = padded[i]
        if flip_first and flipped:
            image = image.flip(dims)
        image = image[:, y : y + h, x : x + w]
        if not flip_first and flipped:
            image = image.flip(dims)
        out.append(image)
    return torch.stack(out)


_WRONG_CROPS: list[tuple[dict[str, Any], str]] = [
    ({"flip_first": True}, "crop first, then flip: flipping the padded image first moves the crop window"),
    ({"dims": -2}, "a horizontal flip mirrors left and right: reverse the width (the last dimension)"),
    ({"swap": True}, "dy moves the window down (rows, height), dx to the right (columns, width): you swapped them"),
    ({"invert": True}, "flip the images whose flip flag is True, and only those"),
]


def crop_flip(fn: Callable[..., torch.Tensor], configs: Sequence[CropFlipConfig] | None = None) -> None:
    """Check ``fn(images, dy, dx, flip, pad) -> images``: pad with zeros, crop H x W at (dy, dx), flip where asked.

    The draws are those ``data.random_crop_flip`` makes from a fixed generator, and the result must equal
    ``data.random_crop_flip`` on that generator. ``configs``: (batch, channels, height, width, pad); by default
    (16, 1, 28, 28, 4), (8, 3, 32, 32, 4) and (6, 2, 9, 7, 2) (not square).
    """
    from ..data import random_crop_flip

    checker = "crop_flip"
    name = getattr(fn, "__name__", "your function")

    def check_one(config: CropFlipConfig) -> None:
        b, c, h, w, pad = config
        where = f"{checker}, a batch of ({b}, {c}, {h}, {w}) uint8 images, pad={pad}"
        seed = SEED + b + h
        images = torch.randint(0, 256, (b, c, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
        expected = random_crop_flip(images, pad=pad, generator=torch.Generator().manual_seed(seed))
        dy, dx, flip = _draws(b, pad, seed)
        original = images.clone()
        got = call_student(
            checker,
            where,
            f"{name}(images, dy, dx, flip, pad={pad})",
            fn,
            images,
            dy.clone(),
            dx.clone(),
            flip.clone(),
            pad,
            hints=lambda exc: ["pad first: with pad pixels of zeros on each side, every H x W window at (dy, dx) fits"],
        )
        if not torch.equal(images, original):
            raise fail(
                where, "your function changed the images it was given", "return new images; leave the batch as it is"
            )
        if not isinstance(got, torch.Tensor):
            raise fail(where, f"returned {type(got).__name__}, expected a tensor", "return the augmented batch")
        if tuple(got.shape) != tuple(expected.shape):
            raise fail(
                where,
                f"returned shape {tuple(got.shape)}, expected {tuple(expected.shape)}",
                "pad by pad pixels on each side, then crop a window of the original height and width",
            )
        if torch.equal(got.to(expected.dtype), expected):
            if got.dtype != expected.dtype:
                raise fail(where, f"returned dtype {got.dtype}, expected {expected.dtype}", "keep the images' dtype")
            return
        hints = [
            hint
            for switches, hint in _WRONG_CROPS
            if torch.equal(got.to(expected.dtype), _crop_flip_loop(images, dy, dx, flip, pad, **switches))
        ]
        wrong = int((got.to(expected.dtype) != expected).flatten(1).any(dim=1).sum())
        raise fail(
            where,
            f"{wrong} of {b} images differ from data.random_crop_flip with the same draws",
            hints[:1]
            or [
                "pad with zeros on all four sides, take rows dy .. dy+H-1 and columns dx .. dx+W-1, "
                "then mirror the width where flip is True"
            ],
        )

    n = run_configs(list(configs or [(16, 1, 28, 28, 4), (8, 3, 32, 32, 4), (6, 2, 9, 7, 2)]), check_one)
    passed(checker, f"{n_match(n, 'batches')} data.random_crop_flip on the same random draws (pixel for pixel)")
