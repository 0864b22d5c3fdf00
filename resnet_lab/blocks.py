"""Residual blocks: the basic block (ResNet-18/34, CIFAR nets) and the bottleneck (ResNet-50+).

Module and parameter names follow torchvision's ``resnet.py`` (``conv1``, ``bn1``, ...,
``downsample``), so torchvision's state dicts load into these blocks unchanged.

Shortcut options of the paper (Section 3.3):

* ``"A"``: identity; where the shape changes, subsample with the stride and zero-pad the
  extra channels. No parameters.
* ``"B"``: identity; where the shape changes, a 1x1 convolution + BN projection (default,
  torchvision's choice).
* ``"C"``: a 1x1 convolution + BN projection on every block.
* ``"D"``: as ``"B"``, but a downsampling projection first averages 2x2 pixels (stride 2)
  and then applies a stride-1 1x1 convolution + BN, so no input pixel is skipped
  (ResNet-D, He et al. 2019, "Bag of Tricks").

``residual=False`` removes the shortcut altogether: the block becomes a *plain* block,
so plain and residual networks come from the same code.

The ResNet family (notebook 10) comes from options of the same two blocks:

* ``groups`` / ``base_width`` (``Bottleneck`` only, torchvision's meaning): the 3x3 conv is split
  into ``groups`` groups of ``int(planes * base_width / 64)`` channels each (ResNeXt, Xie et al.
  2017); ``base_width=128`` with one group doubles the inner width (Wide ResNet-50-2).
* ``preact=True``: BN -> ReLU -> conv, twice (three times), then the add and no ReLU after it
  (He et al. 2016, "Identity Mappings"); the network then needs a final BN + ReLU.
* ``se=True``: a squeeze-excitation module rescales the residual branch's channels before the add
  (Hu et al. 2018), reduction ``se_reduction`` (16 by default).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .runtime import is_positive_int

SHORTCUT_OPTIONS = ("A", "B", "C", "D")
STRIDE_PLACEMENTS = ("3x3", "1x1")


def check_shortcut_option(shortcut: str) -> str:
    """Return ``shortcut`` if it is one of ``"A"``, ``"B"``, ``"C"``, else raise ``ValueError``."""
    if shortcut not in SHORTCUT_OPTIONS:
        raise ValueError(
            f"unknown shortcut option {shortcut!r}; choose one of {SHORTCUT_OPTIONS}: "
            "'A' = zero-pad (no parameters), 'B' = projection only where the shape changes, "
            "'C' = projection on every block, 'D' = as 'B' with a 2x2 average pool before a stride-1 projection"
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


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (BN follows): (N, C_in, H, W) -> (N, C_out, H/s, W/s).

    With ``groups`` > 1 the channels are split into that many independent groups (ResNeXt).
    """
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, groups=groups, bias=False)


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


class AvgPoolProjection(nn.Sequential):
    """Option D shortcut (ResNet-D): 2x2 average pool with the stride, then 1x1 conv + BN.

    (N, C_in, H, W) -> (N, C_out, ceil(H/stride), ceil(W/stride)). The plain projection's strided
    1x1 conv reads one pixel in four and ignores the rest; pooling first lets every pixel count.
    Children ``0`` (pool, ``nn.Identity`` when stride is 1), ``1`` (conv), ``2`` (BN), as in timm.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        pool: nn.Module = (
            nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False) if stride != 1 else nn.Identity()
        )
        super().__init__(pool, conv1x1(in_channels, out_channels), nn.BatchNorm2d(out_channels))


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): rescale each channel by a gate learned from all channels.

    (N, C, H, W) -> (N, C, H, W). Squeeze: global average pool to (N, C, 1, 1). Excite: 1x1 conv
    C -> C // reduction, ReLU, 1x1 conv back to C, sigmoid: one gate in (0, 1) per channel and image.
    The input is multiplied by its gates. Names as ``torchvision.ops.SqueezeExcitation``
    (``fc1``, ``fc2``), whose state dict loads into this module.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.channels = channels
        self.reduction = reduction
        squeezed = check_se_reduction(channels, reduction)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeezed, kernel_size=1)
        self.activation = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(squeezed, channels, kernel_size=1)
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.avgpool(x)  # (N, C, 1, 1): squeeze
        gate = self.scale_activation(self.fc2(self.activation(self.fc1(gate))))  # (N, C, 1, 1) in (0, 1)
        return x * gate  # broadcast over H, W

    def extra_repr(self) -> str:
        return f"{self.channels}, reduction={self.reduction}"


def check_se_reduction(channels: int, reduction: int) -> int:
    """The squeezed width ``channels // reduction``; ``ValueError`` if it would be 0 or the reduction is bad."""
    if not is_positive_int(reduction):
        raise ValueError(f"se_reduction must be a positive integer (16 in the SE paper); got {reduction!r}")
    if channels // reduction < 1:
        raise ValueError(
            f"squeeze-excitation on {channels} channels with reduction {reduction} leaves "
            f"{channels} // {reduction} = 0 channels; use a reduction of at most {channels}"
        )
    return channels // reduction


