"""Checkers for notebook 10 (the ResNet family): a pre-activation block, a squeeze-excitation module,
a basic block with squeeze-excitation, and a grouped (ResNeXt) bottleneck.

Each checker takes the student's class, optionally a list of configurations (``configs``), and
prints one ``✓`` line or raises ``AssertionError`` with a hint that names the likely mistake:
a ReLU after the add in a pre-activation block, a projection that reads x instead of the
pre-activated input, an SE module without its sigmoid or applied after the add, a grouped conv whose
width forgets the groups. Notebook 10 loads the package's weights into the student's pre-activation
and SE blocks by name in cells after their checks (the SE module through the SE block that contains it),
so those checkers also require the package's names (``require_names``) once the function is right; the
lesson states the names before the exercise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..blocks import BasicBlock, Bottleneck, SqueezeExcitation, bottleneck_width
from .diagnosis import bias_hints, conv_layers, padded_1x1_hints
from .engine import SEED, Diagnosis, build, close, compare, fail, fmt_shape, forward, n_match, passed, run_configs

if TYPE_CHECKING:  # only in annotations
    from .engine import Outcome

__all__ = ["preact_block", "squeeze_excitation", "se_block", "grouped_bottleneck"]

HINT_RELU_AFTER_ADD = (
    "your output equals ReLU(the reference's output): ReLU after the add. A pre-activation block returns "
    "F(x) + shortcut as it is; the ReLUs sit before each conv (BN -> ReLU -> conv), and the net's final "
    "BN + ReLU comes once, after the last stage."
)
HINT_SE_AFTER_ADD = (
    "your SE module rescales the sum: SE applied after the add. It belongs on the residual branch, "
    "F(x) -> SE(F(x)), before the shortcut is added, so the identity path stays unscaled."
)
HINT_PROJECTION_READS_X = (
    "your projection shortcut reads the raw input x. In this lesson (as in the authors' code and in "
    "resnet_lab) it reads the pre-activated input ReLU(BN1(x)), the same tensor the first conv reads; an "
    "identity shortcut still adds x itself"
)
HINT_NO_SIGMOID = (
    "your gates are not squashed into (0, 1): the sigmoid is missing after the second layer "
    "(gates = sigmoid(W2 ReLU(W1 z))); without it the 'gates' can be negative or larger than 1."
)


def _gen_input(shape: tuple[int, ...], offset: int = 1) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(SEED + offset))


def _n_proj(configs: Sequence[tuple[int, int, int]], expansion: int = 1) -> int:
    return sum(1 for cin, planes, stride in configs if stride != 1 or cin != planes * expansion)


def _seeded_pair(
    make_reference: Callable[[], nn.Module], make_student: Callable[[], nn.Module]
) -> tuple[nn.Module, nn.Module]:
    """(reference, student), each built right after ``torch.manual_seed(SEED)``, reference first."""
    torch.manual_seed(SEED)
    reference = make_reference()
    torch.manual_seed(SEED)
    return reference, make_student()


def require_names(where: str, student: nn.Module, reference: nn.Module, names_hint: str) -> None:
    """Fail unless ``student``'s state dict has the reference's names and shapes.

    The lesson's next cells load the package's weights into the student's module by name
    (``load_state_dict(..., strict=True)``), so a block that computes the right function under other
    names would pass here and fail there. ``names_hint`` says which names the lesson asks for.
    """
    expected = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in student.state_dict().items()}
    if expected == got:
        return
    missing = [k for k in expected if k not in got]
    extra = [k for k in got if k not in expected]
    shapes = [
        f"{k} {fmt_shape(got[k])} (expected {fmt_shape(expected[k])})"
        for k in expected
        if k in got and got[k] != expected[k]
    ]
    parts = [
        f"missing {', '.join(missing[:4])}" if missing else "",
        f"unexpected {', '.join(extra[:4])}" if extra else "",
        f"other shapes: {'; '.join(shapes[:3])}" if shapes else "",
    ]
    raise fail(
        where,
        "your module computes the right function, but the next cells load the package's weights into it by "
        "name, and its names differ: " + "; ".join(p for p in parts if p),
        names_hint,
    )


def _run_basic_variant(
    checker: str, flag: str, block_configs: Sequence[tuple[int, int, int]], check_one: Callable[..., None]
) -> None:
    """Run ``check_one`` on every config (the caller's random stream left untouched), then report a pass
    against ``resnet_lab.BasicBlock(..., <flag>=True)``."""
    with torch.random.fork_rng(devices=[]):
        n = run_configs(block_configs, check_one)
    passed(
        checker,
        f"{n_match(n)} resnet_lab.BasicBlock(..., {flag}=True) (shapes, parameter counts, outputs; "
        f"{_n_proj(block_configs)} with a projection shortcut)",
    )


# --------------------------------------------------------------------------------------
# Pre-activation block
# --------------------------------------------------------------------------------------


def _preact_parts(ref: BasicBlock, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Pieces of the reference pre-activation block, for recognising wrong orders."""
    with torch.no_grad():
        pre = torch.relu(ref.bn1(x))
        branch = ref.conv2(torch.relu(ref.bn2(ref.conv1(pre))))
        identity = x if ref.downsample is None else ref.downsample(pre)
        post_branch = (
            ref.bn2(ref.conv2(torch.relu(ref.bn1(ref.conv1(x)))))
            if ref.bn1.num_features == ref.conv1.out_channels
            else None
        )
    return {"pre": pre, "branch": branch, "identity": identity, "post_branch": post_branch}


def _preact_mismatch_hints(outcome: Outcome) -> list[str]:
    ref, x, y = outcome.reference, outcome.x, outcome.stu_out
    parts = _preact_parts(ref, x)
    if close(y, torch.relu(outcome.ref_out)) or (bool((y >= 0).all()) and bool((outcome.ref_out < 0).any())):
        return [HINT_RELU_AFTER_ADD]
    if ref.downsample is None and close(y, parts["branch"] + parts["pre"]):
        return [
            "your identity shortcut adds ReLU(BN(x)) instead of x: only a projection reads the pre-activated "
            "input; an identity shortcut carries x itself, untouched"
        ]
    if ref.downsample is not None and close(y, parts["branch"] + ref.downsample(x)):
        return [HINT_PROJECTION_READS_X]
    if close(y, parts["branch"]):
        return ["your output is F(x) alone: the shortcut is never added"]
    if parts["post_branch"] is not None and (
        close(y, parts["post_branch"] + parts["identity"]) or close(y, parts["post_branch"] + x)
    ):
        return [
            "your branch is conv -> BN -> ReLU (the 2015 order): a pre-activation block puts BN -> ReLU "
            "before each conv"
        ]
    return [
        "check the order: pre = ReLU(BN1(x)); out = conv2(ReLU(BN2(conv1(pre)))); return out + shortcut, "
        "where a projection shortcut reads pre and an identity shortcut is x"
    ]


def _preact_static_hints(model: nn.Module, in_channels: int, planes: int) -> list[str]:
    hints = padded_1x1_hints(model) + bias_hints(model)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    convs = [c for _, c in conv_layers(model) if c.kernel_size == (3, 3)]
    if bns and convs and in_channels != planes and bns[0].num_features == planes:
        hints.append(
            f"your first BN has {planes} features, but in a pre-activation block it normalises the "
            f"block's input ({in_channels} channels): BN -> ReLU -> conv, so bn1 = BatchNorm2d(in_channels)"
        )
    return hints


HINT_PREACT_NAMES = (
    "keep the names of notebook 10's Basic: bn1 (on the block's input), conv1, bn2, conv2, and downsample, a "
    "Sequential of the 1x1 conv then its BN (None where the shape does not change)"
)


def preact_block(cls: Callable[..., nn.Module], configs: Sequence[tuple[int, int, int]] | None = None) -> None:
    """Check ``cls(in_channels, planes, stride=1)``: a pre-activation basic block (He et al. 2016).

    Compared with ``BasicBlock(in_channels, planes, stride, preact=True, shortcut="B")``: out =
    conv2(ReLU(BN2(conv1(ReLU(BN1(x)))))) + shortcut, no ReLU after the add. A projection shortcut
    (1x1 conv + BN, where the shape changes) reads ReLU(BN1(x)), as in the authors' code; one that reads x
    is named in the hint. Layers may be registered in any order and ReLUs be modules or functions, but
    the state dict must use the package's names (``bn1``, ``conv1``, ``bn2``, ``conv2``, ``downsample``),
    because notebook 10 loads the package's weights into the student's block by name right after.
    ``configs``: (in_channels, planes, stride) triples; by default four, two of them projecting.
    """
    checker = "preact_block"
    name = getattr(cls, "__name__", "your class")
    block_configs = [tuple(c[:3]) for c in (configs or [(16, 16, 1), (16, 32, 2), (32, 32, 1), (32, 64, 2)])]

    def check_one(config: tuple[int, int, int]) -> None:
        in_channels, planes, stride = config
        call_text = f"{name}({in_channels}, {planes}, stride={stride})"
        where = f"{checker}, {call_text}"
        x = _gen_input((2, in_channels, 8, 8))
        reference, student = _seeded_pair(
            lambda: BasicBlock(in_channels, planes, stride, preact=True, shortcut="B"),
            lambda: build(checker, where, call_text, cls, in_channels, planes, stride),
        )
        diagnosis = Diagnosis(
            static=lambda: _preact_static_hints(student, in_channels, planes), on_mismatch=_preact_mismatch_hints
        )
        compare(checker, where, student, reference, x, diagnosis)
        require_names(where, student, reference, HINT_PREACT_NAMES)

    _run_basic_variant(checker, "preact", block_configs, check_one)


# --------------------------------------------------------------------------------------
# Squeeze-excitation module
# --------------------------------------------------------------------------------------


def _excitation_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The student's two fully connected layers: Linear layers or 1x1 convs, in registration order."""
    return [
        (n, m)
        for n, m in module.named_modules()
        if isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1))
    ]


