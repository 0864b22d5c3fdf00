"""Checkers for the exercises that assemble blocks: a stage, the CIFAR 6n+2 nets, a whole ImageNet
ResNet, its classifier head, the option-A shortcut, and a check that any model suits small (32x32) images.

Each exercise checker takes the student's function (or class), optionally a list of
configurations (``configs``; the defaults are the ones the notebooks show), and prints one ``✓``
line or raises ``AssertionError`` with hints.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import BasicBlock, Bottleneck, ZeroPadShortcut
from ..costs import count_parameters
from ..models import IMAGENET_CONFIGS, cifar_resnet, resnet
from ..stages import make_stage
from .diagnosis import (
    bias_hints,
    conv_layers,
    fixed_pool_hints,
    padded_1x1_hints,
    stage_hints,
    stage_lengths,
    stem_hints,
)
from .engine import (
    ACCEPT_SIZES,
    SEED,
    Diagnosis,
    Outcome,
    Tracer,
    build,
    close,
    compare,
    fail,
    fmt_shape,
    forward,
    n_match,
    parameter_problem,
    passed,
    run_configs,
)

__all__ = ["stage", "cifar_net", "imagenet_resnet", "small_input_net", "classifier_head", "zero_pad_shortcut"]

_BLOCKS = {"BasicBlock": BasicBlock, "Bottleneck": Bottleneck}


def stage(fn: Callable[..., Any], configs: Sequence[tuple] | None = None) -> None:
    """Check ``fn(block, in_channels, planes, num_blocks, stride) -> nn.Sequential`` against ``resnet_lab.make_stage``.

    ``configs``: (block, in_channels, planes, num_blocks, stride) tuples, block a class or its name
    ("BasicBlock", "Bottleneck"); by default two stages of each block type, two of them strided.
    """
    checker = "stage"
    name = getattr(fn, "__name__", "your function")
    default = [
        (BasicBlock, 64, 64, 2, 1),
        (BasicBlock, 64, 128, 2, 2),
        (Bottleneck, 64, 64, 3, 1),
        (Bottleneck, 256, 128, 2, 2),
    ]
    stage_configs = [(_BLOCKS.get(c[0], c[0]), *c[1:]) for c in (configs or default)]

    def check_one(config: tuple) -> None:
        block, in_channels, planes, num_blocks, stride = config
        text = f"{name}({block.__name__}, {in_channels}, {planes}, {num_blocks}, stride={stride})"
        where = f"{checker}, {text}"
        torch.manual_seed(SEED)
        reference, table = make_stage(block, in_channels, planes, num_blocks, stride)
        torch.manual_seed(SEED)
        student = build(checker, where, text, fn, block, in_channels, planes, num_blocks, stride)
        hints = stage_hints(student, table, planes, block.expansion, num_blocks)
        if hints:
            raise fail(where, "the blocks of your stage don't match resnet_lab.make_stage", hints)
        x = torch.randn(2, in_channels, 8, 8, generator=torch.Generator().manual_seed(SEED + 1))
        diagnosis = Diagnosis(
            static=lambda: padded_1x1_hints(student),
            on_shape=lambda got, exp: [
                "only the first block strides; the stage's output has planes * block.expansion channels"
            ],
        )
        compare(checker, where, student, reference, x, diagnosis)

    with torch.random.fork_rng(devices=[]):
        n = run_configs(stage_configs, check_one)
    passed(checker, f"{n_match(n)} resnet_lab.make_stage (blocks, shapes, parameter counts, outputs)")


class _SymmetricZeroPad(nn.Module):
    """Option A with the zero channels split before and after (a common equivalent implementation)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.extra, self.stride = out_channels - in_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


def _cifar_static_hints(student: nn.Module, size: int) -> list[str]:
    hints = stem_hints(student, size)
    one_by_one = [n for n, c in conv_layers(student) if c.kernel_size == (1, 1)]
    if one_by_one:
        hints.append(
            f"your net has 1x1 projection convs ({', '.join(one_by_one[:2])}, ...): the paper's "
            "CIFAR nets use option A shortcuts (subsample + zero-pad the extra channels, no "
            "parameters), e.g. resnet_lab.ZeroPadShortcut"
        )
    return hints + padded_1x1_hints(student) + bias_hints(student)


