"""Checkers for the exercises that build one block: the output-size formula, the residual unit and
its plain twin, the basic block, the bottleneck and the plain/residual switch.

Each checker takes the student's class (or function), optionally a list of configurations
(``configs``; the defaults are the ones the notebooks show), and prints one ``✓`` line or raises
``AssertionError`` with hints.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from torch import nn

from ..blocks import BasicBlock, Bottleneck
from ..shapes import conv_output_size as _reference_conv_output_size
from .diagnosis import (
    block_mismatch_hints,
    block_shape_hints,
    block_static_hints,
    projection_input_hints,
)
from .engine import SEED, Diagnosis, Tracer, build, call_student, compare, fail, n_match, passed, run_configs
from .family import require_names

__all__ = ["conv_output_size", "residual_unit", "plain_unit", "basic_block", "bottleneck", "plain_switch"]

BlockConfig = tuple[int, int, int, bool]  # (in_channels, planes, stride, residual)

HINT_UNIT_NAMES = (
    "name the layers as the lesson asks, torchvision's names: self.conv1, self.bn1, self.conv2, self.bn2 "
    "(a ReLU module may have any name, it has no weights); not an nn.Sequential, whose layers are named 0, 1, 2, ..."
)


def _check_blocks(
    checker: str,
    cls: Any,
    ref_factory: Callable[..., nn.Module],
    configs: Sequence[BlockConfig],
    call_args: Callable[[BlockConfig], tuple[tuple, dict[str, Any]]],
    label: Callable[[BlockConfig], str],
    bottleneck: bool,
    size: int = 8,
    names_hint: str | None = None,
) -> int:
    """Compare ``cls(*args)`` with ``ref_factory(in_channels, planes, stride, residual=...)`` on (2, C, size, size) inputs.

    With ``names_hint``, a block that computes the right function must also have the reference's parameter
    names (``require_names``), because the lesson loads weights into it by name.
    """
    name = getattr(cls, "__name__", "your class")

    def check_one(config: BlockConfig) -> None:
        in_channels, planes, stride, residual = config
        out_channels = planes * (4 if bottleneck else 1)
        args, kwargs = call_args(config)
        call_text = f"{name}({label(config)})"
        where = f"{checker}, {call_text}"
        torch.manual_seed(SEED)
        reference = ref_factory(in_channels, planes, stride, residual=residual)
        torch.manual_seed(SEED)
        student = build(checker, where, call_text, cls, *args, **kwargs)
        x = torch.randn(2, in_channels, size, size, generator=torch.Generator().manual_seed(SEED + 1))

        def errors(exc: BaseException, tracer: Tracer) -> list[str]:
            return projection_input_hints(student, in_channels, out_channels, tuple(x.shape), tracer, bottleneck)

        diagnosis = Diagnosis(
            static=lambda: block_static_hints(student, in_channels, out_channels, stride, bottleneck, residual),
            on_error=errors,
            on_mismatch=partial(block_mismatch_hints, residual=residual),
            on_shape=block_shape_hints,
        )
        compare(checker, where, student, reference, x, diagnosis)
        if names_hint is not None:
            require_names(where, student, reference, names_hint)

    with torch.random.fork_rng(devices=[]):
        return run_configs(list(configs), check_one)


def _projections(configs: Sequence[BlockConfig], expansion: int = 1) -> int:
    return sum(
        1 for cin, planes, stride, residual in configs if residual and (stride != 1 or cin != planes * expansion)
    )


_CONV_CASES = [
    # (n, kernel, stride, padding, what it is)
    (224, 7, 2, 3, "the ResNet stem: 7x7 conv, stride 2, padding 3"),
    (112, 3, 2, 1, "the stem's 3x3 max pool, stride 2, padding 1"),
    (56, 3, 1, 1, "a 3x3 conv, stride 1, padding 1"),
    (56, 3, 2, 1, "a strided 3x3 conv"),
    (56, 1, 1, 0, "a 1x1 conv"),
    (56, 1, 2, 0, "a strided 1x1 projection"),
    (28, 3, 2, 1, "a strided 3x3 conv"),
    (14, 3, 2, 1, "a strided 3x3 conv on an even map"),
    (7, 3, 2, 1, "a strided 3x3 conv on an odd map"),
    (7, 7, 1, 0, "a 7x7 window on a 7x7 map"),
    (32, 3, 1, 1, "a CIFAR 3x3 stem"),
    (6, 3, 2, 0, "a 3x3 window, stride 2, no padding"),
    (5, 2, 2, 0, "a 2x2 pool, stride 2, on an odd map"),
    (56, 1, 1, 1, "a 1x1 conv with padding 1 (the map grows by 2)"),
]

_WRONG_FORMULAS: list[tuple[Callable[[int, int, int, int], float], str]] = [
    (lambda n, k, s, p: (n + 2 * p - k) // s, "the +1 is missing: M = floor((n + 2p - k) / s) + 1"),
    (lambda n, k, s, p: (n + p - k) // s + 1, "padding is added on both sides: use 2p, not p"),
    (lambda n, k, s, p: (n - k) // s + 1, "the padding is missing: M = floor((n + 2p - k) / s) + 1"),
    (lambda n, k, s, p: n + 2 * p - k + 1, "the stride is missing: divide by s"),
    (lambda n, k, s, p: -(-(n + 2 * p - k) // s) + 1, "round down (floor, //), not up"),
    (lambda n, k, s, p: (n + 2 * p - k + 1) // s, "the +1 goes after the division: floor((n + 2p - k) / s) + 1"),
]


def conv_output_size(fn: Callable[[int, int, int, int], int], configs: Sequence[tuple] | None = None) -> None:
    """Check ``fn(n, kernel, stride, padding) -> int`` against the conv/pool output-size formula.

    ``configs``: (n, kernel, stride, padding[, what it is]) cases; by default 14 cases from the course.
    """
    checker = "conv_output_size"
    cases = [(*c[:4], c[4] if len(c) > 4 else "a further case") for c in (configs or _CONV_CASES)]

    def text(n: int, k: int, s: int, p: int) -> str:
        return f"conv_output_size(n={n}, kernel={k}, stride={s}, padding={p})"

    # Every answer, computed once up front: the hint for a wrong value looks at all of them.
    results: dict[tuple[int, int, int, int], Any] = {}
    for n, k, s, p, _ in cases:
        results[(n, k, s, p)] = call_student(checker, checker, text(n, k, s, p), fn, n, k, s, p)

    def check_one(case: tuple) -> None:
        n, k, s, p, what = case
        got, expected = results[(n, k, s, p)], _reference_conv_output_size(n, k, s, p)
        if isinstance(got, bool) or not isinstance(got, numbers.Integral):
            hint = (
                "return an int: use floor division // instead of /"
                if isinstance(got, numbers.Real)
                else "return the size as an int"
            )
            raise fail(
                checker,
                f"{text(n, k, s, p)} ({what}) returned {got!r} of type {type(got).__name__}, "
                f"expected the int {expected}",
                hint,
            )
        if got != expected:
            ints = {c: v for c, v in results.items() if isinstance(v, numbers.Integral)}
            hints = [hint for formula, hint in _WRONG_FORMULAS if all(v == formula(*c) for c, v in ints.items())]
            raise fail(
                checker,
                f"{text(n, k, s, p)} ({what}) returned {got}, expected {expected}",
                hints[:1] or ["M = floor((n + 2p - k) / s) + 1"],
            )

    count = run_configs(cases, check_one)
    passed(checker, f"{n_match(count, 'cases')} floor((n + 2p - k) / s) + 1 (incl. the 7x7/2 stem and 1x1 convs)")


def _check_unit(
    checker: str,
    cls: Callable[[int], nn.Module],
    configs: Sequence[int] | None,
    residual: bool,
    names_hint: str | None = None,
) -> int:
    """Compare ``cls(c)`` with ``BasicBlock(c, c, residual=residual)`` for each channel count c in ``configs``
    (by default 16 and 64): the residual unit and its plain twin, checked the same way."""
    return _check_blocks(
        checker,
        cls,
        BasicBlock,
        [(c, c, 1, residual) for c in (configs or (16, 64))],
        call_args=lambda c: ((c[0],), {}),
        label=lambda c: f"{c[0]}",
        bottleneck=False,
        names_hint=names_hint,
    )


def residual_unit(cls: Callable[[int], nn.Module], configs: Sequence[int] | None = None) -> None:
    """Check ``cls(channels)``: H(x) = ReLU(F(x) + x), F = conv3x3-BN-ReLU-conv3x3-BN, against BasicBlock(c, c).

    ``configs``: channel counts; by default 16 and 64. Once the function is right, the layers must carry
    torchvision's names (conv1, bn1, conv2, bn2): notebook 01 loads the unit's weights into BasicBlock by name.
    """
    n = _check_unit("residual_unit", cls, configs, residual=True, names_hint=HINT_UNIT_NAMES)
    passed("residual_unit", f"{n_match(n)} resnet_lab.BasicBlock(c, c) (shapes, parameter counts, outputs)")


def plain_unit(cls: Callable[[int], nn.Module], configs: Sequence[int] | None = None) -> None:
    """Check ``cls(channels)``: the residual unit's plain twin, H(x) = ReLU(F(x)) with no shortcut.

    Compared with ``BasicBlock(c, c, residual=False)`` (same layers as the residual unit, nothing added back).
    ``configs``: channel counts; by default 16 and 64.
    """
    n = _check_unit("plain_unit", cls, configs, residual=False)
    passed(
        "plain_unit", f"{n_match(n)} resnet_lab.BasicBlock(c, c, residual=False) (shapes, parameter counts, outputs)"
    )


def _with_projections(projecting: int) -> str:
    return f"; {projecting} with a projection shortcut" if projecting else ""


def _check_standard_block(
    checker: str,
    cls: Callable[..., nn.Module],
    reference: type[nn.Module],
    configs: Sequence[tuple[int, int, int]],
    expansion: int,
) -> None:
    """Compare ``cls(in_channels, planes, stride)`` with ``reference`` (BasicBlock: expansion 1, Bottleneck: 4)
    on each (in_channels, planes, stride) of ``configs``, with a shortcut, then report the pass."""
    block_configs = [(*c[:3], True) for c in configs]
    n = _check_blocks(
        checker,
        cls,
        reference,
        block_configs,
        call_args=lambda c: ((c[0], c[1], c[2]), {}),
        label=lambda c: f"{c[0]}, {c[1]}, stride={c[2]}",
        bottleneck=expansion == 4,
        size=8,
    )
    passed(
        checker,
        f"{n_match(n)} resnet_lab.{reference.__name__} (shapes, parameter counts, "
        f"outputs{_with_projections(_projections(block_configs, expansion))})",
    )


def basic_block(cls: Callable[..., nn.Module], configs: Sequence[tuple[int, int, int]] | None = None) -> None:
    """Check ``cls(in_channels, planes, stride=1)`` (option B shortcut) against ``resnet_lab.BasicBlock``.

    ``configs``: (in_channels, planes, stride) triples; by default four, three of them projecting.
    """
    _check_standard_block(
        "basic_block", cls, BasicBlock, configs or [(64, 64, 1), (64, 128, 2), (32, 64, 1), (64, 64, 2)], expansion=1
    )


def bottleneck(cls: Callable[..., nn.Module], configs: Sequence[tuple[int, int, int]] | None = None) -> None:
    """Check ``cls(in_channels, planes, stride=1)`` (expansion 4, stride on the 3x3) against ``resnet_lab.Bottleneck``.

    ``configs``: (in_channels, planes, stride) triples; by default five, three of them projecting (one,
    (512, 128, 2), only because it strides: 512 = 4 x 128 channels in and out).
    """
    expansion = getattr(cls, "expansion", None)
    if expansion is not None and expansion != 4:
        raise fail(
            f"bottleneck, {getattr(cls, '__name__', 'your class')}",
            f"expansion is {expansion}, expected 4",
            "a bottleneck's last 1x1 conv widens to 4 x planes",
        )
    _check_standard_block(
        "bottleneck",
        cls,
        Bottleneck,
        configs or [(64, 64, 1), (256, 64, 1), (256, 128, 2), (512, 128, 1), (512, 128, 2)],
        expansion=4,
    )


def plain_switch(cls: Callable[..., nn.Module], configs: Sequence[BlockConfig] | None = None) -> None:
    """Check ``cls(in_channels, planes, stride=1, residual=True)``: ``residual=False`` drops the shortcut.

    ``configs``: (in_channels, planes, stride, residual) tuples; by default four, two of them plain.
    """
    block_configs = [
        tuple(c) for c in (configs or [(64, 64, 1, True), (64, 64, 1, False), (64, 128, 2, True), (64, 128, 2, False)])
    ]
    n = _check_blocks(
        "plain_switch",
        cls,
        BasicBlock,
        block_configs,
        call_args=lambda c: ((c[0], c[1], c[2]), {"residual": c[3]}),
        label=lambda c: f"{c[0]}, {c[1]}, stride={c[2]}, residual={c[3]}",
        bottleneck=False,
    )
    passed(
        "plain_switch",
        f"{n} configurations (residual and plain) match resnet_lab.BasicBlock (shapes, parameter counts, outputs)",
    )
