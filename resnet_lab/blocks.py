"""Residual blocks: the basic block (ResNet-18/34, CIFAR nets) and the bottleneck (ResNet-50+).

Module and parameter names follow torchvision's ``resnet.py`` (``conv1``, ``bn1``, ...,
``downsample``), so torchvision's state dicts load into these blocks unchanged.

Shortcut options of the paper (Section 3.3):

* ``"A"``: identity; where the shape changes, subsample with the stride and zero-pad the
  extra channels. No parameters.
* ``"B"``: identity; where the shape changes, a 1x1 convolution + BN projection (default,
  torchvision's choice).
* ``"C"``: a 1x1 convolution + BN projection on every block.

``residual=False`` removes the shortcut altogether: the block becomes a *plain* block,
so plain and residual networks come from the same code.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

SHORTCUT_OPTIONS = ("A", "B", "C")
STRIDE_PLACEMENTS = ("3x3", "1x1")


def check_shortcut_option(shortcut: str) -> str:
    """Return ``shortcut`` if it is one of ``"A"``, ``"B"``, ``"C"``, else raise ``ValueError``."""
    if shortcut not in SHORTCUT_OPTIONS:
        raise ValueError(
            f"unknown shortcut option {shortcut!r}; choose one of {SHORTCUT_OPTIONS}: "
            "'A' = zero-pad (no parameters), 'B' = projection only where the shape changes, "
            "'C' = projection on every block"
        )
    return shortcut


def check_stride_placement(stride_at: str) -> str:
    """Return ``stride_at`` if it is ``"3x3"`` (v1.5) or ``"1x1"`` (v1), else raise ``ValueError``."""
    if stride_at not in STRIDE_PLACEMENTS:
        raise ValueError(
            f"unknown stride placement {stride_at!r}; choose one of {STRIDE_PLACEMENTS}: "
            "'3x3' puts the stride on the 3x3 conv (v1.5, torchvision), "
            "'1x1' on the first 1x1 conv (v1, the paper)"
        )
    return stride_at


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (BN follows): (N, C_in, H, W) -> (N, C_out, H/s, W/s)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, no padding, no bias: (N, C_in, H, W) -> (N, C_out, H/s, W/s)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


class ZeroPadShortcut(nn.Module):
    """Option A shortcut: keep every ``stride``-th pixel, then append zero channels.

    (N, C_in, H, W) -> (N, C_out, ceil(H/stride), ceil(W/stride)), with C_out >= C_in.
    It has no parameters, so it adds nothing to the model's state dict.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(
                f"option A can only add channels (zero-padding); got {in_channels} -> {out_channels}. "
                "Use shortcut='B' for a projection."
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        extra = self.out_channels - self.in_channels
        if extra:
            # F.pad pads the last dims first: (W_left, W_right, H_top, H_bottom, C_front, C_back)
            x = F.pad(x, (0, 0, 0, 0, 0, extra))
        return x

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


def make_shortcut(in_channels: int, out_channels: int, stride: int, shortcut: str) -> nn.Module | None:
    """The module on the shortcut path, or ``None`` for a plain identity.

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H/stride, W/stride).
    """
    check_shortcut_option(shortcut)
    shape_changes = stride != 1 or in_channels != out_channels
    if shortcut == "C" or (shortcut == "B" and shape_changes):
        return nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))
    if shortcut == "A" and shape_changes:
        return ZeroPadShortcut(in_channels, out_channels, stride)
    return None


def describe_shortcut(module: nn.Module | None, residual: bool) -> str:
    """A word for tables: 'none' (plain), 'identity', 'zero-pad' (option A) or 'projection'."""
    if not residual:
        return "none"
    if module is None:
        return "identity"
    if isinstance(module, ZeroPadShortcut):
        return "zero-pad"
    return "projection"


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut: out = ReLU(BN(conv(ReLU(BN(conv(x))))) + shortcut(x)).

    Shapes: (N, in_channels, H, W) -> (N, planes, H/stride, W/stride). ``expansion`` is 1:
    the block's output width equals ``planes``. ``stride_at`` is accepted for a uniform block
    interface: with no 1x1 conv on its branch, both "3x3" and "1x1" put the stride on the first
    3x3 conv (ResNet-18/34 are the same in v1 and v1.5).
    """

    expansion: ClassVar[int] = 1  # output width = planes * expansion
    branch_convs: ClassVar[tuple[str, ...]] = ("conv1", "conv2")  # the residual branch's convs, in order

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        residual: bool = True,
        stride_at: str = "3x3",
    ) -> None:
        super().__init__()
        check_stride_placement(stride_at)
        out_channels = planes * self.expansion
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = make_shortcut(in_channels, out_channels, stride, shortcut) if residual else None
        self.residual = residual
        self.stride = stride
        self.in_channels = in_channels
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            identity = x if self.downsample is None else self.downsample(x)
            out += identity  # add first, ReLU after: the branch may push values down
        return self.relu(out)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        """The BN that closes the residual branch (zeroed by ``zero_init_residual``)."""
        return self.bn2


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4), with a shortcut.

    Shapes: (N, in_channels, H, W) -> (N, 4 * planes, H/stride, W/stride).
    ``stride_at="3x3"`` (default) strides the 3x3 conv as torchvision does (ResNet v1.5);
    ``stride_at="1x1"`` strides the first 1x1 conv as in the paper (v1), which skips
    three quarters of the pixels before looking at them and costs fewer FLOPs.
    """

    expansion: ClassVar[int] = 4  # output width = planes * expansion
    branch_convs: ClassVar[tuple[str, ...]] = ("conv1", "conv2", "conv3")  # the residual branch's convs, in order

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        residual: bool = True,
        stride_at: str = "3x3",
    ) -> None:
        super().__init__()
        check_stride_placement(stride_at)
        out_channels = planes * self.expansion
        stride_1x1, stride_3x3 = (1, stride) if stride_at == "3x3" else (stride, 1)
        self.conv1 = conv1x1(in_channels, planes, stride_1x1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride_3x3)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = make_shortcut(in_channels, out_channels, stride, shortcut) if residual else None
        self.residual = residual
        self.stride = stride
        self.stride_at = stride_at
        self.in_channels = in_channels
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))  # no ReLU here: BN -> add -> ReLU
        if self.residual:
            identity = x if self.downsample is None else self.downsample(x)
            out += identity
        return self.relu(out)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        """The BN that closes the residual branch (zeroed by ``zero_init_residual``)."""
        return self.bn3


Block = type[nn.Module]
"""A block class: ``block(in_channels, planes, stride, **kwargs)`` builds one block. The networks read only
its class attributes ``expansion`` and ``branch_convs`` and its instances' ``out_channels``, ``downsample``,
``residual`` and ``last_bn``, so new block types (pre-activation, grouped, SE, ...) fit without changes there."""


def is_block(module: nn.Module) -> bool:
    """True for a residual/plain block of this package (or any module that follows the same protocol)."""
    return isinstance(getattr(type(module), "expansion", None), int) and hasattr(module, "branch_convs")