def cifar_net(fn: Callable[..., nn.Module], configs: Sequence[tuple] | None = None) -> None:
    """Check ``fn(depth, in_channels=3, num_classes=10)`` against ``resnet_lab.cifar_resnet`` (option A shortcuts).

    Parameter counts for depths 20 (269,722) and 56; shapes, feature-map sizes and outputs (weights
    copied) for ResNet-20 on 32x32 RGB and on 28x28 grayscale (in_channels=1) inputs.
    ``configs``: (depth, in_channels, num_classes, input size or None for the parameter count only).
    """
    checker = "cifar_net"
    name = getattr(fn, "__name__", "your function")
    default = [(20, 3, 10, 32), (20, 1, 10, 28), (56, 3, 10, None)]

    def check_one(config: tuple) -> None:
        depth, in_channels, num_classes, size = config
        text = f"{name}({depth}, in_channels={in_channels}, num_classes={num_classes})"
        where = f"{checker}, {text}"
        torch.manual_seed(SEED)
        reference = cifar_resnet(depth, in_channels, num_classes)
        torch.manual_seed(SEED)
        student = build(checker, where, text, fn, depth, in_channels, num_classes)
        expected, got = count_parameters(reference), count_parameters(student)

        def static() -> list[str]:
            return _cifar_static_hints(student, size or 32)

        if got != expected:
            problem = parameter_problem(student, reference) or ""
            raise fail(
                where, f"ResNet-{depth} should have {expected:,} parameters, yours has {got:,}. {problem}", static()
            )
        if size is None:
            return

        def maps(stu_tracer: Tracer, ref_tracer: Tracer) -> None:
            got_map, want_map = stu_tracer.last_conv_map(), ref_tracer.last_conv_map()
            if got_map is not None and want_map is not None and got_map[2:] != want_map[2:]:
                raise fail(
                    where,
                    f"on {size}x{size} inputs the last feature map is {got_map[2]}x{got_map[3]}, "
                    f"expected {want_map[2]}x{want_map[3]} (maps of {size}, {size // 2}, "
                    f"{size // 4} in the three stages)",
                    static() or ["only the first conv of stages 2 and 3 strides"],
                )

        x = torch.randn(1, in_channels, size, size, generator=torch.Generator().manual_seed(SEED + 1))
        try:
            compare(checker, where, student, reference, x, Diagnosis(static=static, after_trace=maps))
        except AssertionError as first_error:
            if "outputs differ" not in str(first_error):
                raise
            # Option A written with the zero channels on both sides is just as right.
            variant = copy.deepcopy(reference)
            for m in variant.modules():
                if isinstance(m, BasicBlock) and isinstance(m.downsample, ZeroPadShortcut):
                    d = m.downsample
                    m.downsample = _SymmetricZeroPad(d.in_channels, d.out_channels, d.stride)
            try:
                compare(checker, where, student, variant, x, Diagnosis(static=static))
            except AssertionError:
                raise first_error from None

    with torch.random.fork_rng(devices=[]):
        run_configs([tuple(c) for c in (configs or default)], check_one)
    if configs:
        passed(
            checker,
            f"{n_match(len(configs))} resnet_lab.cifar_resnet "
            "(parameter counts; shapes, feature maps and outputs where an input size is given)",
        )
    else:
        passed(
            checker,
            "ResNet-20 has 269,722 parameters and ResNet-56 853,018; ResNet-20 matches "
            "resnet_lab.cifar_resnet on 32x32 RGB and 28x28 grayscale inputs (shapes, feature maps, outputs)",
        )


