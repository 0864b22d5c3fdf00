"""The family's block options: grouped/wide bottleneck, pre-activation, squeeze-excitation, ResNet-D shortcut."""

import pytest
import torch
import torchvision

from resnet_lab import BasicBlock, Bottleneck, count_parameters
from resnet_lab.blocks import AvgPoolProjection, SqueezeExcitation, bottleneck_width, describe_shortcut

# ---- ResNeXt / Wide: groups and base_width with torchvision's meaning


@pytest.mark.parametrize(
    "planes,groups,base_width,width",
    [
        (64, 1, 64, 64),
        (64, 32, 4, 128),
        (512, 32, 4, 1024),
        (64, 32, 8, 256),
        (64, 64, 4, 256),
        (64, 1, 128, 128),
        (16, 8, 16, 32),
    ],
)
def test_bottleneck_width_rule(planes, groups, base_width, width):
    assert bottleneck_width(planes, groups, base_width) == width
    block = Bottleneck(4 * planes, planes, groups=groups, base_width=base_width)
    assert block.conv1.out_channels == block.conv2.in_channels == block.conv2.out_channels == width
    assert block.conv2.groups == groups and block.conv3.in_channels == width
    assert block.out_channels == 4 * planes  # the block's output keeps ResNet's width


def test_grouped_bottleneck_matches_torchvision_resnext_block():
    torch.manual_seed(0)
    theirs = torchvision.models.resnet.Bottleneck(
        256, 128, stride=2, groups=32, base_width=4,
        downsample=torch.nn.Sequential(torch.nn.Conv2d(256, 512, 1, 2, bias=False), torch.nn.BatchNorm2d(512)),
    ).eval()  # fmt: skip
    ours = Bottleneck(256, 128, stride=2, groups=32, base_width=4).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 256, 8, 8)
    with torch.no_grad():
        assert (ours(x) - theirs(x)).abs().max().item() < 1e-5


@pytest.mark.parametrize(
    "kwargs,words",
    [
        ({"groups": 0}, "groups must be a positive integer"),
        ({"base_width": -4}, "base_width must be a positive integer"),
        ({"groups": 2.5}, "groups must be a positive integer"),
        ({"planes": 8, "base_width": 4}, "0 channels per group"),
    ],
)
def test_bad_group_settings_raise_clear_errors(kwargs, words):
    args = {"in_channels": 64, "planes": 64, **kwargs}
    with pytest.raises(ValueError, match=words):
        Bottleneck(args.pop("in_channels"), args.pop("planes"), **args)


@pytest.mark.parametrize("kwargs", [{"groups": 2}, {"base_width": 128}])
def test_basic_block_refuses_groups_and_names_the_bottleneck(kwargs):
    with pytest.raises(ValueError, match="use block=Bottleneck"):
        BasicBlock(64, 64, **kwargs)


def test_grouping_cuts_the_3x3_parameters_by_the_number_of_groups():
    dense = Bottleneck(256, 64, groups=1, base_width=128)  # width 128, one group
    grouped = Bottleneck(256, 64, groups=32, base_width=4)  # width 128, 32 groups
    assert dense.conv2.weight.numel() == 128 * 128 * 9
    assert grouped.conv2.weight.numel() == 128 * 128 * 9 // 32
    assert count_parameters(dense) - count_parameters(grouped) == 128 * 128 * 9 * 31 // 32


# ---- pre-activation


@pytest.mark.parametrize("block", [BasicBlock, Bottleneck])
def test_preact_block_puts_bn_before_each_conv(block):
    b = block(32, 16, preact=True)
    assert b.bn1.num_features == 32  # normalises the block's input
    assert b.bn2.num_features == b.conv1.out_channels
    assert b.last_bn is None


@pytest.mark.parametrize("block", [BasicBlock, Bottleneck])
def test_preact_block_has_no_relu_after_the_add(block):
    """With the branch's last conv zeroed the block is exactly the identity: negative values survive."""
    b = block(4 * block.expansion, 4, preact=True).eval()
    last_conv = b.conv3 if block is Bottleneck else b.conv2
    torch.nn.init.zeros_(last_conv.weight)
    x = torch.randn(2, 4 * block.expansion, 6, 6)
    with torch.no_grad():
        out = b(x)
    assert torch.equal(out, x) and (out < 0).any()
    post = block(4 * block.expansion, 4).eval()  # the 2015 block ends in a ReLU: never negative
    with torch.no_grad():
        assert (post(x) >= 0).all()


