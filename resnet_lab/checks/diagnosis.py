"""Diagnosis: turning a difference between the student's module and the reference into a hint.

Each function looks at the student's module (its layers), a trace of its forward, or its output
next to the reference's, and returns hint lines naming the likely mistake, among them the ten
mistakes of popular ResNet tutorials (notebook 09). The checkers hand these to the engine through
a :class:`~resnet_lab.checks.engine.Diagnosis`.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from ..blocks import Bottleneck
from .engine import Outcome, Tracer, close, fmt_shape, pair_text

HINT_RELU_BEFORE_ADD = (
    "the output is never negative where the reference's residual branch is negative: your block's output "
    "never dips below ReLU(shortcut), so what the residual branch adds is never negative. "
    "Is ReLU applied before the shortcut is added? The order is BN -> add the shortcut -> ReLU."
)

HINT_PLAIN_ORDER = (
    "check the order of operations of a plain block (residual=False): conv -> BN -> ReLU, conv -> BN -> ReLU, "
    "each BN right after its conv and each ReLU after its BN; nothing is added back"
)

# --------------------------------------------------------------------------------------
# Diagnosis of block mistakes
# --------------------------------------------------------------------------------------


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def padded_1x1_hints(model: nn.Module) -> list[str]:
    hints = []
    for name, conv in conv_layers(model):
        if conv.kernel_size == (1, 1) and conv.padding not in ((0, 0), "valid"):
            hints.append(
                f"`{name}` is a 1x1 convolution with padding={pair_text(conv.padding)}: the 1x1 conv has padding, "
                "so the map grows by 2 pixels (H x W -> (H+2) x (W+2)) and no longer matches the shortcut. "
                "A 1x1 conv needs padding=0."
            )
    return hints


def bias_hints(model: nn.Module) -> list[str]:
    named = [n for n, c in conv_layers(model) if c.bias is not None]
    if named:
        return [
            f"{', '.join('`' + n + '`' for n in named[:3])} {'has' if len(named) == 1 else 'have'} a bias: "
            "a conv followed by BN needs none (BN's own shift replaces it), so use bias=False"
        ]
    return []


_SHORTCUT_NAME = re.compile(r"down|short|proj|skip|ident|resid", re.IGNORECASE)


def projection_convs(
    model: nn.Module, in_channels: int, out_channels: int, bottleneck: bool = False
) -> list[tuple[str, nn.Conv2d]]:
    """The 1x1 convs that look like a projection shortcut in_channels -> out_channels."""
    found = [
        (n, c)
        for n, c in conv_layers(model)
        if c.kernel_size == (1, 1) and c.in_channels == in_channels and c.out_channels == out_channels
    ]
    if bottleneck and in_channels * 4 == out_channels and found:
        # When in_channels == planes, conv3 (planes -> 4 planes) has the projection's shape too.
        named = [(n, c) for n, c in found if _SHORTCUT_NAME.search(n)]
        if named:
            return named
        if sum(c.kernel_size == (1, 1) for _, c in conv_layers(model)) <= 2:
            return []  # just conv1 and conv3: no projection
        return [(n, c) for n, c in found if "conv3" not in n] or found[-1:]
    return found


def block_static_hints(
    model: nn.Module, in_channels: int, out_channels: int, stride: int, bottleneck: bool = False, residual: bool = True
) -> list[str]:
    hints = padded_1x1_hints(model) + bias_hints(model)
    shape_changes = stride != 1 or in_channels != out_channels
    projections = projection_convs(model, in_channels, out_channels, bottleneck)
    if not residual:
        if projections:
            hints.append(
                f"with residual=False there is no shortcut at all, so nothing to project: "
                f"`{projections[0][0]}` should not exist in a plain block"
            )
        return hints
    if shape_changes and not projections and stride != 1 and in_channels == out_channels:
        hints.append(
            f"the block strides here (stride {stride}) but keeps {in_channels} channels, and your block has no "
            "projection shortcut: the shortcut also needs a projection when the block strides, not only when the "
            "channels change (x keeps its full map while the branch shrinks it). Is your condition looking only "
            "at the channels? Use one exactly when stride != 1 or in_channels != out_channels."
        )
    elif shape_changes and not projections:
        hints.append(
            f"the shape changes here ({in_channels} -> {out_channels} channels, stride {stride}) but your block has no "
            f"projection shortcut (a 1x1 conv {in_channels}->{out_channels} + BN): is the condition for a projection "
            "inverted? Use one exactly when stride != 1 or in_channels != out_channels."
        )
    if not shape_changes and projections:
        hints.append(
            f"the shape doesn't change here ({in_channels} -> {out_channels} channels, stride 1), yet your block has a "
            f"projection `{projections[0][0]}`: the shortcut should be the identity. Is the condition for a projection "
            "inverted? Use one exactly when stride != 1 or in_channels != out_channels."
        )
    for name, conv in projections:
        if shape_changes and conv.stride != (stride, stride):
            hints.append(
                f"your projection `{name}` has stride {pair_text(conv.stride)} but the block has stride {stride}: "
                f"the shortcut keeps the full map while the branch shrinks it by {stride}, so the spatial sizes "
                f"disagree at the add. Give the projection's 1x1 conv stride={stride}."
            )
    if bottleneck and stride != 1:
        proj = {id(c) for _, c in projections}
        for name, conv in conv_layers(model):
            if conv.kernel_size == (1, 1) and conv.stride != (1, 1) and id(conv) not in proj:
                hints.append(
                    f"the stride sits on the 1x1 conv `{name}` (ResNet v1, as in the paper); this course, like "
                    "torchvision, puts it on the 3x3 conv (v1.5): conv2 = 3x3 with stride, the 1x1 convs stride 1"
                )
    return hints


def projection_input_hints(
    model: nn.Module,
    in_channels: int,
    out_channels: int,
    x_shape: tuple[int, ...],
    tracer: Tracer,
    bottleneck: bool = False,
) -> list[str]:
    for name, conv in projection_convs(model, in_channels, out_channels, bottleneck) + [
        (n, c)
        for n, c in conv_layers(model)
        if c.kernel_size == (1, 1)
        and c.out_channels == out_channels
        and c.in_channels == out_channels
        and in_channels != out_channels
    ]:
        call = tracer.first_call(conv)
        if call is not None and call.in_shape is not None and call.in_shape != x_shape:
            return [
                f"your projection `{name}` was applied to a tensor of shape {fmt_shape(call.in_shape)}, not to the "
                f"block's input x {fmt_shape(x_shape)}: is the projection applied to the block's output instead of "
                "its input? The shortcut is projection(x), added to the branch's output."
            ]
    return []


def reference_parts(ref: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference block's residual branch F(x) (before the add) and its shortcut."""
    with torch.no_grad():
        b = torch.relu(ref.bn1(ref.conv1(x)))
        if isinstance(ref, Bottleneck):
            b = torch.relu(ref.bn2(ref.conv2(b)))
            b = ref.bn3(ref.conv3(b))
        else:
            b = ref.bn2(ref.conv2(b))
        s = ref.downsample(x) if ref.downsample is not None else x
    return b, s