def _build_imagenet(checker: str, fn: Callable[..., nn.Module], depth: int) -> tuple[nn.Module, str]:
    name = getattr(fn, "__name__", "your function")
    try:
        params = inspect.signature(fn).parameters.values()
        required = [
            p for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        takes_depth = bool(required) or any(p.name == "depth" or p.kind is p.VAR_POSITIONAL for p in params)
    except (TypeError, ValueError):
        takes_depth = True
    text = f"{name}({depth})" if takes_depth else f"{name}()"
    args = (depth,) if takes_depth else ()
    return build(checker, f"{checker}, {text}", text, fn, *args), text


def _bottleneck_channel_hints(student: nn.Module, expansion: int) -> list[str]:
    if expansion == 1:
        return []
    for sname, child in student.named_children():
        if isinstance(child, (nn.Sequential, nn.ModuleList)) and len(child) > 1:
            first_out = conv_layers(child[0])
            second_in = conv_layers(child[1])
            if first_out and second_in:
                widest = max(c.out_channels for _, c in first_out)
                if second_in[0][1].in_channels * expansion == widest:
                    return [
                        f"`{sname}.1` takes {second_in[0][1].in_channels} input channels, but `{sname}.0` "
                        f"outputs {widest}: after a bottleneck, in_channels = planes * expansion "
                        f"({second_in[0][1].in_channels} x {expansion})"
                    ]
    return []


def imagenet_resnet(fn: Callable[..., nn.Module], depth: int = 50) -> None:
    """Check an ImageNet ResNet builder against ``resnet_lab.resnet(depth)``.

    ``fn`` is called as ``fn(depth)``, or as ``fn()`` when it takes no arguments (e.g. ``my_resnet50``).
    Checks blocks per stage, parameter counts, outputs on 224x224 (and 64x64) inputs with weights copied, and
    that 160x160 and 100x100 inputs work too (a fixed AvgPool2d(7) head fails there).
    """
    checker = "imagenet_resnet"
    if depth not in IMAGENET_CONFIGS:
        raise ValueError(f"depth must be one of {sorted(IMAGENET_CONFIGS)}; got {depth}")
    block, layers = IMAGENET_CONFIGS[depth]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        reference = resnet(depth)
        torch.manual_seed(SEED)
        student, text = _build_imagenet(checker, fn, depth)
        where = f"{checker}, {text}"
        lengths = stage_lengths(student)
        if len(lengths) == 4 and lengths != list(layers):
            raise fail(
                where,
                f"blocks per stage: expected {list(layers)}, got {lengths}",
                f"ResNet-{depth} has {list(layers)} {block.__name__} blocks in its four stages (Table 1 of the paper)",
            )

        def static() -> list[str]:
            return (
                fixed_pool_hints(student)
                + padded_1x1_hints(student)
                + _bottleneck_channel_hints(student, block.expansion)
            )

        if fixed_pool_hints(student):
            # Run 160x160 first: a fixed pool fails there even when 224x224 works.
            x160 = torch.randn(1, 3, 160, 160, generator=torch.Generator().manual_seed(SEED + 1))
            forward(checker, where, student, x160, lambda exc, tracer: ["your net fails on a 160x160 input"] + static())
            raise fail(where, "your head has a fixed-size pooling window", static())
        any_size = (
            "a ResNet must accept any input size of at least 32x32: is there a fixed 7x7 pooling "
            "(AvgPool2d(7), F.avg_pool2d(x, 7)) in the head? Use global average pooling, "
            "nn.AdaptiveAvgPool2d(1)."
        )
        small = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(SEED))
        x224 = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(SEED + 1))
        compare(
            checker,
            where,
            student,
            reference,
            small,
            Diagnosis(static=static, on_error=lambda exc, tracer: [any_size] + static()),
            extra_inputs=[x224],
        )
        for size in ACCEPT_SIZES:
            x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(SEED + size))
            out, _ = forward(
                checker,
                where,
                student,
                x,
                lambda exc, tracer, size=size: (
                    [f"your net works on 224x224 but fails on {size}x{size}", any_size] + static()
                ),
            )
            if tuple(out.shape) != (1, 1000):
                raise fail(
                    where,
                    f"output shape for a {size}x{size} input: expected (1, 1000), got {fmt_shape(out.shape)}",
                    [any_size],
                )
    total = count_parameters(reference)
    sizes = " and ".join(f"{s}x{s}" for s in ACCEPT_SIZES)
    passed(
        checker,
        f"ResNet-{depth} matches resnet_lab.resnet{depth} (blocks per stage {list(layers)}, "
        f"{total:,} parameters, outputs at 224x224 and 64x64; also accepts {sizes})",
    )


def small_input_net(model: nn.Module, size: int = 32, min_map: int = 4) -> None:
    """Check that ``model`` suits small images: on ``size`` x ``size`` inputs its last feature map is >= ``min_map``.

    Flags the ImageNet stem (7x7 stride-2 conv + max pool) on 32x32 CIFAR images, where the
    last stage of ResNet-18 sees a 1x1 map.
    """
    checker = "small_input_net"
    where = f"{checker}, {type(model).__name__} on {size}x{size}"
    convs = conv_layers(model)
    if not convs:
        raise fail(where, "the model has no Conv2d layers")
    in_channels = convs[0][1].in_channels
    x = torch.zeros(1, in_channels, size, size)
    was_training = model.training
    try:
        _, tracer = forward(checker, where, model, x)
    finally:
        model.train(was_training)
    shape = tracer.last_conv_map()
    assert shape is not None
    h, w = shape[2], shape[3]
    if min(h, w) < min_map:
        raise fail(
            where,
            f"on {size}x{size} inputs the last feature map is {h}x{w}: the last stage has almost "
            "nothing left to look at",
            stem_hints(model, size)
            or [
                "too much downsampling for small images: use a 3x3 stride-1 stem "
                "and no max pool (resnet_lab.cifar_resnet)"
            ],
        )
    # A diagnostic for any model, not an exercise: it states the one property it measured.
    print(f"✓ {checker}: on {size}x{size} inputs the last feature map is {h}x{w} (at least {min_map}x{min_map})")