def _copy_excitation(reference: SqueezeExcitation, layers: list[tuple[str, nn.Module]]) -> None:
    with torch.no_grad():
        for ref_layer, (_, layer) in zip((reference.fc1, reference.fc2), layers):
            layer.weight.copy_(ref_layer.weight.reshape(layer.weight.shape))
            if layer.bias is not None:
                layer.bias.copy_(ref_layer.bias)
            else:
                ref_layer.bias.zero_()  # the SE paper's formula has no biases: compare without them


def _layer_text(layer: nn.Module) -> str:
    if isinstance(layer, nn.Linear):
        return f"Linear({layer.in_features}, {layer.out_features})"
    return f"Conv2d({layer.in_channels}, {layer.out_channels}, 1)"


def _width(layer: nn.Module, side: str) -> int:
    if isinstance(layer, nn.Linear):
        return layer.in_features if side == "in" else layer.out_features
    return layer.in_channels if side == "in" else layer.out_channels


def _se_mismatch_hints(reference: SqueezeExcitation, x: torch.Tensor, y: torch.Tensor) -> list[str]:
    with torch.no_grad():
        z = x.mean(dim=(2, 3), keepdim=True)
        logits = reference.fc2(torch.relu(reference.fc1(z)))
        gates = torch.sigmoid(logits)
        zmax = x.amax(dim=(2, 3), keepdim=True)
        gates_max = torch.sigmoid(reference.fc2(torch.relu(reference.fc1(zmax))))
    if close(y, x * logits) or close(y, x * torch.relu(logits)):
        return [HINT_NO_SIGMOID]
    if close(y, x * torch.sigmoid(reference.fc2(reference.fc1(z)))):
        return ["the ReLU between the two layers is missing: gates = sigmoid(W2 ReLU(W1 z))"]
    if close(y, x + x * gates) or close(y, x + gates):
        return ["your module adds the gates; it should multiply: return x * gates"]
    if close(y, x * gates_max):
        return ["the squeeze uses the maximum; SE squeezes with the global *average* of each channel"]
    return ["check the steps: z = mean of x over H and W; gates = sigmoid(W2 ReLU(W1 z)); return x * gates"]