def block_mismatch_hints(outcome: Outcome, residual: bool = True) -> list[str]:
    ref = outcome.reference
    b, s = reference_parts(ref, outcome.x)
    y = outcome.stu_out
    hints = []
    if residual:
        if close(y, torch.relu(torch.relu(b) + s)) or (
            bool((y >= torch.relu(s) - 1e-4).all()) and bool((torch.relu(b + s) < torch.relu(s) - 1e-3).any())
        ):
            hints.append(HINT_RELU_BEFORE_ADD)
        elif close(y, torch.relu(b)):
            hints.append("your output equals ReLU(F(x)): the shortcut is never added (or residual=True is ignored)")
        elif close(y, b + s):
            hints.append("your output is F(x) + shortcut without the final ReLU: apply ReLU after the add")
        elif close(y, torch.relu(b + outcome.x)) if b.shape == outcome.x.shape else False:
            hints.append("your shortcut adds x itself although the reference projects it: use the projection here")
    else:
        if close(y, torch.relu(b + s)) if b.shape == s.shape else False:
            hints.append(
                "a plain block (residual=False) has no shortcut, but yours still adds its input: "
                "a plain block returns ReLU(F(x))"
            )
        elif close(y, b):
            hints.append("a plain block's output still ends with a ReLU: return ReLU(F(x)), not F(x)")
        else:
            if bool((y < 0).any()) and not bool((outcome.ref_out < 0).any()):
                hints.append("your output has negative values: a plain block ends with a ReLU, ReLU(F(x))")
            hints.append(HINT_PLAIN_ORDER)
    if not hints and bool((y < 0).any()) and not bool((outcome.ref_out < 0).any()):
        hints.append("your output has negative values: is the final ReLU (after the add) missing?")
    return hints