# --------------------------------------------------------------------------------------
# Notebook 05: the classifier head; notebook 06: the option-A shortcut
# --------------------------------------------------------------------------------------


def _head_reference(in_features: int, num_classes: int) -> nn.Module:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_features, num_classes))


def _head_mismatch_hints(outcome: Outcome) -> list[str]:
    fc = outcome.reference[2]
    x, y = outcome.x, outcome.stu_out
    with torch.no_grad():
        if close(y, fc(x.amax(dim=(2, 3)))):
            return [
                "your head takes the maximum of each channel's map: global *average* pooling takes the mean "
                "(max pooling is a different network: its weights would not fit a trained ResNet)"
            ]
        if close(y, fc(x.sum(dim=(2, 3)))):
            return ["your head sums each channel's map: divide by the number of positions (take the mean)"]
        h, w = x.shape[2:]
        if h >= 7 and w >= 7 and close(y, fc(x[:, :, :7, :7].mean(dim=(2, 3)))):
            return [
                "your head averages only the top-left 7x7 corner of the map: a fixed 7x7 pooling window. "
                "Average the whole map, whatever its size (nn.AdaptiveAvgPool2d(1))"
            ]
    return ["the head is: average each channel over the whole map (one number per channel), then the fc layer"]


def classifier_head(
    cls: Callable[[int, int], nn.Module], configs: Sequence[tuple[int, int, int]] | None = None
) -> None:
    """Check ``cls(in_features, num_classes)``: global average pooling, flatten, fc; (N, C, H, W) -> (N, classes).

    Compared (fc weights copied) with ``AdaptiveAvgPool2d(1) -> Flatten -> Linear`` on maps of several sizes,
    so a fixed ``AvgPool2d(7)`` (mistake 6), max pooling or a sum instead of a mean are caught; the 1x1 map
    comes as a batch of one image, so a ``.squeeze()`` that also drops the batch dimension is caught too.
    ``configs``: (in_features, num_classes, map size[, batch size]); by default maps of 7, 5, 9 and 1 pixels
    (batches of 2, 2, 2 and 1).
    """
    checker = "classifier_head"
    name = getattr(cls, "__name__", "your class")
    default = [(512, 10, 7), (64, 5, 5), (32, 3, 9), (2048, 1000, 1, 1)]

    def shape_hints(got: tuple[int, ...], num_classes: int, batch: int) -> list[str]:
        if batch == 1 and tuple(got) == (num_classes,):
            return [
                "with a batch of one image your output lost the batch dimension: .squeeze() drops every "
                "dimension of size 1, N included; flatten from dimension 1 on (torch.flatten(x, 1)) instead"
            ]
        return [
            f"the head should return one score per class, shape (N, {num_classes}): flatten the "
            "pooled (N, C, 1, 1) map to (N, C) before the fc layer"
        ]

    def check_one(config: tuple[int, ...]) -> None:
        in_features, num_classes, size = config[:3]
        batch = config[3] if len(config) > 3 else 2
        text = f"{name}({in_features}, {num_classes})"
        images = "one image" if batch == 1 else f"{batch} images"
        where = f"{checker}, {text} on a {size}x{size} map, a batch of {images}"
        torch.manual_seed(SEED)
        reference = _head_reference(in_features, num_classes)
        torch.manual_seed(SEED)
        student = build(checker, where, text, cls, in_features, num_classes)
        x = torch.randn(batch, in_features, size, size, generator=torch.Generator().manual_seed(SEED + size))
        diagnosis = Diagnosis(
            static=lambda: fixed_pool_hints(student),
            on_mismatch=_head_mismatch_hints,
            on_shape=lambda got, exp: shape_hints(got, num_classes, batch),
        )
        compare(checker, where, student, reference, x, diagnosis)

    with torch.random.fork_rng(devices=[]):
        n = run_configs([tuple(c) for c in (configs or default)], check_one)
    passed(checker, f"{n_match(n, 'map sizes')} global average pooling + fc (outputs with the same fc weights)")