HINT_SE_NAMES = (
    "the lesson asks for torchvision's layout: two 1x1 convolutions with biases, named fc1 (channels -> "
    "channels // reduction) and fc2 (back to channels): after exercise 4 the package's SE block, whose SE module "
    "has torchvision's names, is loaded into your MySEBlock by name, and so into this module"
)


def squeeze_excitation(cls: Callable[..., nn.Module], configs: Sequence[tuple[int, int]] | None = None) -> None:
    """Check ``cls(channels, reduction=16)``: a squeeze-excitation module (Hu et al. 2018), (N, C, H, W) -> same.

    Compared with ``resnet_lab.blocks.SqueezeExcitation``. The function is checked first, whatever the
    layers' style (``nn.Linear`` or 1x1 ``nn.Conv2d``, with or without biases; the squeeze by
    ``AdaptiveAvgPool2d`` or ``x.mean``; the sigmoid as a module or a function), so a wrong step is named
    whatever the style. Then the names: after exercise 4, notebook 10 loads the package's SE block into the
    student's ``MySEBlock`` by name, and so the package's SE weights into this module (torchvision's
    ``SqueezeExcitation`` is loaded only into the package's module, to show the layouts agree), so the two
    layers must be 1x1 convs with biases called ``fc1`` and ``fc2``, torchvision's names; the notebook says so
    before the exercise.
    ``configs``: (channels, reduction) pairs; by default (64, 16), (32, 4) and (48, 16).
    """
    checker = "squeeze_excitation"
    name = getattr(cls, "__name__", "your class")
    cases = [tuple(c) for c in (configs or [(64, 16), (32, 4), (48, 16)])]

    def check_one(case: tuple[int, int]) -> None:
        channels, reduction = case
        call_text = f"{name}({channels}, reduction={reduction})"
        where = f"{checker}, {call_text}"
        torch.manual_seed(SEED)
        reference = SqueezeExcitation(channels, reduction).eval()
        student = build(checker, where, call_text, cls, channels, reduction=reduction)
        squeezed = channels // reduction
        layers = _excitation_layers(student)
        if len(layers) != 2:
            raise fail(
                where,
                f"found {len(layers)} fully connected layers (nn.Linear or 1x1 nn.Conv2d), expected 2",
                f"excitation = two layers: {channels} -> {squeezed} (= channels // reduction), ReLU, "
                f"{squeezed} -> {channels}, then a sigmoid",
            )
        (n1, l1), (n2, l2) = layers
        expected = [(channels, squeezed), (squeezed, channels)]
        got = [(_width(l1, "in"), _width(l1, "out")), (_width(l2, "in"), _width(l2, "out"))]
        if got != expected:
            hint = (
                f"the squeeze layer should have channels // reduction = {channels} // {reduction} = {squeezed} units"
                if got[0][1] != squeezed
                else "the second layer maps the squeezed units back to all channels"
            )
            raise fail(
                where,
                f"layers `{n1}` {_layer_text(l1)} and `{n2}` {_layer_text(l2)}: expected "
                f"{channels} -> {squeezed} and {squeezed} -> {channels}",
                hint,
            )
        _copy_excitation(reference, layers)
        x = _gen_input((2, channels, 5, 5)) + 0.5
        y, _ = forward(checker, where, student, x)
        with torch.no_grad():
            expected_out = reference(x)
        if tuple(y.shape) != tuple(x.shape):
            hints = (
                ["you return the gates; the module returns the input rescaled by them: return x * gates"]
                if tuple(y.shape) in ((2, channels), (2, channels, 1, 1))
                else []
            )
            raise fail(where, f"output shape {fmt_shape(y.shape)}, expected the input's {fmt_shape(x.shape)}", hints)
        if not close(y, expected_out):
            raise fail(
                where,
                "layer shapes match, but the outputs differ (with the same weights)",
                _se_mismatch_hints(reference, x, y),
            )
        require_names(where, student, SqueezeExcitation(channels, reduction), HINT_SE_NAMES)

    with torch.random.fork_rng(devices=[]):
        n = run_configs(cases, check_one)
    passed(checker, f"{n_match(n)} resnet_lab.blocks.SqueezeExcitation (layer sizes, outputs)")


