"""Whole networks: ImageNet ResNet-18/34/50/101/152 and the CIFAR 6n+2 family.

``ResNet`` has torchvision's module names and parameter layout (``conv1``, ``bn1``,
``layer1``..``layer4``, ``fc``), so a torchvision state dict loads with ``strict=True``
and gives the same outputs. ``CifarResNet`` is the paper's Section 4.2 network.

The ResNet family (notebook 10) are options of the same two classes, passed on to the blocks
(``groups``, ``base_width``, ``preact``, ``se``, ``shortcut="D"``) or to the stem
(``stem="deep"``): ResNeXt, Wide ResNet, pre-activation ResNet, SE-ResNet and ResNet-D.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .blocks import (
    BasicBlock,
    Block,
    Bottleneck,
    bottleneck_width,
    check_shortcut_option,
    check_stride_placement,
    conv3x3,
    is_block,
)
from .costs import state_dict_mismatch
from .runtime import is_positive_int
from .stages import BlockInfo, make_stages

# The paper's Table 1: block type and blocks per stage for each depth.
IMAGENET_CONFIGS: dict[int, tuple[Block, tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}
IMAGENET_WIDTHS = (64, 128, 256, 512)  # planes of conv2_x .. conv5_x (x block.expansion at the output)
IMAGENET_STRIDES = (1, 2, 2, 2)  # the max pool has already halved the map before conv2_x
CIFAR_WIDTHS = (16, 32, 64)  # Section 4.2: maps of 32, 16, 8 pixels on CIFAR
CIFAR_STRIDES = (1, 2, 2)


class _CheckedModel(nn.Module):
    """What ResNet and CifarResNet share: stages + head, and input and state-dict checks whose errors say what to do."""

    in_channels: int
    min_input_size: int
    description: str
    block_table: list[BlockInfo]  # one row per block (see stages.make_stages)
    preact: bool  # pre-activation blocks: a final BN + ReLU before the pool

    def add_stages_and_head(
        self, stages: dict[str, nn.Sequential], table: list[BlockInfo], num_classes: int, zero_init_residual: bool
    ) -> None:
        """After the stem: register the stages (from ``make_stages``), global average pooling and the fc layer,
        then initialise every weight. Modules are registered in torchvision's order, so state-dict keys and
        the weights drawn from a seed are torchvision's."""
        for name, stage in stages.items():
            self.add_module(name, stage)
        self.block_table = table
        if getattr(self, "preact", False):  # pre-activation blocks leave their sum un-normalised: BN + ReLU
            self.final_bn = nn.BatchNorm2d(table[-1].out_channels)
            self.final_relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(table[-1].out_channels, num_classes)
        init_weights(self)
        if zero_init_residual:
            zero_init_last_bn(self)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's (N, C, h, w) maps to (N, num_classes) logits: the final BN + ReLU of a
        pre-activation net, global average pooling to (N, C), then the fc layer."""
        if self.preact:
            x = self.final_relu(self.final_bn(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def check_sizes(self, in_channels: int, num_classes: int) -> None:
        """Raise ``ValueError`` unless the image channels and the number of classes are positive integers."""
        for name, value, example in (("in_channels", in_channels, "3 for RGB, 1 for grayscale"),
                                     ("num_classes", num_classes, "10 for CIFAR-10 and Fashion-MNIST")):  # fmt: skip
            if not is_positive_int(value):
                raise ValueError(f"{name} must be a positive integer ({example}); got {value!r}")

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is (N, in_channels, H, W) with H, W >= min_input_size, ``TypeError``
        unless its dtype is the weights' (float32 normally)."""
        weight_dtype = next(self.parameters()).dtype  # conv1 may be a deep stem (nn.Sequential)
        if x.dtype != weight_dtype:
            if x.is_floating_point():
                how = f"x.to({weight_dtype})" if weight_dtype != torch.float32 else "x.float()"
            else:
                how = "x.float() / 255 for 0..255 pixels, then normalize them as the training data"
            raise TypeError(
                f"{self.description} expects a {weight_dtype} image batch (the dtype of its weights); got {x.dtype}. "
                f"Convert it: {how}."
            )
        expected = f"(N, {self.in_channels}, H, W) with H, W >= {self.min_input_size}"
        if x.dim() != 4:
            hint = " (a single image? add the batch dimension with x.unsqueeze(0))" if x.dim() == 3 else ""
            raise ValueError(f"{self.description} expects a 4-D input of shape {expected}; got {tuple(x.shape)}{hint}")
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self.description} expects input of shape {expected}; got {tuple(x.shape)} with "
                f"{x.shape[1]} channels. Build the model with in_channels={x.shape[1]} or convert the images."
            )
        if min(x.shape[-2:]) < self.min_input_size:
            raise ValueError(
                f"{self.description} expects input of shape {expected}; got {tuple(x.shape)}: the network "
                f"downsamples by {self.min_input_size}, so on a smaller image the last stage would see maps made "
                "mostly of zero padding. Resize the images up."
            )

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):  # type: ignore[override]
        """``nn.Module.load_state_dict`` that names the mismatching keys when the weights don't fit."""
        if strict:
            problems = state_dict_mismatch(self, state_dict)
            if problems:
                raise RuntimeError(
                    f"this state_dict does not fit {self.description}:\n{problems}\n"
                    "Was it saved from a network of another depth, width or shortcut option? "
                    "Build the same architecture before loading."
                )
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def check_zero_init(preact: bool, zero_init_residual: bool) -> None:
    """``ValueError`` when ``zero_init_residual`` asks to zero the BN closing each residual branch of
    pre-activation blocks (``preact``), which end in a convolution instead."""
    if preact and zero_init_residual:
        raise ValueError(
            "zero_init_residual needs a BN closing each residual branch; pre-activation blocks have none "
            "(they end in a convolution). Build the net without zero_init_residual."
        )


