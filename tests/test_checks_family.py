"""Notebook 10's checkers accept correct answers in several styles and name the expected mistakes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet_lab import BasicBlock, Bottleneck, checks
from resnet_lab.blocks import SqueezeExcitation


def conv3x3(cin, cout, stride=1, groups=1):
    return nn.Conv2d(cin, cout, 3, stride, 1, groups=groups, bias=False)


def conv1x1(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 1, stride, 0, bias=False)


def rejects(checker, answer, *phrases) -> str:
    with pytest.raises(AssertionError) as info:
        checker(answer)
    message = str(info.value)
    for phrase in phrases:
        assert phrase in message, message
    return message


# ---- pre-activation block: correct answers


class PreActBlock(nn.Module):
    """The course's style: torchvision-like names, projection reads the pre-activated input."""

    def __init__(self, in_channels, planes, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.shortcut = None
        if stride != 1 or in_channels != planes:
            self.shortcut = nn.Sequential(conv1x1(in_channels, planes, stride), nn.BatchNorm2d(planes))

    def forward(self, x):
        pre = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(pre))))
        return out + (x if self.shortcut is None else self.shortcut(pre))


class PreActProjectsRawX(PreActBlock):
    """The other convention: the projection reads x."""

    def forward(self, x):
        out = self.conv2(F.relu(self.bn2(self.conv1(F.relu(self.bn1(x))))))
        return out + (x if self.shortcut is None else self.shortcut(x))


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
        PreActProjectsRawX,
        PreActSequential,
        lambda cin, planes, stride=1: BasicBlock(cin, planes, stride, preact=True),
    ],
)
def test_preact_block_accepts_correct_blocks(cls, capsys):
    checks.preact_block(cls)
    assert capsys.readouterr().out.startswith("✓ preact_block: 4 configurations match")


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
        return out + (x if self.shortcut is None else self.shortcut(x))


class IdentityOfPreactivated(PreActBlock):
    def forward(self, x):
        pre = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(pre))))
        return out + (pre if self.shortcut is None else self.shortcut(pre))


def test_preact_block_rejects_relu_after_the_add():
    rejects(checks.preact_block, ReluAfterAdd, "ReLU after the add")


def test_preact_block_rejects_the_2015_order():
    rejects(checks.preact_block, PostActOrder, "conv -> BN -> ReLU (the 2015 order)")  # same BN shapes: outputs tell
    with pytest.raises(AssertionError, match="pre-activation block it normalises the block's input"):
        checks.preact_block(PostActOrder, configs=[(16, 32, 2)])  # the first BN has the wrong width


def test_preact_block_rejects_an_identity_of_the_preactivated_input():
    rejects(checks.preact_block, IdentityOfPreactivated, "identity shortcut adds ReLU(BN(x)) instead of x")


# ---- squeeze-excitation module


class SELinear(nn.Module):
    """Linear layers, x.mean, functional activations."""

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


@pytest.mark.parametrize("cls", [SELinear, SESequentialNoBias, SqueezeExcitation])
def test_squeeze_excitation_accepts_correct_modules(cls, capsys):
    checks.squeeze_excitation(cls)
    assert capsys.readouterr().out.startswith("✓ squeeze_excitation: 3 configurations match")


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
        self.se = SELinear(planes, 16)
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


def test_se_block_accepts_and_rejects(capsys):
    checks.se_block(SEBlock)
    checks.se_block(lambda cin, planes, stride=1: BasicBlock(cin, planes, stride, se=True))
    assert capsys.readouterr().out.count("✓ se_block: 3 configurations match") == 2
    rejects(checks.se_block, SEAfterAdd, "SE applied after the add")


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
