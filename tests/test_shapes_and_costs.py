"""Feature-map sizes from the formula agree with the network; parameters and FLOPs match the tables."""

import pytest
import torch
import torchinfo

import resnet_lab
from resnet_lab import (
    cifar_resnet,
    conv_output_size,
    count_macs,
    count_parameters,
    feature_map_table,
    predicted_feature_map_table,
)
from resnet_lab.reference import (
    CIFAR_PARAMS,
    TABLE_1_OUTPUT_SIZE,
    TORCHINFO_RESNET50_GMACS,
    TORCHVISION_GMACS,
    V1_GMACS,
)


@pytest.mark.parametrize(
    "n,k,s,p,expected",
    [
        (224, 7, 2, 3, 112),  # ImageNet stem conv
        (112, 3, 2, 1, 56),  # max pool
        (56, 3, 1, 1, 56),  # 3x3 "same" conv
        (56, 3, 2, 1, 28),  # strided 3x3
        (56, 1, 2, 0, 28),  # strided 1x1 projection
        (56, 1, 1, 1, 58),  # mistake 2: a 1x1 conv with padding grows the map
        (32, 3, 1, 1, 32),
        (7, 3, 2, 1, 4),  # odd sizes round up through the padding
        (28, 5, 1, 0, 24),
    ],
)
def test_conv_output_size_formula(n, k, s, p, expected):
    assert conv_output_size(n, k, s, p) == expected
    conv = torch.nn.Conv2d(1, 1, k, s, p)
    assert conv(torch.zeros(1, 1, n, n)).shape[-1] == expected


def test_conv_output_size_dilation():
    assert conv_output_size(32, 3, 1, 2, dilation=2) == 32
    assert conv_output_size(32, 3, 1, 0, dilation=2) == 28


def _shapes(rows):
    return [(r.name, r.shape) for r in rows]


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_imagenet_tables_formula_equals_hooks(depth):
    with torch.device("meta"):  # shapes only: hooks see the same shapes without any arithmetic
        model = resnet_lab.resnet(depth)
    predicted = predicted_feature_map_table(model, (1, 3, 224, 224), blocks=True)
    measured = feature_map_table(model, (1, 3, 224, 224), blocks=True)
    assert _shapes(predicted) == _shapes(measured)
    stages = {r.name: r.shape for r in predicted_feature_map_table(model, (1, 3, 224, 224))}
    e = 1 if depth < 50 else 4
    side = TABLE_1_OUTPUT_SIZE
    assert stages["conv1"] == (64, side["conv1"], side["conv1"])
    assert stages["maxpool"] == (64, side["conv2_x"], side["conv2_x"])
    for i, (planes, paper_stage) in enumerate(
        zip((64, 128, 256, 512), ("conv2_x", "conv3_x", "conv4_x", "conv5_x")), 1
    ):
        assert stages[f"layer{i}"] == (planes * e, side[paper_stage], side[paper_stage])
    assert stages["fc"] == (1000,)
    assert sum(r.params for r in predicted_feature_map_table(model, (1, 3, 224, 224))) == count_parameters(model)


@pytest.mark.parametrize("stride_at", ["1x1", "3x3"])
def test_v1_bottleneck_table_agrees(stride_at):
    with torch.device("meta"):
        model = resnet_lab.resnet50(stride_at=stride_at)
    assert _shapes(predicted_feature_map_table(model, (1, 3, 224, 224), True)) == _shapes(
        feature_map_table(model, (1, 3, 224, 224), True)
    )


@pytest.mark.parametrize("depth", [20, 56, 110])
@pytest.mark.parametrize("in_channels,size", [(3, 32), (1, 28)])
def test_cifar_tables_formula_equals_hooks(depth, in_channels, size):
    model = cifar_resnet(depth, in_channels=in_channels)
    shape = (1, in_channels, size, size)
    predicted = predicted_feature_map_table(model, shape, blocks=True)
    assert _shapes(predicted) == _shapes(feature_map_table(model, shape, blocks=True))
    stages = {r.name: r.shape for r in predicted_feature_map_table(model, shape)}
    half, quarter = conv_output_size(size, 3, 2, 1), conv_output_size(conv_output_size(size, 3, 2, 1), 3, 2, 1)
    assert stages["layer1"] == (16, size, size)
    assert stages["layer2"] == (32, half, half)
    assert stages["layer3"] == (64, quarter, quarter)


def test_imagenet_stem_on_32x32_leaves_a_1x1_map():
    with torch.device("meta"):
        model = resnet_lab.resnet18()
    stages = {r.name: r.shape for r in feature_map_table(model, (1, 3, 32, 32))}
    assert stages["layer4"] == (512, 1, 1)


def test_table_restores_training_mode():
    model = cifar_resnet(20).train()
    feature_map_table(model, (1, 3, 32, 32))
    assert model.training


def test_table_formatting():
    model = cifar_resnet(20)
    text = resnet_lab.format_feature_map_table(predicted_feature_map_table(model, (1, 3, 32, 32)))
    assert "64 x 8 x 8" in text and f"{CIFAR_PARAMS[20]:,}" in text
    side = resnet_lab.format_side_by_side(
        predicted_feature_map_table(model, (1, 3, 32, 32)), feature_map_table(model, (1, 3, 32, 32))
    )
    assert "MISMATCH" not in side and side.count("yes") == 8


@pytest.mark.parametrize("depth", sorted(TORCHVISION_GMACS))
def test_macs_match_torchvision(depth):
    with torch.device("meta"):  # counting runs on meta anyway; building there skips the weight init
        model = resnet_lab.resnet(depth)
    gmacs = count_macs(model) / 1e9
    assert gmacs == pytest.approx(TORCHVISION_GMACS[depth], rel=0.005)
    assert round(gmacs, 3) == TORCHVISION_GMACS[depth]


@pytest.mark.parametrize("depth", sorted(V1_GMACS))
def test_macs_v1_stride_placement(depth):
    with torch.device("meta"):
        model = resnet_lab.resnet(depth, stride_at="1x1")
    gmacs = count_macs(model) / 1e9
    assert gmacs == pytest.approx(V1_GMACS[depth], rel=0.005)


def test_macs_by_layer_add_up():
    model = cifar_resnet(20)
    per_layer = resnet_lab.count_macs_by_layer(model, (1, 3, 32, 32))
    assert sum(per_layer.values()) == count_macs(model, (1, 3, 32, 32))
    assert per_layer["conv1"] == 3 * 16 * 9 * 32 * 32
    assert per_layer["fc"] == 64 * 10


@pytest.mark.parametrize("builder", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"])
def test_torchinfo_total_equals_parameter_sum(builder):
    with torch.device("meta"):
        model = getattr(resnet_lab, builder)()
    stats = torchinfo.summary(model, input_size=(1, 3, 64, 64), verbose=0, device="meta")  # counts need no 224x224
    assert stats.total_params == sum(p.numel() for p in model.parameters())


def test_torchinfo_mult_adds_resnet50():
    with torch.device("meta"):
        model = resnet_lab.resnet50()
    stats = torchinfo.summary(model, input_size=(1, 3, 224, 224), verbose=0, device="meta")
    assert round(stats.total_mult_adds / 1e9, 2) == TORCHINFO_RESNET50_GMACS