def zero_init_last_bn(model: nn.Module) -> None:
    """Set the last BN weight (gamma) of every residual branch to 0, so each block starts as the identity.

    Pre-activation blocks end in a convolution, not a BN: ``ValueError``.
    """
    for module in model.modules():
        if is_block(module):
            check_zero_init(module.last_bn is None, True)
            nn.init.zeros_(module.last_bn.weight)


STEMS = ("7x7", "deep")


def deep_stem(in_channels: int, width: int = 64) -> nn.Sequential:
    """ResNet-C stem (He et al. 2019): three 3x3 convs (stride 2, 1, 1) of width/2, width/2, width.

    (N, in_channels, H, W) -> (N, width, H/2, W/2): the same output as the 7x7/2 conv it replaces,
    seen through three small kernels with BN + ReLU between them. The BN + ReLU after the last conv
    are the network's ``bn1`` / ``relu``, so the children are named as in timm's ``resnet50d``.
    """
    half = width // 2
    return nn.Sequential(
        conv3x3(in_channels, half, stride=2), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
        conv3x3(half, half), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
        conv3x3(half, width),
    )  # fmt: skip


def init_weights(model: nn.Module) -> None:
    """He (Kaiming) normal init for convolutions, BN to (1, 0), as in torchvision."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class ResNet(_CheckedModel):
    """ImageNet-style ResNet (He et al. 2015, Table 1).

    Shapes: (N, in_channels, H, W) -> (N, num_classes) for any H, W >= 32.
    Stem: 7x7/2 conv (64) + BN + ReLU + 3x3/2 max pool; four stages of widths
    64/128/256/512 (x ``block.expansion``) with strides 1/2/2/2; adaptive average pool; fc.
    """

    min_input_size = 32  # total downsampling: 2 (conv1) * 2 (maxpool) * 2 * 2 * 2

    def __init__(
        self,
        block: Block,
        layers: tuple[int, int, int, int] | list[int],
        num_classes: int = 1000,
        *,
        in_channels: int = 3,
        zero_init_residual: bool = False,
        shortcut: str = "B",
        residual: bool = True,
        stride_at: str = "3x3",
        stem: str = "7x7",
        **block_kwargs: Any,
    ) -> None:
        """``block_kwargs`` go to every block, after ``shortcut`` and ``residual`` (and ``stride_at``
        when it is not the default "3x3", so a block type of your own needs to take it only for v1): for the
        family ``groups``, ``base_width`` (bottleneck), ``preact``, ``se``, ``se_reduction``. ``stem="deep"``
        replaces the 7x7 conv by three 3x3 convs (ResNet-C); pre-activation nets get a final BN + ReLU."""
        super().__init__()
        check_shortcut_option(shortcut)
        check_stride_placement(stride_at)
        if stem not in STEMS:
            raise ValueError(f"unknown stem {stem!r}; choose '7x7' (the paper's) or 'deep' (three 3x3 convs, ResNet-C)")
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"layers must give 4 stages of at least one block each, e.g. [3, 4, 6, 3]; got {layers}")
        self.check_sizes(in_channels, num_classes)
        block_kwargs = {"shortcut": shortcut, "residual": residual, **block_kwargs}
        if stride_at != "3x3":
            block_kwargs["stride_at"] = stride_at
        self.preact = bool(block_kwargs.get("preact", False))
        check_zero_init(self.preact, zero_init_residual)
        depth = sum(layers) * len(block.branch_convs) + 2
        self.description = f"{'ResNet' if residual else 'plain'}-{depth} ({block.__name__}, layers {list(layers)})"
        self.in_channels = in_channels

        if stem == "deep":
            self.conv1: nn.Module = deep_stem(in_channels, 64)
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        stages, table = make_stages(block, 64, IMAGENET_WIDTHS, layers, IMAGENET_STRIDES, **block_kwargs)
        self.add_stages_and_head(stages, table, num_classes, zero_init_residual)  # layer1 .. layer4, avgpool, fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (N, 64, H/4, W/4)
        x = self.layer1(x)  # (N, 64e, H/4, W/4)
        x = self.layer2(x)  # (N, 128e, H/8, W/8)
        x = self.layer3(x)  # (N, 256e, H/16, W/16)
        x = self.layer4(x)  # (N, 512e, H/32, W/32)
        return self.head(x)  # (N, num_classes)


def resnet(depth: int, **kwargs: Any) -> ResNet:
    """An ImageNet ResNet of depth 18, 34, 50, 101 or 152 (keyword arguments as ``ResNet``)."""
    if depth not in IMAGENET_CONFIGS:
        raise ValueError(f"ImageNet ResNets come in depths {sorted(IMAGENET_CONFIGS)}; got {depth}")
    block, layers = IMAGENET_CONFIGS[depth]
    return ResNet(block, layers, **kwargs)


def resnet18(**kwargs: Any) -> ResNet:
    """ResNet-18: BasicBlock x [2, 2, 2, 2], 11,689,512 parameters with 1000 classes."""
    return resnet(18, **kwargs)


def resnet34(**kwargs: Any) -> ResNet:
    """ResNet-34: BasicBlock x [3, 4, 6, 3], 21,797,672 parameters with 1000 classes."""
    return resnet(34, **kwargs)


def resnet50(**kwargs: Any) -> ResNet:
    """ResNet-50: Bottleneck x [3, 4, 6, 3], 25,557,032 parameters with 1000 classes."""
    return resnet(50, **kwargs)


def resnet101(**kwargs: Any) -> ResNet:
    """ResNet-101: Bottleneck x [3, 4, 23, 3], 44,549,160 parameters with 1000 classes."""
    return resnet(101, **kwargs)


def resnet152(**kwargs: Any) -> ResNet:
    """ResNet-152: Bottleneck x [3, 8, 36, 3], 60,192,808 parameters with 1000 classes."""
    return resnet(152, **kwargs)


def check_cifar_depth(depth: int, block: Block = BasicBlock) -> int:
    """Return n for depth = 6n + 2 (n >= 1), else raise ``ValueError`` naming valid depths.

    With a three-conv block (``Bottleneck``): depth = 9n + 2 (11, 20, 29, ..., 164, 1001).
    """
    if len(block.branch_convs) == 3:
        if not isinstance(depth, int) or depth < 11 or (depth - 2) % 9 != 0:
            raise ValueError(
                f"CIFAR ResNets of bottleneck blocks have depth 9n+2 with n >= 1 (11, 20, 29, ..., 164, 1001); got {depth!r}"
            )
        return (depth - 2) // 9
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6 != 0:
        raise ValueError(
            f"CIFAR ResNets have depth 6n+2 with n >= 1 (8, 14, 20, 26, 32, 44, 56, 110, 1202, ...); got {depth!r}"
        )
    return (depth - 2) // 6


class CifarResNet(_CheckedModel):
    """The paper's CIFAR-10 network (Section 4.2), 6n+2 weighted layers.

    Shapes: (N, in_channels, H, W) -> (N, num_classes) for H, W >= 4 (32x32 on CIFAR,
    28x28 on Fashion-MNIST). Stem: 3x3 conv with 16 filters, stride 1, no max pool;
    three stages of n basic blocks with 16/32/64 filters on maps of H, H/2, H/4;
    global average pool; fc.

    Family options: ``block=Bottleneck`` (depth 9n+2), ``widths`` (planes of the three stages,
    e.g. 16k/32k/64k for a wide net), ``blocks_per_stage`` (instead of deriving n from ``depth``),
    and ``block_kwargs`` for every block (``preact``, ``se``, ``groups``, ``base_width``). With
    ``preact=True`` the stem is the conv alone (the first block pre-activates) and a final
    BN + ReLU (``final_bn``, ``final_relu``) comes before the pool, as in He et al. 2016.
    """

    min_input_size = 4  # two stride-2 stages

    def __init__(
        self,
        depth: int,
        in_channels: int = 3,
        num_classes: int = 10,
        *,
        residual: bool = True,
        shortcut: str = "A",
        zero_init_residual: bool = False,
        block: Block = BasicBlock,
        widths: tuple[int, int, int] = CIFAR_WIDTHS,
        blocks_per_stage: int | None = None,
        **block_kwargs: Any,
    ) -> None:
        super().__init__()
        n = check_cifar_depth(depth, block) if blocks_per_stage is None else blocks_per_stage
        check_shortcut_option(shortcut)
        self.check_sizes(in_channels, num_classes)
        if len(widths) != 3 or min(widths) < 1:
            raise ValueError(f"widths gives the planes of the 3 stages, e.g. (16, 32, 64); got {widths}")
        self.preact = bool(block_kwargs.get("preact", False))
        check_zero_init(self.preact, zero_init_residual)
        self.depth = depth
        self.in_channels = in_channels
        self.description = f"{'ResNet' if residual else 'plain'}-{depth} (CIFAR, n={n})"
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3, stride=1, padding=1, bias=False)
        if not self.preact:  # pre-activation: the first block's BN + ReLU follow the stem conv
            self.bn1 = nn.BatchNorm2d(16)
            self.relu = nn.ReLU(inplace=True)
        stages, table = make_stages(
            block, 16, widths, (n, n, n), CIFAR_STRIDES, shortcut=shortcut, residual=residual, **block_kwargs
        )
        self.add_stages_and_head(stages, table, num_classes, zero_init_residual)  # layer1 .. layer3, avgpool, fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = self.conv1(x)  # (N, 16, H, W)
        if not self.preact:
            x = self.relu(self.bn1(x))
        x = self.layer1(x)  # (N, 16e, H, W) for widths 16/32/64
        x = self.layer2(x)  # (N, 32e, H/2, W/2)
        x = self.layer3(x)  # (N, 64e, H/4, W/4)
        return self.head(x)  # (N, num_classes)


def cifar_resnet(
    depth: int,
    in_channels: int = 3,
    num_classes: int = 10,
    residual: bool = True,
    shortcut: str = "A",
    **kwargs: Any,
) -> CifarResNet:
    """A CIFAR-style ResNet (or, with ``residual=False``, its plain twin) of depth 6n+2.

    With 3 input channels and 10 classes: 269,722 parameters for depth 20, 853,018 for 56.
    """
    return CifarResNet(depth, in_channels, num_classes, residual=residual, shortcut=shortcut, **kwargs)


# --------------------------------------------------------------------------------------------------
# The ResNet family (notebook 10): the same classes with options, not copies.


def _named(model: _CheckedModel, description: str) -> _CheckedModel:
    model.description = description
    return model


def resnext50_32x4d(**kwargs: Any) -> ResNet:
    """ResNeXt-50 32x4d (Xie et al. 2017): ResNet-50 with a 3x3 conv of 32 groups x 4 channels per group
    (at the first stage; x2 per stage). 25,028,904 parameters with 1000 classes, as torchvision's."""
    return _named(ResNet(Bottleneck, (3, 4, 6, 3), groups=32, base_width=4, **kwargs), "ResNeXt-50 (32x4d)")