# --------------------------------------------------------------------------------------
# Basic block with squeeze-excitation
# --------------------------------------------------------------------------------------


def _se_block_mismatch_hints(outcome: Outcome) -> list[str]:
    ref, x, y = outcome.reference, outcome.x, outcome.stu_out
    with torch.no_grad():
        branch = ref.bn2(ref.conv2(torch.relu(ref.bn1(ref.conv1(x)))))
        identity = x if ref.downsample is None else ref.downsample(x)
        after_add = [torch.relu(ref.se(branch + identity)), ref.se(torch.relu(branch + identity))]
        no_se = torch.relu(branch + identity)
    if any(close(y, candidate) for candidate in after_add):
        return [HINT_SE_AFTER_ADD]
    if close(y, no_se):
        return ["your output is the block without SE: apply the SE module to the branch before the add"]
    if close(y, torch.relu(ref.se(torch.relu(branch)) + identity)):
        return ["there is a ReLU between the branch's last BN and the SE module: BN -> SE -> add -> ReLU"]
    return ["the order is: branch = BN2(conv2(ReLU(BN1(conv1(x))))); out = ReLU(SE(branch) + shortcut(x))"]


class _ExcitationLike(nn.Module):
    """``SqueezeExcitation`` with layers shaped like the student's (Linear or 1x1 conv, with or without bias)."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.fc1, self.fc2 = (
            (nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
             if isinstance(layer, nn.Linear)
             else nn.Conv2d(layer.in_channels, layer.out_channels, 1, bias=layer.bias is not None))
            for layer in layers
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.mean(dim=(2, 3), keepdim=True)
        if isinstance(self.fc1, nn.Linear):
            z = z.flatten(1)
        gates = torch.sigmoid(self.fc2(torch.relu(self.fc1(z))))
        return x * gates.reshape(x.shape[0], x.shape[1], 1, 1)


def _mirror_student_se(reference: BasicBlock, student: nn.Module, channels: int) -> None:
    """Give the reference an SE module shaped like the student's, so the layers pair up (styles differ)."""
    squeezed = channels // reference.se.reduction
    layers = [
        m
        for _, m in _excitation_layers(student)
        if (_width(m, "in"), _width(m, "out")) in ((channels, squeezed), (squeezed, channels))
    ]
    if len(layers) == 2 and (_width(layers[0], "out"), _width(layers[1], "in")) == (squeezed, squeezed):
        reference.se = _ExcitationLike(layers)