def block_shape_hints(got: tuple, expected: tuple) -> list[str]:
    if len(got) == 4 and len(expected) == 4:
        if got[1] != expected[1]:
            return [f"the block should output {expected[1]} channels (planes x expansion), yours outputs {got[1]}"]
        if got[2] > expected[2]:
            return [
                "your output map is larger than expected: is the stride applied (first 3x3 conv of the branch, "
                "and the projection)? Does a 1x1 conv have padding?"
            ]
        if got[2] < expected[2]:
            return ["your output map is smaller than expected: is the stride applied more than once?"]
    return []


def stage_hints(seq: nn.Module, ref_table: list, planes: int, expansion: int, num_blocks: int) -> list[str]:
    hints = []
    children = list(seq.children())
    if len(children) != num_blocks:
        return [f"the stage should have {num_blocks} blocks, yours has {len(children)}"]
    for i, (child, row) in enumerate(zip(children, ref_table)):
        convs = conv_layers(child)
        got_in = getattr(child, "in_channels", convs[0][1].in_channels if convs else None)
        if got_in is not None and got_in != row.in_channels:
            hint = f"block {i} was built for {got_in} input channels, but it receives {row.in_channels}"
            if i > 0 and got_in == planes and expansion != 1:
                hint += (
                    f" (block {i - 1} outputs planes {planes} x expansion {expansion} = {planes * expansion}): "
                    "after each block set in_channels = planes * block.expansion"
                )
            hints.append(hint)
            break
        got_stride = getattr(child, "stride", None)
        if isinstance(got_stride, int) and got_stride != row.stride:
            hints.append(
                f"block {i} has stride {got_stride}, expected {row.stride}: "
                "only the first block of a stage strides, the others use stride 1"
            )
            break
    return hints


def stem_hints(model: nn.Module, size: int) -> list[str]:
    convs = conv_layers(model)
    stem = convs[0][1] if convs else None
    has_maxpool = any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    parts = []
    if stem is not None and (stem.kernel_size[0] >= 7 or stem.stride != (1, 1)):
        parts.append(
            f"the stem is a {stem.kernel_size[0]}x{stem.kernel_size[1]} conv with stride {pair_text(stem.stride)}"
        )
    if has_maxpool:
        parts.append("there is a max pool")
    if not parts:
        return []
    factor = (stem.stride[0] if stem is not None else 1) * (2 if has_maxpool else 1)
    return [
        f"{' and '.join(parts)}: an ImageNet-style stem, which shrinks a {size}x{size} image by {factor} before "
        "the first stage (the ImageNet stem, 7x7 stride-2 conv + max pool, by 4). CIFAR nets use a 3x3 conv "
        "with stride 1 and no max pool."
    ]


def stage_lengths(model: nn.Module) -> list[int]:
    """Blocks per stage: top-level Sequential/ModuleList children that contain convolutions."""
    lengths = []
    for child in model.children():
        if isinstance(child, (nn.Sequential, nn.ModuleList)) and conv_layers(child) and len(child) > 0:
            if all(conv_layers(block) for block in child):
                lengths.append(len(child))
    return lengths


def fixed_pool_hints(model: nn.Module) -> list[str]:
    for name, m in model.named_modules():
        if isinstance(m, (nn.AvgPool2d, nn.MaxPool2d)) and m.kernel_size in (7, (7, 7)):
            return [
                f"`{name}` is a fixed {type(m).__name__}(7): it only fits the 7x7 map that a 224x224 input leaves, "
                "so the net only accepts 224x224 inputs. Use global average pooling, nn.AdaptiveAvgPool2d(1)."
            ]
    return []