def resnext101_32x8d(**kwargs: Any) -> ResNet:
    """ResNeXt-101 32x8d: 32 groups x 8 channels. 88,791,336 parameters with 1000 classes, as torchvision's."""
    return _named(ResNet(Bottleneck, (3, 4, 23, 3), groups=32, base_width=8, **kwargs), "ResNeXt-101 (32x8d)")


def resnext101_64x4d(**kwargs: Any) -> ResNet:
    """ResNeXt-101 64x4d: 64 groups x 4 channels. 83,455,272 parameters with 1000 classes, as torchvision's."""
    return _named(ResNet(Bottleneck, (3, 4, 23, 3), groups=64, base_width=4, **kwargs), "ResNeXt-101 (64x4d)")


def wide_resnet50_2(**kwargs: Any) -> ResNet:
    """Wide ResNet-50-2 (torchvision's reading of Zagoruyko & Komodakis 2016): ResNet-50 with twice the
    bottleneck's inner width (``base_width=128``); the block outputs keep their width.
    68,883,240 parameters with 1000 classes, as torchvision's."""
    return _named(ResNet(Bottleneck, (3, 4, 6, 3), base_width=128, **kwargs), "Wide ResNet-50-2")


def wide_resnet101_2(**kwargs: Any) -> ResNet:
    """Wide ResNet-101-2: ResNet-101 with twice the inner width. 126,886,696 parameters, as torchvision's."""
    return _named(ResNet(Bottleneck, (3, 4, 23, 3), base_width=128, **kwargs), "Wide ResNet-101-2")