def _zero_pad_mismatch_hints(x: torch.Tensor, y: torch.Tensor, in_channels: int, stride: int) -> list[str]:
    ref = ZeroPadShortcut(in_channels, y.shape[1], stride)(x)
    extra = y.shape[1] - in_channels
    if extra > 0 and bool((y[:, :extra] == 0).all()) and close(y[:, extra:], ref[:, :in_channels]):
        return ["your zero channels come first: the zeros go after the input's channels (or half before, half after)"]
    kept = y[:, :in_channels]
    if y.shape[1] > in_channels and not bool((y[:, in_channels:] == 0).all()) and close(kept, ref[:, :in_channels]):
        return ["the added channels must be zeros: option A pads the shortcut with zero channels, it copies nothing"]
    if stride > 1:
        if kept.shape[2:] == F.avg_pool2d(x, stride, ceil_mode=True).shape[2:] and close(
            kept, F.avg_pool2d(x, stride, ceil_mode=True)
        ):
            return [
                "you average each window: option A keeps one pixel of each stride x stride window (every "
                "stride-th pixel, starting with the first), unchanged"
            ]
        shifted = x[:, :, 1::stride, 1::stride]
        if kept.shape == shifted.shape and close(kept, shifted):
            return ["you keep the pixels at odd positions: start with the first pixel (index 0), like a strided conv"]
    return [
        "the first in_channels channels of the output should be the input's every stride-th pixel, unchanged; "
        "the extra channels are zeros"
    ]


def zero_pad_shortcut(cls: Callable[[int, int, int], nn.Module], configs: Sequence[tuple] | None = None) -> None:
    """Check ``cls(in_channels, out_channels, stride)``: the paper's option-A shortcut, without parameters.

    (N, C_in, H, W) -> (N, C_out, ceil(H/stride), ceil(W/stride)): keep every stride-th pixel, append
    C_out - C_in zero channels (at the end, or split before and after: both are accepted).
    ``configs``: (in_channels, out_channels, stride, map size); by default four, one on an odd map.
    """
    checker = "zero_pad_shortcut"
    name = getattr(cls, "__name__", "your class")
    default = [(16, 32, 2, 32), (32, 64, 2, 16), (16, 16, 1, 8), (16, 32, 2, 7)]

    def check_one(config: tuple) -> None:
        in_channels, out_channels, stride, size = config
        text = f"{name}({in_channels}, {out_channels}, stride={stride})"
        where = f"{checker}, {text} on a {size}x{size} map"
        student = build(checker, where, text, cls, in_channels, out_channels, stride)
        n_params = count_parameters(student)
        if n_params:
            raise fail(
                where,
                f"your shortcut has {n_params:,} parameters, expected none",
                "option A has no weights: it subsamples and pads with zeros (a 1x1 conv shortcut is option B)",
            )
        x = torch.randn(2, in_channels, size, size, generator=torch.Generator().manual_seed(SEED + size))
        y, _ = forward(checker, where, student, x)
        references = [
            ZeroPadShortcut(in_channels, out_channels, stride),
            _SymmetricZeroPad(in_channels, out_channels, stride),
        ]
        expected = references[0](x)
        if tuple(y.shape) != tuple(expected.shape):
            hints = []
            if y.shape[1:2] != expected.shape[1:2]:
                hints.append(
                    f"the output needs {out_channels} channels: append {out_channels - in_channels} zero channels "
                    "(pad the channel dimension, not height or width)"
                )
            elif y.shape[2] == size and stride > 1:
                hints.append("the map keeps its size: keep only every stride-th pixel (in height and width)")
            elif y.shape[2] == size // stride:
                hints.append(
                    f"on an odd map ({size} pixels) keep every stride-th pixel *starting with the first*: "
                    f"that is {expected.shape[2]} pixels, as many as a strided conv gives (rounding up)"
                )
            raise fail(where, f"output shape {fmt_shape(y.shape)}, expected {fmt_shape(expected.shape)}", hints)
        if not any(close(y, ref(x)) for ref in references):
            raise fail(
                where,
                "the shapes match but the values differ",
                _zero_pad_mismatch_hints(x, y, in_channels, stride),
            )

    with torch.random.fork_rng(devices=[]):
        n = run_configs([tuple(c) for c in (configs or default)], check_one)
    passed(checker, f"{n_match(n)} resnet_lab.ZeroPadShortcut (no parameters; shapes and values)")