def bottleneck_width(planes: int, groups: int = 1, base_width: int = 64) -> int:
    """Width of a bottleneck's 3x3 conv, torchvision's rule: ``int(planes * base_width / 64) * groups``.

    ``groups`` groups of ``int(planes * base_width / 64)`` channels each. ResNet-50: planes 64 -> 64;
    ResNeXt-50 32x4d: planes 64, 32 groups of 4 -> 128; Wide ResNet-50-2 (base_width 128) -> 128.
    Raises ``ValueError`` for a non-positive ``groups`` / ``base_width`` or a group width that rounds to 0.
    """
    for name, value in (("groups", groups), ("base_width", base_width)):
        if not is_positive_int(value):
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    per_group = int(planes * (base_width / 64.0))
    if per_group < 1:
        raise ValueError(
            f"planes={planes} with base_width={base_width} gives int({planes} * {base_width} / 64) = 0 channels "
            "per group; raise base_width (channels per group at planes=64) or the stage's planes"
        )
    return per_group * groups


def make_shortcut(in_channels: int, out_channels: int, stride: int, shortcut: str) -> nn.Module | None:
    """The module on the shortcut path, or ``None`` for a plain identity.

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H/stride, W/stride).
    """
    check_shortcut_option(shortcut)
    shape_changes = stride != 1 or in_channels != out_channels
    if shortcut == "D" and shape_changes:
        return AvgPoolProjection(in_channels, out_channels, stride)
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
    if isinstance(module, AvgPoolProjection) and isinstance(module[0], nn.AvgPool2d):
        return "pool+projection"
    return "projection"


class _ResidualBlock(nn.Module):
    """What the two blocks share: the shortcut, the optional SE module, and how the branch is closed.

    Post-activation (the 2015 paper): ``ReLU(SE(branch) + shortcut(x))``.
    Pre-activation (He et al. 2016): ``SE(branch) + shortcut(x)``, no ReLU after the add; a
    shortcut *module* (projection or zero-pad) reads the pre-activated input ``ReLU(BN(x))``,
    as in the authors' code, while an identity shortcut carries ``x`` itself.
    """

    expansion: ClassVar[int] = 1

    def _add_shortcut_and_se(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        *,
        shortcut: str,
        residual: bool,
        preact: bool,
        se: bool,
        se_reduction: int,
    ) -> None:
        self.se = SqueezeExcitation(out_channels, se_reduction) if se else None
        self.downsample = make_shortcut(in_channels, out_channels, stride, shortcut) if residual else None
        self.residual = residual
        self.preact = preact
        self.stride = stride
        self.in_channels = in_channels
        self.out_channels = out_channels

    def _close(self, branch: torch.Tensor, x: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
        """SE on the branch, then the add (then ReLU unless pre-activation). ``pre`` feeds a shortcut module."""
        if self.se is not None:
            branch = self.se(branch)  # before the add: the SE gates rescale the residual, not the sum
        if self.residual:
            identity = x if self.downsample is None else self.downsample(pre)
            branch += identity  # add first, ReLU after: the branch may push values down
        return branch if self.preact else self.relu(branch)

    @property
    def last_bn(self) -> nn.BatchNorm2d | None:
        """The BN that closes the residual branch (zeroed by ``zero_init_residual``); None for pre-activation."""
        return None if self.preact else getattr(self, self.closing_bn)


class BasicBlock(_ResidualBlock):
    """Two 3x3 convolutions with a shortcut: out = ReLU(BN(conv(ReLU(BN(conv(x))))) + shortcut(x)).

    Shapes: (N, in_channels, H, W) -> (N, planes, H/stride, W/stride). ``expansion`` is 1:
    the block's output width equals ``planes``. ``preact=True``: out = conv(ReLU(BN(conv(ReLU(BN(x))))))
    + shortcut(x). ``se=True`` puts a squeeze-excitation module on the branch before the add.
    ``groups`` / ``base_width`` exist only to give a clear error (as in torchvision, basic blocks
    are not grouped: ResNeXt and Wide ResNet-50 change the ``Bottleneck``). ``stride_at`` is
    accepted for a uniform block interface: with no 1x1 conv on its branch, both "3x3" and "1x1"
    put the stride on the first 3x3 conv (ResNet-18/34 are the same in v1 and v1.5).
    """

    expansion: ClassVar[int] = 1  # output width = planes * expansion
    branch_convs: ClassVar[tuple[str, ...]] = ("conv1", "conv2")  # the residual branch's convs, in order
    closing_bn: ClassVar[str] = "bn2"  # the BN after the last of them (``last_bn``)

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        residual: bool = True,
        stride_at: str = "3x3",
        groups: int = 1,
        base_width: int = 64,
        preact: bool = False,
        se: bool = False,
        se_reduction: int = 16,
    ) -> None:
        super().__init__()
        check_stride_placement(stride_at)
        if groups != 1 or base_width != 64:
            raise ValueError(
                f"BasicBlock takes no groups or base_width (got groups={groups}, base_width={base_width}); "
                "ResNeXt and Wide ResNet-50/101 change the Bottleneck: use block=Bottleneck, or widen a "
                "basic-block net through its planes (as wide_resnet(depth, k) does)"
            )
        out_channels = planes * self.expansion
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(in_channels if preact else planes)  # pre-activation: BN before conv1
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, out_channels)
        self.bn2 = nn.BatchNorm2d(planes if preact else out_channels)
        self._add_shortcut_and_se(in_channels, out_channels, stride, shortcut=shortcut, residual=residual,
                                  preact=preact, se=se, se_reduction=se_reduction)  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preact:
            pre = self.relu(self.bn1(x))  # BN -> ReLU -> conv
            out = self.conv1(pre)
            out = self.conv2(self.relu(self.bn2(out)))
            return self._close(out, x, pre)  # no ReLU after the add
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self._close(out, x, x)


