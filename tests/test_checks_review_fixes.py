"""Checker fixes after the second review of lessons 05, 06 and 09: ``classifier_head`` runs a batch of one
image (a ``.squeeze()`` fails), ``zero_pad_shortcut`` names zeros put in front of the input's channels, and
``fix_resnet50`` compares two image sizes in one run, so a head pool that fits one of them (``AvgPool2d(2)``)
fails and is reported as mistake 6."""

from __future__ import annotations

import torch
from rejecting import passes, rejects
from shared_answers import HeadModules
from torch import nn

import resnet_lab
from resnet_lab import Bottleneck, ResNet, checks

# 05: classifier_head and a batch of one image


class HeadSqueeze(HeadModules):
    def forward(self, x):
        return self.fc(self.avgpool(x).squeeze())


def test_classifier_head_accepts_flatten(capsys):
    passes(checks.classifier_head, HeadModules, capsys, "classifier_head")


def test_classifier_head_rejects_squeeze_with_a_hint():
    rejects(checks.classifier_head, HeadSqueeze, "a batch of one image", ".squeeze() drops every dimension of size 1")


# 06: zero_pad_shortcut with the zeros in front


class ZerosInFront(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.extra, self.stride = out_channels - in_channels, stride

    def forward(self, x):
        x = x[:, :, :: self.stride, :: self.stride]
        return torch.cat([x.new_zeros(x.shape[0], self.extra, *x.shape[2:]), x], dim=1)


def test_zero_pad_shortcut_names_zeros_in_front():
    rejects(checks.zero_pad_shortcut, ZerosInFront, "your zero channels come first", "half before, half after")


# 09: fix_resnet50 on two image sizes


def resnet50_small_pool():
    model = ResNet(Bottleneck, [3, 4, 6, 3])
    model.avgpool = nn.AvgPool2d(2)  # fits the 2x2 map of a 64x64 image, and no other
    return model


def resnet50_small_pool_two_blocks():
    model = ResNet(Bottleneck, [2, 2, 2, 2])
    model.avgpool = nn.AvgPool2d(2)
    return model


def resnet50_fixed():
    model = ResNet(Bottleneck, [3, 4, 6, 3])
    model.avgpool = nn.AdaptiveAvgPool2d(1)
    return model


def test_fix_resnet50_rejects_a_pool_that_fits_64x64_only():
    rejects(
        checks.fix_resnet50,
        resnet50_small_pool,
        "half fixed: mistake 7 (ResNet-50 with 2 blocks per stage) is fixed, but mistake 6 (a fixed AvgPool2d(2) head)",
        "Hint: mistake 6: pool globally",
        "96x96",
    )
    rejects(checks.fix_resnet50, resnet50_small_pool_two_blocks, "not fixed yet: mistake 6 (a fixed AvgPool2d(2) head)")


def test_fix_resnet50_still_passes_correct_fixes(capsys):
    line = passes(checks.fix_resnet50, resnet50_fixed, capsys, "fix_resnet50")
    assert "64x64 and 96x96" in line
    passes(checks.fix_resnet50, resnet_lab.resnet50, capsys, "fix_resnet50")
