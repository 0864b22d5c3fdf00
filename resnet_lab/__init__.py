"""resnet_lab: the tested helper package of the resnet-lab course.

The notebooks build each piece by hand and then check it against the finished code here.
"""

__version__ = "0.1.0"

# Submodules used as namespaces: resnet_lab.checks.basic_block(...), resnet_lab.training.train(...).
# (plots and experiments import matplotlib, so they load only when asked for.)
from . import checkpoints, checks, data, reference, training  # noqa: E402
from .blocks import BasicBlock, Bottleneck, ZeroPadShortcut, conv1x1, conv3x3, make_shortcut
from .costs import count_macs, count_macs_by_layer, count_parameters, state_dict_mismatch
from .models import (  # the ResNet family (notebook 10)
    IMAGENET_CONFIGS,
    CifarResNet,
    ResNet,
    check_cifar_depth,
    cifar_resnet,
    cifar_resnext,
    preact_resnet,
    resnet,
    resnet18,
    resnet34,
    resnet50,
    resnet50d,
    resnet101,
    resnet152,
    resnext50_32x4d,
    resnext101_32x8d,
    resnext101_64x4d,
    se_resnet50,
    wide_resnet,
    wide_resnet50_2,
    wide_resnet101_2,
)
from .runtime import fast_mode, pick_device, seed_everything
from .shapes import (
    FeatureMapRow,
    conv_output_size,
    feature_map_table,
    format_feature_map_table,
    format_side_by_side,
    predicted_feature_map_table,
)
from .stages import BlockInfo, format_block_table, make_stage, make_stages

__all__ = [
    "__version__",
    "BasicBlock",
    "Bottleneck",
    "ZeroPadShortcut",
    "conv1x1",
    "conv3x3",
    "make_shortcut",
    "make_stage",
    "make_stages",
    "BlockInfo",
    "format_block_table",
    "ResNet",
    "CifarResNet",
    "IMAGENET_CONFIGS",
    "resnet",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "cifar_resnet",
    "check_cifar_depth",
    "state_dict_mismatch",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "wide_resnet50_2",
    "wide_resnet101_2",
    "se_resnet50",
    "resnet50d",
    "preact_resnet",
    "wide_resnet",
    "cifar_resnext",
    "conv_output_size",
    "FeatureMapRow",
    "feature_map_table",
    "predicted_feature_map_table",
    "format_feature_map_table",
    "format_side_by_side",
    "count_parameters",
    "count_macs",
    "count_macs_by_layer",
    "fast_mode",
    "pick_device",
    "seed_everything",
    "checkpoints",
    "checks",
    "data",
    "reference",
    "training",
]