class Bottleneck(_ResidualBlock):
    """1x1 reduce, 3x3, 1x1 expand (x4), with a shortcut.

    Shapes: (N, in_channels, H, W) -> (N, 4 * planes, H/stride, W/stride).
    ``stride_at="3x3"`` (default) strides the 3x3 conv as torchvision does (ResNet v1.5);
    ``stride_at="1x1"`` strides the first 1x1 conv as in the paper (v1), which skips
    three quarters of the pixels before looking at them and costs fewer FLOPs.

    The inner width is ``bottleneck_width(planes, groups, base_width)`` (torchvision's rule):
    ``groups=32, base_width=4`` is ResNeXt's 32x4d, ``base_width=128`` Wide ResNet-50-2.
    ``preact`` and ``se`` as in ``BasicBlock``.
    """

    expansion: ClassVar[int] = 4  # output width = planes * expansion
    branch_convs: ClassVar[tuple[str, ...]] = ("conv1", "conv2", "conv3")  # the residual branch's convs, in order
    closing_bn: ClassVar[str] = "bn3"  # the BN after the last of them (``last_bn``)

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        residual: bool = True,
        stride_at: str = "3x3",
        groups: int = 1,
        base_width: int = 64,
        preact: bool = False,
        se: bool = False,
        se_reduction: int = 16,
    ) -> None:
        super().__init__()
        check_stride_placement(stride_at)
        width = bottleneck_width(planes, groups, base_width)
        out_channels = planes * self.expansion
        stride_1x1, stride_3x3 = (1, stride) if stride_at == "3x3" else (stride, 1)
        self.conv1 = conv1x1(in_channels, width, stride_1x1)
        self.bn1 = nn.BatchNorm2d(in_channels if preact else width)
        self.conv2 = conv3x3(width, width, stride_3x3, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = nn.BatchNorm2d(width if preact else out_channels)
        self.relu = nn.ReLU(inplace=True)
        self._add_shortcut_and_se(in_channels, out_channels, stride, shortcut=shortcut, residual=residual,
                                  preact=preact, se=se, se_reduction=se_reduction)  # fmt: skip
        self.stride_at = stride_at
        self.groups = groups
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preact:
            pre = self.relu(self.bn1(x))
            out = self.conv1(pre)
            out = self.conv2(self.relu(self.bn2(out)))
            out = self.conv3(self.relu(self.bn3(out)))
            return self._close(out, x, pre)  # no ReLU after the add
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))  # no ReLU here: BN -> add -> ReLU
        return self._close(out, x, x)


Block = type[nn.Module]
"""A block class: ``block(in_channels, planes, stride, **kwargs)`` builds one block. The networks read only
its class attributes ``expansion`` and ``branch_convs`` and its instances' ``out_channels``, ``downsample``,
``residual`` and ``last_bn``, so new block types (pre-activation, grouped, SE, ...) fit without changes there."""


def is_block(module: nn.Module) -> bool:
    """True for a residual/plain block of this package (or any module that follows the same protocol)."""
    return isinstance(getattr(type(module), "expansion", None), int) and hasattr(module, "branch_convs")
