"""Notebook 10's checkers accept correct answers in several styles and name the expected mistakes.

The pre-activation and SE checkers also require the package's names once the function is right, because
notebook 10 loads the package's weights into those blocks by name in the cells after their checks (issue 20).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from rejecting import rejects
from torch import nn

from resnet_lab import BasicBlock, Bottleneck, checks
from resnet_lab.blocks import SqueezeExcitation


def conv3x3(cin, cout, stride=1, groups=1):
    return nn.Conv2d(cin, cout, 3, stride, 1, groups=groups, bias=False)


def conv1x1(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 1, stride, 0, bias=False)


# ---- pre-activation block: correct answers


class PreActBlock(nn.Module):
    """The course's style: the package's names, projection reads the pre-activated input, functional ReLUs."""

    def __init__(self, in_channels, planes, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.downsample = None
        if stride != 1 or in_channels != planes:
            self.downsample = nn.Sequential(conv1x1(in_channels, planes, stride), nn.BatchNorm2d(planes))

    def forward(self, x):
        pre = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(pre))))
        return out + (x if self.downsample is None else self.downsample(pre))


class PreActModulesOtherOrder(nn.Module):
    """Another style: projection built first, convs before BNs, nn.ReLU modules, an if/else forward."""

    def __init__(self, in_channels, planes, stride=1):
        super().__init__()
        needs_projection = stride != 1 or in_channels != planes
        self.downsample = (
            nn.Sequential(
                nn.Conv2d(in_channels, planes, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )
            if needs_projection
            else None
        )
        self.conv1 = nn.Conv2d(in_channels, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1, bias=False)
        self.bn1, self.bn2 = nn.BatchNorm2d(in_channels), nn.BatchNorm2d(planes)
        self.act1, self.act2 = nn.ReLU(), nn.ReLU()

    def forward(self, x):
        pre = self.act1(self.bn1(x))
        if self.downsample is not None:
            shortcut = self.downsample(pre)
        else:
            shortcut = x
        return self.conv2(self.act2(self.bn2(self.conv1(pre)))) + shortcut


class PreActProjectsRawX(PreActBlock):
    """The other convention of some re-implementations: the projection reads x (not what notebook 10 needs)."""

    def forward(self, x):
        out = self.conv2(F.relu(self.bn2(self.conv1(F.relu(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class PreActSequential(nn.Module):
    """A Sequential branch, shortcut registered first, nn.ReLU modules."""

    def __init__(self, in_channels, planes, stride=1):
        super().__init__()
        self.proj = (
            nn.Sequential(nn.Conv2d(in_channels, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
            if stride != 1 or in_channels != planes
            else nn.Identity()
        )
        self.branch = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(),
            conv3x3(in_channels, planes, stride),
            nn.BatchNorm2d(planes),
            nn.ReLU(),
            conv3x3(planes, planes),
        )

    def forward(self, x):
        return self.branch(x) + self.proj(x)


@pytest.mark.parametrize(
    "cls",
    [
        PreActBlock,
        PreActModulesOtherOrder,
        lambda cin, planes, stride=1: BasicBlock(cin, planes, stride, preact=True),
    ],
)
def test_preact_block_accepts_correct_blocks(cls, capsys):
    checks.preact_block(cls)
    assert capsys.readouterr().out.startswith("✓ preact_block: 4 configurations match")


def test_preact_block_names_a_projection_that_reads_x():
    """Notebook 10's next cell compares with the package's block, whose projection reads ReLU(BN1(x))."""
    rejects(checks.preact_block, PreActProjectsRawX, "projection shortcut reads the raw input x", "ReLU(BN1(x))")
    checks.preact_block(PreActProjectsRawX, configs=[(16, 16, 1)])  # without a projection the two agree


def test_preact_block_requires_the_names_the_next_cell_loads_by():
    message = rejects(
        checks.preact_block, PreActSequential, "computes the right function", "load the package's weights"
    )
    assert "missing conv1.weight" in message and "unexpected" in message and "Hint: keep the names" in message


# ---- pre-activation block: mistakes


class ReluAfterAdd(PreActBlock):
    def forward(self, x):
        return F.relu(super().forward(x))


class PostActOrder(PreActBlock):
    """conv -> BN -> ReLU inside a block otherwise laid out as pre-activation (bn1 on planes)."""

    def __init__(self, in_channels, planes, stride=1):
        super().__init__(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return out + (x if self.downsample is None else self.downsample(x))


class IdentityOfPreactivated(PreActBlock):
    def forward(self, x):
        pre = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(pre))))
        return out + (pre if self.downsample is None else self.downsample(pre))


def test_preact_block_rejects_relu_after_the_add():
    rejects(checks.preact_block, ReluAfterAdd, "ReLU after the add")


def test_preact_block_rejects_the_2015_order():
    rejects(checks.preact_block, PostActOrder, "conv -> BN -> ReLU (the 2015 order)")  # same BN shapes: outputs tell
    with pytest.raises(AssertionError, match="pre-activation block it normalises the block's input"):
        checks.preact_block(PostActOrder, configs=[(16, 32, 2)])  # the first BN has the wrong width


def test_preact_block_rejects_an_identity_of_the_preactivated_input():
    rejects(checks.preact_block, IdentityOfPreactivated, "identity shortcut adds ReLU(BN(x)) instead of x")


# ---- squeeze-excitation module


class SEConv(nn.Module):
    """The lesson's layout (1x1 convs with biases named fc1, fc2), x.mean, functional activations."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True)))))