HINT_SE_BLOCK_NAMES = (
    "keep Basic's layers (conv1, bn1, conv2, bn2, downsample) and the SE module as `se`, whose two layers are "
    "1x1 convolutions with biases named fc1 and fc2 (the squeeze_excitation exercise)"
)


def se_block(cls: Callable[..., nn.Module], configs: Sequence[tuple[int, int, int]] | None = None) -> None:
    """Check ``cls(in_channels, planes, stride=1)``: a basic block with squeeze-excitation (reduction 16).

    Compared with ``BasicBlock(in_channels, planes, stride, se=True)`` (option B shortcut): SE rescales
    the residual branch before the add; the SE module's layers may have any style (the reference mirrors
    them). Then the names, which notebook 10's next cell loads by: ``conv1``, ``bn1``, ``conv2``, ``bn2``,
    ``downsample`` and ``se.fc1``/``se.fc2`` (1x1 convs with biases). ``configs``: (in_channels, planes,
    stride) triples.
    """
    checker = "se_block"
    name = getattr(cls, "__name__", "your class")
    block_configs = [tuple(c[:3]) for c in (configs or [(32, 32, 1), (32, 64, 2), (64, 64, 1)])]

    def check_one(config: tuple[int, int, int]) -> None:
        in_channels, planes, stride = config
        call_text = f"{name}({in_channels}, {planes}, stride={stride})"
        where = f"{checker}, {call_text}"
        reference, student = _seeded_pair(
            lambda: BasicBlock(in_channels, planes, stride, se=True),
            lambda: build(checker, where, call_text, cls, in_channels, planes, stride),
        )
        _mirror_student_se(reference, student, planes)
        x = _gen_input((2, in_channels, 8, 8))
        diagnosis = Diagnosis(static=lambda: padded_1x1_hints(student), on_mismatch=_se_block_mismatch_hints)
        compare(checker, where, student, reference, x, diagnosis)
        require_names(where, student, BasicBlock(in_channels, planes, stride, se=True), HINT_SE_BLOCK_NAMES)

    _run_basic_variant(checker, "se", block_configs, check_one)


