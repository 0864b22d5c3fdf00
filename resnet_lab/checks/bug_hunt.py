"""Checkers for notebook 09's exercises: fix a tutorial's code that contains two of the ten mistakes.

Each checker runs the full comparison of the matching block or network checker (shapes, parameter counts,
outputs with the same weights). When it fails, it also looks for each of the two planted mistakes on its own,
repairing the other one on a copy of the student's module first, so a half-fixed answer hears which mistake
is fixed and which remains:

* ``fix_bottleneck``: mistake 1 (ReLU before the add) and mistake 2 (1x1 convolutions with padding=1);
* ``fix_basic_block``: mistake 3 (the projection applied to the block's output) and mistake 5 (the
  projection without the block's stride);
* ``fix_resnet50``: mistake 6 (a fixed ``AvgPool2d(7)`` head, or any other fixed-window pool in the head) and
  mistake 7 (ResNet-50 with 2 blocks per stage).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..blocks import BasicBlock, Bottleneck
from ..models import resnet
from .blocks import _check_blocks
from .diagnosis import conv_layers, fixed_pool_hints, projection_convs, stage_lengths
from .engine import (
    SEED,
    Diagnosis,
    NotDone,
    Tracer,
    build,
    collecting,
    compare,
    n_match,
    passed,
    run_configs,
    short_in_notebooks,
)

__all__ = ["fix_bottleneck", "fix_basic_block", "fix_resnet50"]

MISTAKES = {
    1: "ReLU before the add",
    2: "a 1x1 convolution with padding=1",
    3: "the projection applied to the block's output",
    5: "the projection without the block's stride",
    6: "a fixed AvgPool2d(7) head",
    7: "ResNet-50 with 2 blocks per stage",
}
FIXES = {
    1: "the last BN feeds the add directly; the ReLU comes after the shortcut is added",
    2: "a 1x1 convolution needs padding=0: with padding 1 it grows the map by 2 pixels",
    3: "the shortcut reads the block's input x: projection(x), not projection(out)",
    5: "the projection's 1x1 conv needs the block's stride, so the shortcut shrinks the map as the branch does",
    6: "pool globally, nn.AdaptiveAvgPool2d(1): a fixed window fits one map size only (a 7x7 window only the map "
    "of a 224x224 image)",
    7: "ResNet-50 has [3, 4, 6, 3] bottleneck blocks in its four stages (Table 1 of the paper)",
}


def _status(checker: str, remaining: dict[int, bool | None], left_names: dict[int, str] | None = None) -> str:
    """One line: which planted mistakes are fixed, which remain (None: could not tell).

    ``left_names``: a more precise name for a mistake that remains (e.g. the pool the student's head has).
    """
    left = [m for m, r in remaining.items() if r]
    fixed = [m for m, r in remaining.items() if r is False]

    def names(ms: list[int]) -> str:
        return " and ".join(
            f"mistake {m} ({(left_names or {}).get(m, MISTAKES[m]) if m in left else MISTAKES[m]})" for m in ms
        )

    if left and fixed:
        return f"{checker}: half fixed: {names(fixed)} is fixed, but {names(left)} remains"
    if left:
        return f"{checker}: not fixed yet: {names(left)} {'remain' if len(left) > 1 else 'remains'}"
    if fixed and len(fixed) == len(remaining):
        return f"{checker}: both planted mistakes are fixed, but something else differs from the reference"
    return f"{checker}: something differs from the reference"


def _with_status(
    exc: AssertionError, checker: str, remaining: dict[int, bool | None], left_names: dict[int, str] | None = None
) -> AssertionError:
    left = [m for m, r in remaining.items() if r]
    lines = [_status(checker, remaining, left_names), *(f"Hint: mistake {m}: {FIXES[m]}" for m in left), str(exc)]
    return short_in_notebooks(AssertionError("\n".join(lines)))


def _quietly(fn: Callable[[], Any]) -> Any:
    """Run a probe outside any grader's collection of results; None if it raises."""
    try:
        with collecting():
            return fn()
    except Exception:  # noqa: BLE001 - a probe of broken student code may fail in any way
        return None


@contextmanager
def _probed(cls: Callable[..., nn.Module], *args: int) -> Iterator[nn.Module | None]:
    """``cls(*args)`` built quietly after ``torch.manual_seed(SEED)`` (None if that fails or is no module); the
    caller's random state comes back when the block ends."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = _quietly(lambda: cls(*args))
        yield model if isinstance(model, nn.Module) else None


# --------------------------------------------------------------------------------------
# Mistakes 1 and 2: the bottleneck
# --------------------------------------------------------------------------------------


def _padded_1x1(model: nn.Module) -> list[nn.Conv2d]:
    return [c for _, c in conv_layers(model) if c.kernel_size == (1, 1) and c.padding not in ((0, 0), "valid")]


def _bottleneck_remaining(cls: Callable[..., nn.Module]) -> dict[int, bool | None]:
    """Which of mistakes 1 and 2 a bottleneck class still has, probed on Bottleneck(256, 64) shapes."""
    with _probed(cls, 256, 64, 1) as model:
        if model is None:
            return {1: None, 2: None}
        padded = bool(_padded_1x1(model))
        repaired = copy.deepcopy(model)
        for conv in _padded_1x1(repaired):
            conv.padding = (0, 0)
        x = torch.randn(2, 256, 6, 6, generator=torch.Generator().manual_seed(SEED + 1))

        def run() -> torch.Tensor:
            repaired.eval()
            with torch.no_grad():
                return repaired(x.clone())

        y = _quietly(run)
    if not isinstance(y, torch.Tensor) or y.shape != x.shape:
        return {1: None, 2: padded}
    # With an identity shortcut, ReLU before the add means output >= ReLU(x) everywhere.
    relu_first = bool((y >= torch.relu(x) - 1e-6).all())
    return {1: relu_first, 2: padded}


def _fix_block(
    checker: str,
    cls: Callable[..., nn.Module],
    reference: type[nn.Module],
    configs: Sequence[tuple[int, int, int]],
    remaining: Callable[[Callable[..., nn.Module]], dict[int, bool | None]],
) -> None:
    """Compare the fixed block ``cls(in_channels, planes, stride)`` with ``reference`` on ``configs``; on a
    failure, say which of the planted mistakes ``remaining(cls)`` finds still there."""
    try:
        n = _check_blocks(
            checker,
            cls,
            reference,
            [(*c[:3], True) for c in configs],
            call_args=lambda c: ((c[0], c[1], c[2]), {}),
            label=lambda c: f"{c[0]}, {c[1]}, stride={c[2]}",
            bottleneck=reference is Bottleneck,
        )
    except AssertionError as exc:
        if isinstance(exc, NotDone):  # a stub: nothing to diagnose
            raise
        raise _with_status(exc, checker, remaining(cls)) from None
    name = reference.__name__
    passed(checker, f"both mistakes fixed: {n_match(n)} resnet_lab.{name} (shapes, parameter counts, outputs)")


def fix_bottleneck(cls: Callable[..., nn.Module], configs: Sequence[tuple[int, int, int]] | None = None) -> None:
    """Check notebook 09's fixed tutorial bottleneck ``cls(in_channels, planes, stride=1)`` against ``Bottleneck``.

    The same comparison as ``checks.bottleneck``; a failure also says which of mistakes 1 (ReLU before the
    add) and 2 (1x1 convs with padding) remain. ``configs``: (in_channels, planes, stride); by default three,
    two of them projecting.
    """
    configs = configs or [(256, 64, 1), (64, 64, 1), (256, 128, 2)]
    _fix_block("fix_bottleneck", cls, Bottleneck, configs, _bottleneck_remaining)


# --------------------------------------------------------------------------------------
# Mistakes 3 and 5: the basic block's projection
# --------------------------------------------------------------------------------------


def _basic_remaining(cls: Callable[..., nn.Module]) -> dict[int, bool | None]:
    """Which of mistakes 3 and 5 a basic-block class still has, probed on a strided, widening block (64 -> 128)."""
    with _probed(cls, 64, 128, 2) as model:
        if model is None:
            return {3: None, 5: None}
        projections = projection_convs(model, 64, 128)
        if not projections:
            return {3: None, 5: None}
        no_stride = any(conv.stride != (2, 2) for _, conv in projections)
        repaired = copy.deepcopy(model)
        for _, conv in projection_convs(repaired, 64, 128):
            conv.stride = (2, 2)
        x = torch.randn(2, 64, 8, 8, generator=torch.Generator().manual_seed(SEED + 1))
        tracer = Tracer(repaired)
        repaired.eval()
        with tracer:
            _quietly(lambda: repaired(x.clone()))
    inputs = [tracer.first_call(conv) for _, conv in projection_convs(repaired, 64, 128)]
    seen = [call.in_shape for call in inputs if call is not None and call.in_shape is not None]
    reads_output = None if not seen else any(shape != tuple(x.shape) for shape in seen)
    return {3: reads_output, 5: no_stride}


def fix_basic_block(cls: Callable[..., nn.Module], configs: Sequence[tuple[int, int, int]] | None = None) -> None:
    """Check notebook 09's fixed tutorial basic block ``cls(in_channels, planes, stride=1)`` against ``BasicBlock``.

    The same comparison as ``checks.basic_block``; a failure also says which of mistakes 3 (the projection
    applied to the output) and 5 (the projection without the stride) remain. ``configs``: (in_channels,
    planes, stride); by default three, two of them projecting.
    """
    configs = configs or [(64, 128, 2), (64, 64, 1), (32, 64, 1)]
    _fix_block("fix_basic_block", cls, BasicBlock, configs, _basic_remaining)


# --------------------------------------------------------------------------------------
# Mistakes 6 and 7: ResNet-50's stages and head
# --------------------------------------------------------------------------------------


_STEM_AND_STAGES = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
_FIXED_POOLS = (nn.AvgPool2d, nn.MaxPool2d, nn.LPPool2d)


def _fixed_head_pools(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Fixed-window pools outside the stem and the four stages: in the head, where mistake 6 sits."""
    return [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, _FIXED_POOLS) and name.split(".")[0] not in _STEM_AND_STAGES
    ]