class SEModules(nn.Module):
    """Another style: pooling, activations and the sigmoid as modules, registered between the layers."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, kernel_size=1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, kernel_size=1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        s = self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))
        return s.expand_as(x) * x


class SELinear(nn.Module):
    """Linear layers, x.mean, functional activations: the right function, not the lesson's layout."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        self.fc1 = nn.Linear(channels, channels // reduction)
        self.fc2 = nn.Linear(channels // reduction, channels)

    def forward(self, x):
        z = x.mean(dim=(2, 3))
        gates = torch.sigmoid(self.fc2(F.relu(self.fc1(z))))
        return x * gates[:, :, None, None]


class SESequentialNoBias(nn.Module):
    """The paper's formula as written (no biases), 1x1 convs in a Sequential."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        self.excite = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, channels // reduction, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return x * self.excite(x)


@pytest.mark.parametrize("cls", [SEConv, SEModules, SqueezeExcitation])
def test_squeeze_excitation_accepts_correct_modules(cls, capsys):
    checks.squeeze_excitation(cls)
    assert capsys.readouterr().out.startswith("✓ squeeze_excitation: 3 configurations match")


@pytest.mark.parametrize(
    "cls,detail",
    [(SELinear, "other shapes: fc1.weight (4, 64)"), (SESequentialNoBias, "missing fc1.weight")],
)
def test_squeeze_excitation_right_function_other_layout_is_told_the_names(cls, detail):
    """The function passes (the hint is about names, not a wrong step); notebook 10's next cells need fc1/fc2 convs."""
    message = rejects(checks.squeeze_excitation, cls, "computes the right function", detail)
    assert "two 1x1 convolutions with biases, named fc1" in message


class SENoSigmoid(SELinear):
    def forward(self, x):
        return x * self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3)))))[:, :, None, None]


class SEReturnsGates(SELinear):
    def forward(self, x):
        return torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3))))))


class SEWrongReduction(SELinear):
    def __init__(self, channels, reduction=16):
        super().__init__(channels, reduction)
        self.fc1 = nn.Linear(channels, reduction)
        self.fc2 = nn.Linear(reduction, channels)


class SEMaxSqueeze(SELinear):
    def forward(self, x):
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(x.amax(dim=(2, 3))))))[:, :, None, None]