def se_resnet50(se_reduction: int = 16, **kwargs: Any) -> ResNet:
    """SE-ResNet-50 (Hu et al. 2018): ResNet-50 with squeeze-excitation (reduction 16) on every
    residual branch before the add. 28,088,024 parameters with 1000 classes (paper: 28.1M)."""
    return _named(ResNet(Bottleneck, (3, 4, 6, 3), se=True, se_reduction=se_reduction, **kwargs), "SE-ResNet-50")


def resnet50d(**kwargs: Any) -> ResNet:
    """ResNet-50-D (He et al. 2019, "Bag of Tricks"): stride on the 3x3 (B, torchvision's default),
    deep 3x3 stem (C) and average pool before the downsampling projections (D).
    25,576,264 parameters with 1000 classes."""
    return _named(ResNet(Bottleneck, (3, 4, 6, 3), stem="deep", shortcut="D", **kwargs), "ResNet-50-D")


def preact_resnet(
    depth: int, in_channels: int = 3, num_classes: int = 10, *, bottleneck: bool | None = None, **kwargs: Any
) -> CifarResNet:
    """Pre-activation CIFAR ResNet (He et al. 2016): basic blocks for depth 6n+2, bottlenecks for 9n+2.

    A depth that fits both (20, 56, 110, 164, ...) takes the paper's choice: bottlenecks from 164 layers
    up (ResNet-164 and ResNet-1001 are bottleneck nets, ResNet-110 is not); ``bottleneck=`` overrides it.
    Bottleneck nets use projection shortcuts (option B, the first block widens 16 -> 64 channels), basic
    ones the CIFAR net's option A. Parameters with 3 input channels and 10 classes: 1,704,154 at
    depth 164 (paper: 1.7M), 10,328,602 at 1001 (paper: 10.2M), 269,722 at 20 (as ResNet-20).
    """
    fits_basic = isinstance(depth, int) and depth >= 8 and (depth - 2) % 6 == 0
    fits_bottleneck = isinstance(depth, int) and depth >= 11 and (depth - 2) % 9 == 0
    if bottleneck is None:
        if not (fits_basic or fits_bottleneck):
            raise ValueError(
                f"pre-activation CIFAR ResNets have depth 6n+2 (basic blocks: 20, 56, 110, ...) or 9n+2 "
                f"(bottlenecks: 164, 1001, ...); got {depth!r}"
            )
        bottleneck = fits_bottleneck and (depth >= 164 or not fits_basic)
    block: Block = Bottleneck if bottleneck else BasicBlock
    kwargs.setdefault("shortcut", "B" if bottleneck else "A")
    model = CifarResNet(depth, in_channels, num_classes, block=block, preact=True, **kwargs)
    return _named(model, f"pre-act ResNet-{depth} (CIFAR, {'bottleneck' if bottleneck else 'basic'})")


