"""Reference numbers the course is held to: the papers' tables and torchvision's measured figures.

One home for them, so tests, checker messages and notebooks compare against the same values
instead of copies. Each constant names its source. Errors and accuracies are percentages; MACs
are multiply-adds (what the paper and torchvision call FLOPs) at one (1, 3, 224, 224) image.

    >>> from resnet_lab import reference
    >>> reference.TORCHVISION[50].parameters
    25557032
"""

from __future__ import annotations

from dataclasses import dataclass

# --------------------------------------------------------------------------------------------------
# torchvision.models.resnet (0.29): its model table; MACs measured with torch.utils.flop_counter.


@dataclass(frozen=True)
class ModelFigures:
    """One row of torchvision's model table."""

    name: str
    parameters: int
    gmacs: float  # giga multiply-adds at (1, 3, 224, 224)
    top1: float | None = None  # IMAGENET1K_V1 acc@1 (%), where listed


TORCHVISION: dict[int, ModelFigures] = {
    18: ModelFigures("resnet18", 11_689_512, 1.814, 69.758),
    34: ModelFigures("resnet34", 21_797_672, 3.664, 73.314),
    50: ModelFigures("resnet50", 25_557_032, 4.089, 76.130),
    101: ModelFigures("resnet101", 44_549_160, 7.801, 77.374),
    152: ModelFigures("resnet152", 60_192_808, 11.514, 78.312),
}
"""depth -> torchvision's figures (bottleneck stride on the 3x3 conv: "v1.5")."""

TORCHVISION_PARAMS: dict[int, int] = {depth: row.parameters for depth, row in TORCHVISION.items()}
TORCHVISION_GMACS: dict[int, float] = {depth: row.gmacs for depth, row in TORCHVISION.items()}

V1_GMACS: dict[int, float] = {50: 3.858, 101: 7.570, 152: 11.282}
"""Conv + fc multiply-adds with the bottleneck stride on the first 1x1 conv, as in the paper ("v1")."""

TORCHINFO_RESNET50_GMACS = 4.09
"""torchinfo's "Total mult-adds (G)" for resnet50 at (1, 3, 224, 224)."""

FAMILY: dict[str, ModelFigures] = {
    "resnext50_32x4d": ModelFigures("resnext50_32x4d", 25_028_904, 4.230),
    "resnext101_32x8d": ModelFigures("resnext101_32x8d", 88_791_336, 16.414),
    "resnext101_64x4d": ModelFigures("resnext101_64x4d", 83_455_272, 15.460),
    "wide_resnet50_2": ModelFigures("wide_resnet50_2", 68_883_240, 11.398),
    "wide_resnet101_2": ModelFigures("wide_resnet101_2", 126_886_696, 22.753),
}
"""The ResNet family in torchvision 0.29 (module names as resnet50's), measured like ``TORCHVISION``."""

# --------------------------------------------------------------------------------------------------
# He et al. 2015, "Deep Residual Learning for Image Recognition" (arXiv:1512.03385)

TABLE_1_BLOCKS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
"""Table 1: block type and blocks per stage (conv2_x .. conv5_x) for each depth."""

TABLE_1_OUTPUT_SIZE: dict[str, int] = {"conv1": 112, "conv2_x": 56, "conv3_x": 28, "conv4_x": 14, "conv5_x": 7}
"""Table 1: side of each stage's output map at 224x224 input (conv2_x starts with the 3x3/2 max pool)."""

TABLE_1_STAGE_CHANNELS: dict[str, tuple[int, int, int, int]] = {
    "basic": (64, 128, 256, 512),
    "bottleneck": (256, 512, 1024, 2048),
}
"""Table 1: output channels of conv2_x .. conv5_x (the bottleneck's last 1x1 widens 4x)."""

TABLE_1_FLOPS: dict[int, float] = {18: 1.8e9, 34: 3.6e9, 50: 3.8e9, 101: 7.6e9, 152: 11.3e9}
"""Table 1's "FLOPs" row; they are multiply-adds, of the paper's v1 networks."""

TABLE_2_TOP1_ERROR: dict[str, float] = {"plain-18": 27.94, "ResNet-18": 27.88, "plain-34": 28.54, "ResNet-34": 25.03}
"""Table 2: ImageNet top-1 error (10-crop). plain-34 is worse than plain-18: the degradation problem."""


@dataclass(frozen=True)
class CifarRow:
    """One row of Table 6 (CIFAR-10, with augmentation)."""

    depth: int
    n: int
    paper_params: str  # as printed in the paper
    parameters: int  # exact count of conv + BN + fc parameters, 3 input channels, 10 classes
    error: float  # test error (%)