@pytest.mark.parametrize(
    "cls,phrase",
    [
        (SENoSigmoid, "the sigmoid is missing"),
        (SEReturnsGates, "return x * gates"),
        (SEWrongReduction, "channels // reduction"),
        (SEMaxSqueeze, "global *average*"),
    ],
)
def test_squeeze_excitation_rejects_mistakes(cls, phrase):
    rejects(checks.squeeze_excitation, cls, phrase)


# ---- basic block with SE


class SEBlock(nn.Module):
    def __init__(self, in_channels, planes, stride=1):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(in_channels, planes, stride), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = conv3x3(planes, planes), nn.BatchNorm2d(planes)
        self.se = SEConv(planes, 16)
        self.downsample = None
        if stride != 1 or in_channels != planes:
            self.downsample = nn.Sequential(conv1x1(in_channels, planes, stride), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        out = self.se(out)
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class SEAfterAdd(SEBlock):
    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(self.se(out + (x if self.downsample is None else self.downsample(x))))


class SEBlockLinear(SEBlock):
    def __init__(self, in_channels, planes, stride=1):
        super().__init__(in_channels, planes, stride)
        self.se = SELinear(planes, 16)


class SEBlockReluBeforeSE(SEBlock):
    def forward(self, x):
        out = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return F.relu(self.se(out) + (x if self.downsample is None else self.downsample(x)))


def test_se_block_accepts_and_rejects(capsys):
    checks.se_block(SEBlock)
    checks.se_block(lambda cin, planes, stride=1: BasicBlock(cin, planes, stride, se=True))
    assert capsys.readouterr().out.count("✓ se_block: 3 configurations match") == 2
    rejects(checks.se_block, SEAfterAdd, "SE applied after the add")
    rejects(checks.se_block, SEBlockReluBeforeSE, "ReLU between the branch's last BN and the SE module")
    rejects(checks.se_block, SEBlockLinear, "computes the right function", "se.fc1.weight", "named fc1 and fc2")


# ---- grouped bottleneck


class ResNeXtBlock(nn.Module):
    expansion = 4

    def __init__(self, in_channels, planes, stride=1, groups=1, base_width=64):
        super().__init__()
        width = int(planes * base_width / 64) * groups
        out = planes * 4
        self.conv1, self.bn1 = conv1x1(in_channels, width), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = conv3x3(width, width, stride, groups), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = conv1x1(width, out), nn.BatchNorm2d(out)
        self.downsample = (
            nn.Sequential(conv1x1(in_channels, out, stride), nn.BatchNorm2d(out))
            if stride != 1 or in_channels != out
            else None
        )

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class WidthIgnoresGroups(ResNeXtBlock):
    def __init__(self, in_channels, planes, stride=1, groups=1, base_width=64):
        super().__init__(in_channels, planes, stride, groups, base_width)
        width = int(planes * base_width / 64)  # one group's width
        out = planes * 4
        self.conv1, self.bn1 = conv1x1(in_channels, width), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = conv3x3(width, width, stride, 1), nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out)


def test_grouped_bottleneck_accepts_and_rejects(capsys):
    checks.grouped_bottleneck(ResNeXtBlock)
    checks.grouped_bottleneck(
        lambda cin, planes, stride=1, groups=1, base_width=64: Bottleneck(
            cin, planes, stride, groups=groups, base_width=base_width
        )
    )
    assert capsys.readouterr().out.count("✓ grouped_bottleneck: 4 configurations match") == 2
    rejects(checks.grouped_bottleneck, WidthIgnoresGroups, "the width ignores the groups", "groups=32")


def test_family_checkers_are_registered():
    assert "family" in checks.CHECKER_MODULES
    for name in ("preact_block", "squeeze_excitation", "se_block", "grouped_bottleneck"):
        assert checks.CHECKERS[name] is getattr(checks.family, name)


def test_unfinished_family_exercise_says_so():
    class Stub(nn.Module):
        def __init__(self, *args, **kwargs):
            raise NotImplementedError("fill me in")

    for checker in (checks.preact_block, checks.squeeze_excitation, checks.se_block, checks.grouped_bottleneck):
        with pytest.raises(AssertionError, match="not done yet"):
            checker(Stub)