def check_wide_resnet(depth: int, k: int) -> int:
    """Blocks per stage n = (depth - 4) / 6 of WRN-depth-k; ``ValueError`` unless depth = 6n+4 and k >= 1."""
    if not isinstance(depth, int) or depth < 10 or (depth - 4) % 6 != 0:
        raise ValueError(f"Wide ResNets have depth 6n+4 with n >= 1 (10, 16, 22, 28, 40, ...); got {depth!r}")
    if not is_positive_int(k):
        raise ValueError(
            f"the widening factor k must be a positive integer (1 = a thin net, 10 in WRN-28-10); got {k!r}"
        )
    return (depth - 4) // 6


def wide_resnet(depth: int, k: int, in_channels: int = 3, num_classes: int = 10, **kwargs: Any) -> CifarResNet:
    """WRN-depth-k (Zagoruyko & Komodakis 2016): pre-activation basic blocks, widths 16k/32k/64k,
    (depth - 4) / 6 blocks per stage, 1x1 projections where the shape changes (option B, with BN:
    the paper's code has none, 2 x (16 + 32 + 64) x k fewer parameters).

    Parameters with 3 input channels and 10 classes: WRN-28-10 36,481,434 (paper 36.5M), WRN-40-4
    8,950,106 (8.9M), WRN-16-4 2,749,786 (2.7M), WRN-16-2 692,122.
    """
    n = check_wide_resnet(depth, k)
    kwargs.setdefault("shortcut", "B")
    model = CifarResNet(
        depth, in_channels, num_classes, widths=(16 * k, 32 * k, 64 * k), blocks_per_stage=n, preact=True, **kwargs
    )
    return _named(model, f"WRN-{depth}-{k}")


def cifar_resnext(
    depth: int, groups: int, base_width: int, in_channels: int = 3, num_classes: int = 10, **kwargs: Any
) -> CifarResNet:
    """A small ResNeXt for 28-32 pixel images: bottleneck blocks (depth 9n+2, planes 16/32/64, outputs
    64/128/256) whose 3x3 conv has ``groups`` groups of ``int(planes * base_width / 64)`` channels.

    Projection shortcuts (option B). ``cifar_resnext(20, 8, 16)`` has 8 groups of 4/8/16 channels.
    """
    kwargs.setdefault("shortcut", "B")
    model = CifarResNet(
        depth, in_channels, num_classes, block=Bottleneck, groups=groups, base_width=base_width, **kwargs
    )
    return _named(model, f"ResNeXt-{depth} ({groups}x{bottleneck_width(16, 1, base_width)}d, CIFAR)")