def test_preact_projection_reads_the_preactivated_input():
    b = BasicBlock(16, 32, stride=2, preact=True, shortcut="B").eval()
    seen = {}

    def remember_input(_module, inputs, _output):
        seen["input"] = inputs[0].clone()

    b.downsample.register_forward_hook(remember_input)
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        b(x)
        assert torch.equal(seen["input"], torch.relu(b.bn1(x)))


def test_preact_basic_block_forward_by_hand():
    torch.manual_seed(0)
    b = BasicBlock(8, 8, preact=True).eval()
    for bn in (b.bn1, b.bn2):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        expected = b.conv2(torch.relu(b.bn2(b.conv1(torch.relu(b.bn1(x)))))) + x
        assert torch.allclose(b(x), expected, atol=1e-6)


# ---- squeeze-excitation


def test_se_module_equals_torchvision_ops_squeeze_excitation():
    torch.manual_seed(0)
    theirs = torchvision.ops.SqueezeExcitation(64, 64 // 16).eval()
    ours = SqueezeExcitation(64, reduction=16).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(3, 64, 7, 7)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-6)
    assert count_parameters(ours) == 64 * 4 + 4 + 4 * 64 + 64


def test_se_gates_are_per_image_and_channel_in_0_1():
    se = SqueezeExcitation(32, 8).eval()
    x = torch.rand(2, 32, 5, 5) + 0.1
    with torch.no_grad():
        gate = se(x) / x
    assert torch.allclose(gate, gate[:, :, :1, :1].expand_as(gate), atol=1e-5)  # one gate per (image, channel)
    assert ((gate > 0) & (gate < 1)).all()


@pytest.mark.parametrize("block", [BasicBlock, Bottleneck])
@pytest.mark.parametrize("preact", [False, True])
def test_se_acts_on_the_branch_before_the_add(block, preact):
    """Gates shut (sigmoid of -100): the block keeps only its shortcut, so SE was before the add."""
    channels = 16 * block.expansion
    b = block(channels, 16, se=True, preact=preact).eval()
    torch.nn.init.constant_(b.se.fc2.bias, -100.0)
    torch.nn.init.zeros_(b.se.fc2.weight)
    x = torch.randn(2, channels, 6, 6)
    with torch.no_grad():
        out = b(x)
    assert torch.allclose(out, x if preact else torch.relu(x), atol=1e-6)


@pytest.mark.parametrize(
    "reduction,words", [(0, "positive integer"), (32, "leaves 16 // 32 = 0 channels"), (2.0, "positive")]
)
def test_se_bad_reduction(reduction, words):
    with pytest.raises(ValueError, match=words):
        BasicBlock(16, 16, se=True, se_reduction=reduction)


# ---- ResNet-D shortcut


def test_option_d_pools_then_projects():
    torch.manual_seed(0)
    b = Bottleneck(256, 128, stride=2, shortcut="D").eval()
    assert isinstance(b.downsample, AvgPoolProjection)
    pool, conv, bn = b.downsample
    assert isinstance(pool, torch.nn.AvgPool2d) and conv.stride == (1, 1) and conv.kernel_size == (1, 1)
    assert describe_shortcut(b.downsample, True) == "pool+projection"
    x = torch.randn(1, 256, 7, 7)  # odd size: ceil mode keeps the last row, like the strided 3x3
    with torch.no_grad():
        assert b(x).shape == (1, 512, 4, 4)
        by_hand = bn(conv(torch.nn.functional.avg_pool2d(x, 2, 2, ceil_mode=True, count_include_pad=False)))
        assert torch.allclose(b.downsample(x), by_hand, atol=1e-6)
    same_params = Bottleneck(256, 128, stride=2, shortcut="B")
    assert count_parameters(b) == count_parameters(same_params)  # pooling costs no parameters


def test_option_d_without_stride_is_a_plain_projection_and_identity_elsewhere():
    widen = Bottleneck(64, 64, shortcut="D")  # 64 -> 256 channels, stride 1
    assert isinstance(widen.downsample[0], torch.nn.Identity)
    assert describe_shortcut(widen.downsample, True) == "projection"
    assert Bottleneck(256, 64, shortcut="D").downsample is None


def test_unknown_shortcut_names_d():
    with pytest.raises(ValueError, match="'D' = as 'B' with a 2x2 average pool"):
        BasicBlock(16, 16, shortcut="E")
