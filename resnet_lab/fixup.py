"""ResNet without BatchNorm, trained from the Fixup initialisation (Zhang, Dauphin & Ma 2019).

    model = fixup_cifar_resnet(56, in_channels=1)   # the CIFAR ResNet-56 layout, no BN anywhere

Each basic block computes (Zhang et al.'s CIFAR code, option A shortcut as in the course's ResNet-56)

    out = ReLU(conv1(x + b1a) + b1b)
    out = conv2(out + b2a) * scale + b2b
    return ReLU(out + shortcut(x))

with scalar biases b (0 at init) and a scalar multiplier ``scale`` (1 at init). Fixup's rule for L residual
branches of m layers each: the classifier and the last layer of every branch start at 0, the other
branch layers get He init multiplied by L^(-1/(2m-2)) (here m = 2: L^(-1/2)). So at initialisation
every block is the identity on its input plus the shortcut: the net's output is the path through the
shortcuts alone (stem, then zero-padded shortcuts, pool), and with the classifier at 0 the logits are 0.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import ZeroPadShortcut
from .models import check_cifar_depth

CIFAR_WIDTHS = (16, 32, 64)


def fixup_factor(branches: int, layers_per_branch: int = 2) -> float:
    """Fixup's multiplier of the He init for the non-final layers of each branch: L^(-1/(2m-2))."""
    if branches < 1 or layers_per_branch < 2:
        raise ValueError(f"Fixup needs L >= 1 branches of m >= 2 layers; got L={branches}, m={layers_per_branch}")
    return branches ** (-1.0 / (2 * layers_per_branch - 2))


class Bias(nn.Module):
    """A learnable scalar added to its input (0 at init): (any shape) -> (same shape)."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias


class FixupBasicBlock(nn.Module):
    """Two 3x3 convs without BN, scalar biases and multiplier, option A shortcut.

    (N, in_channels, H, W) -> (N, planes, H/stride, W/stride).
    """

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bias1a, self.bias1b, self.bias2a, self.bias2b = Bias(), Bias(), Bias(), Bias()
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride=stride, padding=1, bias=False)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.scale = nn.Parameter(torch.ones(1))
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = ZeroPadShortcut(in_channels, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bias1b(self.conv1(self.bias1a(x))))
        out = self.bias2b(self.conv2(self.bias2a(out)) * self.scale)
        return self.relu(out + self.shortcut(x))


class FixupCifarResNet(nn.Module):
    """The course's CIFAR ResNet (3 stages of n blocks, 16/32/64 filters, depth 6n+2) with no BN, Fixup-initialised.

    Shapes: (N, in_channels, H, W) -> (N, num_classes) for H, W >= 4.
    """

    def __init__(self, depth: int, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        n = check_cifar_depth(depth)
        self.depth = depth
        self.branches = 3 * n
        self.description = f"Fixup ResNet-{depth} (CIFAR, n={n}, no BN)"
        self.conv1 = nn.Conv2d(in_channels, CIFAR_WIDTHS[0], 3, stride=1, padding=1, bias=False)
        self.bias1 = Bias()
        self.relu = nn.ReLU(inplace=True)
        channels = CIFAR_WIDTHS[0]
        for i, (planes, stride) in enumerate(zip(CIFAR_WIDTHS, (1, 2, 2)), start=1):
            blocks = []
            for j in range(n):
                blocks.append(FixupBasicBlock(channels, planes, stride if j == 0 else 1))
                channels = planes
            self.add_module(f"layer{i}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.bias2 = Bias()
        self.fc = nn.Linear(channels, num_classes)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Fixup: stem He-init (fan_out, as the course's nets); each branch's conv1 He-init times
        L^(-1/2), conv2 = 0; fc weight and bias = 0; scalar biases 0, multipliers 1."""
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        factor = fixup_factor(self.branches, 2)
        for block in self.blocks():
            nn.init.kaiming_normal_(block.conv1.weight, mode="fan_out", nonlinearity="relu")
            block.conv1.weight.mul_(factor)
            nn.init.zeros_(block.conv2.weight)
            nn.init.ones_(block.scale)
        for m in self.modules():
            if isinstance(m, Bias):
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def blocks(self) -> list[FixupBasicBlock]:
        """The 3n residual blocks in forward order."""
        return [m for m in self.modules() if isinstance(m, FixupBasicBlock)]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> the pooled features (N, 64) that the classifier reads."""
        x = self.relu(self.bias1(self.conv1(x)))  # (N, 16, H, W)
        x = self.layer3(self.layer2(self.layer1(x)))  # (N, 64, H/4, W/4)
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"expected images (N, C, H, W); got shape {tuple(x.shape)}")
        return self.fc(self.bias2(self.features(x)))  # (N, num_classes)


def fixup_cifar_resnet(depth: int, in_channels: int = 3, num_classes: int = 10) -> FixupCifarResNet:
    """A BN-free CIFAR ResNet of depth 6n+2 with the Fixup initialisation (see the module docstring)."""
    return FixupCifarResNet(depth, in_channels, num_classes)


def shortcut_path(model: FixupCifarResNet, x: torch.Tensor) -> torch.Tensor:
    """What the net computes through the shortcuts alone (every branch removed): (N, C, H, W) -> (N, 64) features.

    At a Fixup initialisation ``model.features(x)`` equals this exactly (each branch outputs 0).
    """
    h = model.relu(model.bias1(model.conv1(x)))
    for block in model.blocks():
        h = torch.relu(block.shortcut(h))
    return torch.flatten(model.avgpool(h), 1)
