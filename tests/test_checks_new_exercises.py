"""The checkers of the exercises added for issue 20 (notebooks 01, 03, 04, 05, 06 and the bug hunt of 09):
each accepts correct answers written in two different styles and rejects the mistakes a learner would make,
with a hint that names the mistake; 09's checkers say which planted mistake a half-fixed answer still has."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from rejecting import passes, rejects
from shared_answers import HeadModules
from torch import nn

import resnet_lab
from resnet_lab import BasicBlock, Bottleneck, ResNet, checks
from resnet_lab.checks import formulas

# ----------------------------------------------------------------------------------------
# 01: plain_unit
# ----------------------------------------------------------------------------------------


class PlainUnitModules(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))


class PlainUnitSequential(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x):
        return F.relu(self.body(x))


class PlainUnitStillAdds(PlainUnitModules):
    def forward(self, x):
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + x)


class PlainUnitNoFinalRelu(PlainUnitModules):
    def forward(self, x):
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))


def test_plain_unit_accepts_two_styles(capsys):
    passes(checks.plain_unit, PlainUnitModules, capsys, "plain_unit")
    passes(checks.plain_unit, PlainUnitSequential, capsys, "plain_unit")


class PlainUnitReluBeforeBn(PlainUnitModules):
    def forward(self, x):
        return self.relu(self.bn2(self.conv2(self.bn1(self.relu(self.conv1(x))))))


def test_plain_unit_order_hint_speaks_of_a_plain_block():
    message = rejects(checks.plain_unit, PlainUnitReluBeforeBn, "order of operations of a plain block")
    assert "shortcut" not in message.replace("nothing is added back", "")


def test_plain_unit_rejects_a_shortcut_and_a_missing_relu():
    rejects(checks.plain_unit, PlainUnitStillAdds, "has no shortcut, but yours still adds its input")
    rejects(checks.plain_unit, PlainUnitNoFinalRelu, "still ends with a ReLU")
    checks.plain_unit(PlainUnitModules, configs=[8])


# ----------------------------------------------------------------------------------------
# 03: bottleneck_parameters
# ----------------------------------------------------------------------------------------


def params_by_formula(in_channels, planes, stride=1):
    out = 4 * planes
    total = in_channels * planes + 9 * planes * planes + planes * out + 2 * (planes + planes + out)
    if stride != 1 or in_channels != out:
        total += in_channels * out + 2 * out
    return total


def params_by_layers(c, p, s):
    """Another style: a list of (kernel, in, out) convs, each with its BN."""
    convs = [(1, c, p), (3, p, p), (1, p, 4 * p)]
    if s > 1 or c != 4 * p:
        convs.append((1, c, 4 * p))
    return sum(k * k * cin * cout + 2 * cout for k, cin, cout in convs)


def test_bottleneck_parameters_accepts_two_styles(capsys):
    passes(checks.bottleneck_parameters, params_by_formula, capsys, "bottleneck_parameters")
    passes(checks.bottleneck_parameters, params_by_layers, capsys, "bottleneck_parameters")


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (
            lambda c, p, s: params_by_formula(c, p, s) - 2 * 6 * p - (8 * p if s != 1 or c != 4 * p else 0),
            "batch norms are missing",
        ),
        (lambda c, p, s: c * p + 9 * p * p + 4 * p * p + 12 * p, "projection shortcut is missing"),
        (lambda c, p, s: params_by_formula(c, p, s) + 6 * p + (4 * p if s != 1 or c != 4 * p else 0), "bias"),
        (lambda c, p, s: params_by_formula(c, p, s) - 6 * p * p, "9 weights"),
        (
            lambda c, p, s: params_by_formula(c, p, s) + 12 * p + (8 * p if s != 1 or c != 4 * p else 0),
            "buffers",
        ),
        (lambda c, p, s: float(params_by_formula(c, p, s)), "int"),
        (
            lambda c, p, s: params_by_formula(c, p, 1),  # projects only when the channels change
            "the shortcut also needs a projection when the block strides",
        ),
    ],
)
def test_bottleneck_parameters_names_the_mistake(wrong, hint):
    rejects(checks.bottleneck_parameters, wrong, hint)


# ----------------------------------------------------------------------------------------
# 04: stage_map_sizes
# ----------------------------------------------------------------------------------------


def maps_with_the_formula(size):
    m = resnet_lab.conv_output_size(resnet_lab.conv_output_size(size, 7, 2, 3), 3, 2, 1)
    sizes = [m]
    for _ in range(3):
        m = resnet_lab.conv_output_size(m, 3, 2, 1)
        sizes.append(m)
    return sizes


def maps_with_ceil(size):
    """Another style: every stride-2 layer here rounds up, so ceil-halving gives the same numbers."""
    m = math.ceil(math.ceil(size / 2) / 2)
    return (m, math.ceil(m / 2), math.ceil(m / 4), math.ceil(m / 8))


def test_stage_map_sizes_reference_is_the_measured_feature_map_table():
    model = resnet_lab.resnet18().eval()
    for size in (224, 97):
        rows = {r.name: r.shape[-1] for r in resnet_lab.feature_map_table(model, (1, 3, size, size))}
        assert [rows[f"layer{i}"] for i in range(1, 5)] == formulas.reference_stage_map_sizes(size)


def test_stage_map_sizes_accepts_two_styles(capsys):
    passes(checks.stage_map_sizes, maps_with_the_formula, capsys, "stage_map_sizes")
    passes(checks.stage_map_sizes, maps_with_ceil, capsys, "stage_map_sizes")


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (lambda n: [n // 4, n // 8, n // 16, n // 32], "rounds *up* on odd sizes"),
        (lambda n: [n // 2, n // 4, n // 8, n // 16], "the max pool is missing"),
        (
            lambda n: (
                maps_with_the_formula(n)[1:] + [resnet_lab.conv_output_size(maps_with_the_formula(n)[-1], 3, 2, 1)]
            ),
            "layer1 keeps",
        ),
        (lambda n: [n // 2] + maps_with_the_formula(n), "return one size per stage"),
        (lambda n: [n / 4, n / 8, n / 16, n / 32], "whole numbers"),
    ],
)
def test_stage_map_sizes_names_the_mistake(wrong, hint):
    rejects(checks.stage_map_sizes, wrong, hint)


# ----------------------------------------------------------------------------------------
# 05: classifier_head
# ----------------------------------------------------------------------------------------


class HeadMean(nn.Module):
    def __init__(self, in_features, num_classes):
        super().__init__()
        self.classifier = nn.Linear(in_features, num_classes)

    def forward(self, x):
        return self.classifier(x.mean(dim=(2, 3)))


class HeadFixedPool(HeadModules):
    def __init__(self, in_features, num_classes):
        super().__init__(in_features, num_classes)
        self.avgpool = nn.AvgPool2d(7)


class HeadMax(HeadModules):
    def forward(self, x):
        return self.fc(x.amax(dim=(2, 3)))


class HeadSum(HeadMean):
    def forward(self, x):
        return self.classifier(x.sum(dim=(2, 3)))


class HeadNoFlatten(HeadModules):
    def forward(self, x):
        return self.avgpool(x)  # the fc is never applied


def test_classifier_head_accepts_two_styles(capsys):
    passes(checks.classifier_head, HeadModules, capsys, "classifier_head")
    passes(checks.classifier_head, HeadMean, capsys, "classifier_head")


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (HeadFixedPool, "fixed AvgPool2d(7)"),
        (HeadMax, "maximum"),
        (HeadSum, "sums"),
        (HeadNoFlatten, "one score per class"),
    ],
)
def test_classifier_head_names_the_mistake(wrong, hint):
    rejects(checks.classifier_head, wrong, hint)


# ----------------------------------------------------------------------------------------
# 06: zero_pad_shortcut
# ----------------------------------------------------------------------------------------


class SliceAndCat(nn.Module):
    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.extra, self.stride = out_channels - in_channels, stride

    def forward(self, x):
        x = x[:, :, :: self.stride, :: self.stride]
        zeros = x.new_zeros(x.shape[0], self.extra, *x.shape[2:])
        return torch.cat([x, zeros], dim=1)


class SymmetricPad(nn.Module):
    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.pad, self.stride = (out_channels - in_channels) // 2, stride

    def forward(self, x):
        return F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, self.pad, self.pad))


class AveragePooled(SliceAndCat):
    def forward(self, x):
        x = F.avg_pool2d(x, self.stride, ceil_mode=True) if self.stride > 1 else x
        return torch.cat([x, x.new_zeros(x.shape[0], self.extra, *x.shape[2:])], dim=1)


class CopiedChannels(SliceAndCat):
    def forward(self, x):
        x = x[:, :, :: self.stride, :: self.stride]
        return torch.cat([x, x[:, : self.extra]], dim=1)


class NoSubsampling(SliceAndCat):
    def forward(self, x):
        return torch.cat([x, x.new_zeros(x.shape[0], self.extra, *x.shape[2:])], dim=1)


class FloorPool(SliceAndCat):
    def forward(self, x):
        x = (
            F.max_pool2d(x, 1, self.stride * 1)
            if False
            else x[
                :,
                :,
                : x.shape[2] // self.stride * self.stride : self.stride,
                : x.shape[3] // self.stride * self.stride : self.stride,
            ]
        )
        return torch.cat([x, x.new_zeros(x.shape[0], self.extra, *x.shape[2:])], dim=1)


def test_zero_pad_shortcut_accepts_two_styles_and_the_package(capsys):
    passes(checks.zero_pad_shortcut, SliceAndCat, capsys, "zero_pad_shortcut")
    passes(checks.zero_pad_shortcut, SymmetricPad, capsys, "zero_pad_shortcut")
    passes(checks.zero_pad_shortcut, resnet_lab.ZeroPadShortcut, capsys, "zero_pad_shortcut")


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (AveragePooled, "you average each window"),
        (CopiedChannels, "must be zeros"),
        (NoSubsampling, "keep only every stride-th pixel"),
        (FloorPool, "starting with the first"),
        (lambda cin, cout, stride: nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False)), "option B"),
    ],
)
def test_zero_pad_shortcut_names_the_mistake(wrong, hint):
    rejects(checks.zero_pad_shortcut, wrong, hint)


# ----------------------------------------------------------------------------------------
# 09: the bug hunt as exercises (two planted mistakes each; half fixes are recognised)
# ----------------------------------------------------------------------------------------


class TutorialBottleneck(Bottleneck):
    """Mistakes 1 and 2, switched on and off."""

    relu_first = True
    padded = True

    def __init__(self, in_channels, planes, stride=1):
        super().__init__(in_channels, planes, stride)
        if self.padded:
            self.conv1 = nn.Conv2d(in_channels, planes, kernel_size=1, padding=1, bias=False)
            self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, padding=1, bias=False)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.relu_first:
            out = self.relu(out)
        return self.relu(out + identity)


class OnlyReluFixed(TutorialBottleneck):
    relu_first = False


class OnlyPaddingFixed(TutorialBottleneck):
    padded = False


class BothFixed(TutorialBottleneck):
    relu_first = False
    padded = False


class FixedBottleneckSequential(nn.Module):
    """A correct answer in another style: Sequential branch, functional ReLU, shortcut named `shortcut`."""

    def __init__(self, in_channels, planes, stride=1):
        super().__init__()
        out = planes * 4
        self.branch = nn.Sequential(
            nn.Conv2d(in_channels, planes, 1, bias=False),
            nn.BatchNorm2d(planes),
            nn.ReLU(),
            nn.Conv2d(planes, planes, 3, stride, 1, bias=False),
            nn.BatchNorm2d(planes),
            nn.ReLU(),
            nn.Conv2d(planes, out, 1, bias=False),
            nn.BatchNorm2d(out),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x):
        return F.relu(self.branch(x) + self.shortcut(x))


def test_fix_bottleneck_accepts_two_styles(capsys):
    passes(checks.fix_bottleneck, BothFixed, capsys, "fix_bottleneck")
    passes(checks.fix_bottleneck, FixedBottleneckSequential, capsys, "fix_bottleneck")


def test_fix_bottleneck_says_which_mistake_remains():
    rejects(checks.fix_bottleneck, TutorialBottleneck, "not fixed yet: mistake 1 (ReLU before the add) and mistake 2")
    rejects(checks.fix_bottleneck, OnlyReluFixed, "half fixed: mistake 1 (ReLU before the add) is fixed, but mistake 2")
    rejects(
        checks.fix_bottleneck,
        OnlyPaddingFixed,
        "half fixed: mistake 2 (a 1x1 convolution with padding=1) is fixed, but mistake 1",
    )


class TutorialBlock(BasicBlock):
    """Mistakes 3 and 5, switched on and off."""

    on_output = True
    no_stride = True

    def __init__(self, in_channels, planes, stride=1):
        super().__init__(in_channels, planes, stride)
        if self.downsample is not None and self.no_stride:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, planes, 1, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        source = out if self.on_output else x
        identity = x if self.downsample is None else self.downsample(source)
        return self.relu(out + identity)


class OnlyInputFixed(TutorialBlock):
    on_output = False


class OnlyStrideFixed(TutorialBlock):
    no_stride = False


class BlockFixed(TutorialBlock):
    on_output = False
    no_stride = False


def test_fix_basic_block_accepts_two_styles(capsys):
    passes(checks.fix_basic_block, BlockFixed, capsys, "fix_basic_block")
    passes(checks.fix_basic_block, BasicBlock, capsys, "fix_basic_block")


def test_fix_basic_block_says_which_mistake_remains():
    rejects(checks.fix_basic_block, TutorialBlock, "not fixed yet: mistake 3", "and mistake 5")
    rejects(
        checks.fix_basic_block,
        OnlyInputFixed,
        "half fixed: mistake 3 (the projection applied to the block's output) is fixed, but mistake 5",
    )
    rejects(
        checks.fix_basic_block,
        OnlyStrideFixed,
        "half fixed: mistake 5 (the projection without the block's stride) is fixed, but mistake 3",
    )


def tutorial_resnet50():
    model = ResNet(Bottleneck, [2, 2, 2, 2])
    model.avgpool = nn.AvgPool2d(7)
    return model


def resnet50_pool_fixed():
    return ResNet(Bottleneck, [2, 2, 2, 2])


def resnet50_blocks_fixed():
    model = ResNet(Bottleneck, [3, 4, 6, 3])
    model.avgpool = nn.AvgPool2d(7)
    return model


def resnet50_fixed():
    return ResNet(Bottleneck, [3, 4, 6, 3])


def test_fix_resnet50_accepts_two_styles(capsys):
    passes(checks.fix_resnet50, resnet50_fixed, capsys, "fix_resnet50")
    passes(checks.fix_resnet50, resnet_lab.resnet50, capsys, "fix_resnet50")


def test_fix_resnet50_says_which_mistake_remains():
    rejects(checks.fix_resnet50, tutorial_resnet50, "not fixed yet: mistake 6", "and mistake 7")
    rejects(
        checks.fix_resnet50,
        resnet50_pool_fixed,
        "half fixed: mistake 6 (a fixed AvgPool2d(7) head) is fixed, but mistake 7",
    )
    rejects(
        checks.fix_resnet50,
        resnet50_blocks_fixed,
        "half fixed: mistake 7 (ResNet-50 with 2 blocks per stage) is fixed, but mistake 6",
    )


def test_new_checkers_leave_the_random_state_alone():
    before = torch.random.get_rng_state()
    checks.plain_unit(PlainUnitModules)
    checks.bottleneck_parameters(params_by_formula)
    checks.zero_pad_shortcut(SliceAndCat)
    checks.fix_basic_block(BlockFixed)
    assert torch.equal(before, torch.random.get_rng_state())