TABLE_6: dict[int, CifarRow] = {
    20: CifarRow(20, 3, "0.27M", 269_722, 8.75),
    32: CifarRow(32, 5, "0.46M", 464_154, 7.51),
    44: CifarRow(44, 7, "0.66M", 658_586, 7.17),
    56: CifarRow(56, 9, "0.85M", 853_018, 6.97),
    110: CifarRow(110, 18, "1.7M", 1_727_962, 6.43),
    1202: CifarRow(1202, 200, "19.4M", 19_421_274, 7.93),
}
"""Table 6: the 6n+2 CIFAR-10 nets. ResNet-110's 6.43 is its best run (6.61 +- 0.16 over 5 runs)."""

CIFAR_PARAMS: dict[int, int] = {depth: row.parameters for depth, row in TABLE_6.items()}
CIFAR_ERRORS: dict[int, float] = {depth: row.error for depth, row in TABLE_6.items()}

CIFAR_RECIPE = {
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "batch_size": 128,
    "lr": 0.1,
    "lr_drops_at_iterations": (32_000, 48_000),
    "iterations": 64_000,
    "train_val_split": (45_000, 5_000),
}
"""Section 4.2's CIFAR-10 training recipe (lr divided by 10 at each drop)."""

# --------------------------------------------------------------------------------------------------
# The family: later papers' headline figures

PREACT_CIFAR_ERROR: dict[str, tuple[float, float]] = {
    "ResNet-110": (6.61, 6.37),
    "ResNet-164": (5.93, 5.46),
    "ResNet-1001": (7.61, 4.92),
}
"""He et al. 2016 (arXiv:1603.05027): CIFAR-10 error, original unit -> full pre-activation unit."""

RESNEXT_TABLE_3_TOP1_ERROR: dict[str, float] = {"ResNet-50": 23.9, "ResNeXt-50 (32x4d)": 22.2}
"""Xie et al. 2017 (arXiv:1611.05431), Table 3: ImageNet top-1 error at about the same cost."""

SE_RESNET50_PARAMS_M = (28.1, 25.6)
"""Hu et al. 2018 (arXiv:1709.01507): SE-ResNet-50 vs ResNet-50, millions of parameters (r = 16)."""

BAG_OF_TRICKS_TABLE_5_TOP1: dict[str, float] = {
    "ResNet-50": 76.21,
    "ResNet-50-B": 76.66,
    "ResNet-50-C": 76.87,
    "ResNet-50-D": 77.16,
}
"""He et al. 2019 (arXiv:1812.01187), Table 5: ImageNet top-1 accuracy (%) with their own recipe."""

SE_RESNET50_TOP1_ERROR = (23.29, 24.80)
"""Hu et al. 2018, Table 2: ImageNet top-1 error (%, single 224 crop), SE-ResNet-50 vs their ResNet-50."""

WRN50_2_TOP1_ERROR = 21.9
"""Zagoruyko & Komodakis 2016 (arXiv:1605.07146), ImageNet: WRN-50-2-bottleneck top-1 error (%), 68.9M parameters."""

WRN_PAPER_PARAMS_M: dict[str, float] = {"WRN-28-10": 36.5, "WRN-40-4": 8.9, "WRN-16-4": 2.7}
"""Zagoruyko & Komodakis 2016: parameters (millions) as printed for CIFAR WRN-d-k."""

PREACT_PAPER_PARAMS_M: dict[int, float] = {164: 1.7, 1001: 10.2}
"""He et al. 2016: parameters (millions) of the bottleneck pre-activation CIFAR nets."""

FAMILY_EXACT_PARAMS: dict[str, int] = {
    "se_resnet50": 28_088_024,  # r = 16, SE layers with biases
    "resnet50d": 25_576_264,  # resnet50 - 7x7 stem conv (9,408) + deep stem (28,640)
    "preact_resnet20": 269_722,  # = ResNet-20: pre-activation moves BNs, the count is unchanged
    "preact_resnet110": 1_727_962,
    "preact_resnet164": 1_704_154,  # bottlenecks, option B
    "preact_resnet1001": 10_328_602,
    "wrn_16_2": 692_122,
    "wrn_16_4": 2_749_786,
    "wrn_28_10": 36_481_434,  # with BN on the 1x1 projections (the paper's code has none: 2,240 fewer)
    "wrn_40_4": 8_950_106,
}
"""Exact parameter counts of resnet_lab's family builders: 3 input channels, 1000 classes (ImageNet nets) or
10 (CIFAR nets). Measured by the tests, not taken from the papers (whose rounded figures are above)."""