def _pool_text(m: nn.Module) -> str:
    k = m.kernel_size
    k = k[0] if isinstance(k, tuple) and len(set(k)) == 1 else k
    return f"{type(m).__name__}({k})"


def _fixed_head_pool_hints(model: nn.Module) -> list[str]:
    pools = _fixed_head_pools(model)
    if not pools:
        return []
    name, m = pools[0]
    return [
        f"`{name}` is a fixed {_pool_text(m)}: a fixed window pools the whole map only when the last stage's map has "
        "that one size, so on other image sizes the net pools a corner of the map or fails. Use global average "
        "pooling, nn.AdaptiveAvgPool2d(1)."
    ]


def fix_resnet50(fn: Callable[[], nn.Module], configs: Sequence[int] | None = None) -> None:
    """Check notebook 09's fixed tutorial builder ``fn() -> ResNet-50`` against ``resnet_lab.resnet(50)``.

    Blocks per stage, parameter counts, then outputs (weights copied) on images of each size in ``configs``,
    all in one run (by default 64x64 and 96x96, whose last maps are 2x2 and 3x3: a fixed ``AvgPool2d(7)`` fails
    on both, and a pool that fits one of them, such as ``AvgPool2d(2)``, differs on the other). A failure also
    says which of mistakes 6 (a fixed-window pool in the head) and 7 (2 blocks per stage) remain.
    """
    checker = "fix_resnet50"
    name = getattr(fn, "__name__", "your function")
    where = f"{checker}, {name}()"
    sizes = [int(s) for s in (configs or (64, 96))]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        reference = resnet(50)
        torch.manual_seed(SEED)
        student = build(checker, where, f"{name}()", fn)
        pools = _fixed_head_pools(student)
        remaining: dict[int, bool | None] = {
            6: bool(pools or fixed_pool_hints(student)),
            7: stage_lengths(student) != [3, 4, 6, 3],
        }
        left_names = {6: f"a fixed {_pool_text(pools[0][1])} head"} if pools else {}

        def check_one(config: tuple[int, ...]) -> None:
            first, *others = (
                torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(SEED + size)) for size in config
            )
            try:
                compare(
                    checker,
                    f"{where} on images of {', '.join(f'{s}x{s}' for s in config)}",
                    student,
                    reference,
                    first,
                    Diagnosis(static=lambda: fixed_pool_hints(student) or _fixed_head_pool_hints(student)),
                    extra_inputs=others,
                )
            except AssertionError as exc:
                if isinstance(exc, NotDone):
                    raise
                raise _with_status(exc, checker, remaining, left_names) from None

        run_configs([tuple(sizes)], check_one)  # one configuration: building ResNet-50 twice per size is slow
    passed(
        checker,
        f"both mistakes fixed: matches resnet_lab.resnet(50) on {' and '.join(f'{s}x{s}' for s in sizes)} images (blocks per stage [3, 4, 6, 3], "
        "parameter counts, outputs)",
    )
