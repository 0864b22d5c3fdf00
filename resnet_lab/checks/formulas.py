"""Checkers for exercises that compute numbers from a formula: a bottleneck's parameter count (notebook 03)
and the feature-map sizes of an ImageNet ResNet's four stages (notebook 04).

Each checker calls the student's function on a list of cases (``configs``; the defaults are listed in its
docstring), compares every answer with the package's, and when an answer is wrong looks for the one
plausible wrong formula that explains *all* the student's answers, to name the mistake in the hint.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..blocks import Bottleneck
from ..costs import count_parameters
from ..shapes import conv_output_size
from .engine import call_student, fail, n_match, passed, run_configs

__all__ = ["bottleneck_parameters", "stage_map_sizes"]


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _type_hint(value: Any) -> str:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return "return whole numbers (int): use // for divisions, or int(...) on the result"
    return "return an int"


# --------------------------------------------------------------------------------------
# Notebook 03: the bottleneck's parameter count
# --------------------------------------------------------------------------------------

BottleneckCase = tuple[int, int, int]  # (in_channels, planes, stride)
_BOTTLENECK_CASES: list[BottleneckCase] = [
    (64, 64, 1),  # layer1.0 of ResNet-50: widens 64 -> 256, so it projects
    (256, 64, 1),  # layer1.1: identity shortcut
    (256, 128, 2),  # layer2.0: strided projection
    (512, 128, 1),
    (1024, 512, 2),
    (2048, 512, 1),
    (128, 128, 2),
    (512, 128, 2),  # strides with unchanged channels (512 = 4 x 128): projects because of the stride alone
]


def _projects(c: int, p: int, s: int, e: int = 4) -> bool:
    return s != 1 or c != p * e


def _bn_formula(c: int, p: int, s: int, per_channel: int = 2, e: int = 4, projection: bool | None = None) -> int:
    o = p * e
    proj = _projects(c, p, s, e) if projection is None else projection
    convs = c * p + 9 * p * p + p * o
    return convs + per_channel * (p + p + o) + (c * o + per_channel * o if proj else 0)


# (formula, hint): each is a wrong way to count that a learner might use; the hint names the mistake.
_WRONG_BOTTLENECK: list[tuple[Callable[[int, int, int], int], str]] = [
    (
        lambda c, p, s: _bn_formula(c, p, s, per_channel=0),
        "the batch norms are missing: each BN learns a scale and a shift per channel (2 x channels parameters)",
    ),
    (
        lambda c, p, s: _bn_formula(c, p, s, per_channel=1),
        "each BN has 2 parameters per channel (scale gamma and shift beta), not 1",
    ),
    (
        lambda c, p, s: _bn_formula(c, p, s, per_channel=4),
        "a BN's running mean and variance are buffers, not parameters: count 2 per channel (gamma, beta), not 4",
    ),
    (
        lambda c, p, s: _bn_formula(c, p, s, projection=False),
        "the projection shortcut is missing: a block that changes shape (stride != 1 or in_channels != 4 x planes) "
        "has a 1x1 conv + BN on its shortcut, with parameters of its own",
    ),
    (
        lambda c, p, s: _bn_formula(c, p, s, projection=True),
        "you count a projection in every block: only a block that changes shape (stride != 1 or in_channels != "
        "4 x planes) has one; the others add x itself, for free",
    ),
    (
        lambda c, p, s: _bn_formula(c, p, s, projection=s != 1),
        "a projection is needed when the stride is not 1 *or* the channels change (in_channels != 4 x planes): "
        "you only look at the stride",
    ),
    (
        lambda c, p, s: _bn_formula(c, p, s, projection=c != p * 4),
        "the shortcut also needs a projection when the block strides: a block with stride 2 has one even when "
        "in_channels == 4 x planes; you only look at the channels",
    ),
    (
        lambda c, p, s: _bn_formula(c, p, s) - 6 * p * p,
        "a 3x3 kernel has 9 weights per (input channel, output channel) pair, not 3",
    ),
    (
        lambda c, p, s: _bn_formula(c, p, s) + p + p + 4 * p + (4 * p if _projects(c, p, s) else 0),
        "you count a bias in every conv: a conv followed by BN has none (bias=False), BN's shift replaces it",
    ),
    (
        lambda c, p, s: _bn_formula(c, p, s, e=1),
        "the last 1x1 conv widens to 4 x planes (the expansion), and the block's output has 4 x planes channels",
    ),
]


def bottleneck_parameters(fn: Callable[..., int], configs: Sequence[tuple] | None = None) -> None:
    """Check ``fn(in_channels, planes, stride) -> int``: the learnable parameters of ``resnet_lab.Bottleneck``.

    ``configs``: (in_channels, planes, stride) triples; by default 8 blocks (6 kinds from ResNet-50/101/152 and
    two more, one of them strided with unchanged channels), 5 of them with a projection shortcut. The expected value is ``count_parameters(Bottleneck(...))``
    (convs without bias, 2 parameters per BN channel, the projection's conv and BN where the shape changes).
    """
    checker = "bottleneck_parameters"
    cases = [tuple(int(v) for v in c[:3]) for c in (configs or _BOTTLENECK_CASES)]

    def text(c: int, p: int, s: int) -> str:
        return f"bottleneck_parameters({c}, {p}, stride={s})"

    results = {case: call_student(checker, checker, text(*case), fn, *case) for case in cases}

    def check_one(case: tuple) -> None:
        got, expected = results[case], count_parameters(Bottleneck(*case))
        if not _is_int(got):
            raise fail(checker, f"{text(*case)} returned {got!r} of type {type(got).__name__}", _type_hint(got))
        if got != expected:
            ints = {c: v for c, v in results.items() if _is_int(v)}
            hints = [h for formula, h in _WRONG_BOTTLENECK if all(v == formula(*c) for c, v in ints.items())]
            off = got - expected
            raise fail(
                checker,
                f"{text(*case)} returned {got:,}, expected {expected:,} ({off:+,})",
                hints[:1]
                or [
                    "add up conv1 (1x1), conv2 (3x3), conv3 (1x1) weights, 2 per channel for each BN, and the "
                    "projection's 1x1 conv + BN where the block changes shape"
                ],
            )

    with torch.random.fork_rng(devices=[]):  # building the reference blocks draws random weights
        n = run_configs(cases, check_one)
    n_proj = sum(1 for c in cases if _projects(*c))
    passed(checker, f"{n_match(n, 'blocks')} count_parameters(resnet_lab.Bottleneck) ({n_proj} with a projection)")


# --------------------------------------------------------------------------------------
# Notebook 04: feature-map sizes of the four stages
# --------------------------------------------------------------------------------------

_MAP_CASES = [224, 256, 160, 100, 97, 64, 33, 320]


def reference_stage_map_sizes(size: int) -> list[int]:
    """Map size after layer1..layer4 of an ImageNet ResNet on a ``size`` x ``size`` image (any depth, v1.5)."""
    m = conv_output_size(size, 7, 2, 3)  # stem conv 7x7/2, padding 3
    m = conv_output_size(m, 3, 2, 1)  # max pool 3x3/2, padding 1
    sizes = [m]  # layer1: stride 1
    for _ in range(3):  # layer2..layer4: a stride-2 3x3 conv (padding 1) in the first block
        m = conv_output_size(m, 3, 2, 1)
        sizes.append(m)
    return sizes


def _halving(size: int, first: int = 2, pool: bool = True, layer1: bool = False) -> list[int]:
    m = size // first
    if pool:
        m //= 2
    sizes = []
    for i in range(4):
        if i > 0 or layer1:
            m //= 2
        sizes.append(m)
    return sizes


def _stages_after(m: int, layer1_strides: bool = False) -> list[int]:
    """Map sizes after layer1..layer4 when the stem leaves an m x m map: layer2..layer4 (and layer1 too if
    ``layer1_strides``) each halve it with a stride-2 3x3 conv, padding 1."""
    sizes = []
    for i in range(4):
        if i > 0 or layer1_strides:
            m = conv_output_size(m, 3, 2, 1)
        sizes.append(m)
    return sizes


def _no_pool(size: int) -> list[int]:
    return _stages_after(conv_output_size(size, 7, 2, 3))


def _strided_layer1(size: int) -> list[int]:
    return _stages_after(conv_output_size(conv_output_size(size, 7, 2, 3), 3, 2, 1), layer1_strides=True)


def _no_padding(size: int) -> list[int]:
    return _stages_after(conv_output_size(conv_output_size(size, 7, 2, 0), 3, 2, 0))


_WRONG_MAPS: list[tuple[Callable[[int], list[int]], str]] = [
    (
        _halving,
        "halving with // rounds down, but a stride-2 layer with padding rounds *up* on odd sizes (a 97 map "
        "becomes 49): use the output-size formula of notebook 02 for each strided layer",
    ),
    (
        _no_pool,
        "the max pool is missing: the stem shrinks twice, the 7x7 conv (stride 2) and then the 3x3 max pool "
        "(stride 2, padding 1)",
    ),
    (lambda s: _halving(s, pool=False), "the max pool is missing: the stem shrinks twice (conv and pool)"),
    (
        _strided_layer1,
        "layer1 keeps the size the stem leaves (stride 1); only layer2, layer3 and layer4 halve the map",
    ),
    (
        _no_padding,
        "the stem conv has padding 3 and the max pool padding 1: leave them out and the maps shrink too much",
    ),
]


def _as_sizes(value: Any) -> list[Any] | None:
    try:
        return list(value)
    except TypeError:
        return None


def stage_map_sizes(fn: Callable[[int], Sequence[int]], configs: Sequence[int] | None = None) -> None:
    """Check ``fn(size) -> [m1, m2, m3, m4]``: the map size after layer1..layer4 of an ImageNet ResNet.

    The image is ``size`` x ``size``; the answer is 4 ints (a list or a tuple), e.g. [56, 28, 14, 7] for 224.
    ``configs``: image sizes; by default 224, 256, 160, 100, 97, 64, 33 and 320 (odd sizes included,
    where rounding matters).
    """
    checker = "stage_map_sizes"
    sizes = [int(s) for s in (configs or _MAP_CASES)]
    results = {s: call_student(checker, checker, f"stage_map_sizes({s})", fn, s) for s in sizes}

    def check_one(size: int) -> None:
        got, expected = _as_sizes(results[size]), reference_stage_map_sizes(size)
        where = f"stage_map_sizes({size})"
        if got is None:
            raise fail(
                checker, f"{where} returned {results[size]!r}", "return the four sizes as a list (or tuple) of ints"
            )
        if len(got) != 4:
            raise fail(
                checker,
                f"{where} returned {len(got)} values {got}, expected 4: {expected}",
                "return one size per stage: after layer1, layer2, layer3 and layer4 (not the stem, not the input)",
            )
        bad = [v for v in got if not _is_int(v)]
        if bad:
            raise fail(checker, f"{where} returned {got}: {bad[0]!r} is not an int", _type_hint(bad[0]))
        if got != expected:
            clean = {s: list(v) for s, v in results.items() if _as_sizes(v) is not None}
            hints = [h for formula, h in _WRONG_MAPS if all(v == formula(s) for s, v in clean.items())]
            raise fail(
                checker,
                f"{where} returned {got}, expected {expected}",
                hints[:1]
                or [
                    "walk the layers that shrink the map: stem conv (7x7, stride 2, padding 3), max pool (3x3, "
                    "stride 2, padding 1), then the first block of layer2, layer3, layer4 (3x3, stride 2, padding 1)"
                ],
            )

    n = run_configs(sizes, check_one)
    passed(checker, f"{n_match(n, 'image sizes')} the feature maps of resnet_lab.resnet (layer1..layer4)")