# --------------------------------------------------------------------------------------
# Grouped (ResNeXt) bottleneck
# --------------------------------------------------------------------------------------


def _grouped_static_hints(model: nn.Module, planes: int, groups: int, base_width: int) -> list[str]:
    hints = padded_1x1_hints(model) + bias_hints(model)
    width = bottleneck_width(planes, groups, base_width)
    per_group = width // groups
    threes = [(n, c) for n, c in conv_layers(model) if c.kernel_size == (3, 3)]
    for name, conv in threes:
        if conv.groups != groups:
            hints.append(f"`{name}` has groups={conv.groups}; the ResNeXt 3x3 conv is split into groups={groups}")
        if conv.out_channels == per_group and groups > 1:
            hints.append(
                f"`{name}` is {conv.out_channels} channels wide, the width of ONE group: the width ignores the groups. "
                f"width = int(planes * base_width / 64) * groups = int({planes} * {base_width} / 64) * {groups} = {width}"
            )
        elif conv.out_channels != width:
            hints.append(
                f"`{name}` is {conv.out_channels} channels wide, expected int(planes * base_width / 64) * "
                f"groups = {width}"
            )
    return hints


def grouped_bottleneck(
    cls: Callable[..., nn.Module], configs: Sequence[tuple[int, int, int, int, int]] | None = None
) -> None:
    """Check ``cls(in_channels, planes, stride=1, groups=1, base_width=64)``: a ResNeXt bottleneck.

    Compared with ``resnet_lab.Bottleneck`` (torchvision's meaning: the 3x3 conv has ``groups`` groups of
    ``int(planes * base_width / 64)`` channels; output 4 x planes). ``configs``: (in_channels, planes,
    stride, groups, base_width); by default 32x4d and 8x8d configurations, one plain ResNet one.
    """
    checker = "grouped_bottleneck"
    name = getattr(cls, "__name__", "your class")
    block_configs = [
        tuple(c) for c in (configs or [(64, 16, 1, 32, 4), (64, 32, 2, 8, 8), (128, 32, 1, 32, 4), (64, 16, 1, 1, 64)])
    ]

    def check_one(config: tuple[int, int, int, int, int]) -> None:
        in_channels, planes, stride, groups, base_width = config
        call_text = f"{name}({in_channels}, {planes}, stride={stride}, groups={groups}, base_width={base_width})"
        where = f"{checker}, {call_text}"
        reference, student = _seeded_pair(
            lambda: Bottleneck(in_channels, planes, stride, groups=groups, base_width=base_width),
            lambda: build(
                checker, where, call_text, cls, in_channels, planes, stride, groups=groups, base_width=base_width
            ),
        )
        x = _gen_input((2, in_channels, 8, 8))
        diagnosis = Diagnosis(static=lambda: _grouped_static_hints(student, planes, groups, base_width))
        compare(checker, where, student, reference, x, diagnosis)

    with torch.random.fork_rng(devices=[]):
        n = run_configs(block_configs, check_one)
    passed(checker, f"{n_match(n)} resnet_lab.Bottleneck(..., groups, base_width) (shapes, parameter counts, outputs)")
