"""The networks match the paper's tables and torchvision's implementation exactly."""

import pytest
import torch
import torchvision

import resnet_lab
from resnet_lab import BasicBlock, Bottleneck, cifar_resnet, count_parameters, make_stage, make_stages, resnet
from resnet_lab.reference import CIFAR_PARAMS, TABLE_1_BLOCKS, TABLE_1_STAGE_CHANNELS, TORCHVISION_PARAMS


def test_package_exports_the_networks_it_lists():
    """Every name in ``__all__`` is there, and the builders notebook 10 uses make networks of the right depth."""
    assert resnet_lab.__version__.count(".") == 2 and all(part.isdigit() for part in resnet_lab.__version__.split("."))
    assert [name for name in resnet_lab.__all__ if not hasattr(resnet_lab, name)] == []
    assert resnet_lab.cifar_resnet(20).description.startswith("ResNet-20")
    assert len(resnet_lab.resnet18().layer4) == 2 and len(resnet_lab.resnet50().layer3) == 6


def assert_same_state(ours: torch.nn.Module, theirs: torch.nn.Module) -> None:
    """Same keys in the same order, and every tensor bit for bit equal."""
    mine, other = ours.state_dict(), theirs.state_dict()
    assert list(mine) == list(other)  # same names, same order
    different = [name for name in other if not torch.equal(mine[name], other[name])]
    assert not different, f"{len(different)} tensors differ, first: {different[:3]}"


@pytest.mark.parametrize("depth", sorted(TORCHVISION_PARAMS))
def test_builders_initialise_and_compute_exactly_as_torchvision(depth):
    torch.manual_seed(depth)
    theirs = getattr(torchvision.models, f"resnet{depth}")().eval()
    torch.manual_seed(depth)
    ours = getattr(resnet_lab, f"resnet{depth}")().eval()
    # From the same seed, the same weights bit for bit (Kaiming normal, fan_out, BN (1, 0), fc as nn.Linear's):
    # a from-scratch run can be compared with torchvision's, and a change of init cannot slip through.
    assert_same_state(ours, theirs)
    x = torch.randn(2, 3, 64, 64)  # any size >= 32 exercises every layer; 224x224 would only cost time
    with torch.no_grad():
        diff = (ours(x) - theirs(x)).abs().max().item()
    assert diff < 1e-5
    assert count_parameters(ours) == TORCHVISION_PARAMS[depth]


@pytest.mark.parametrize("depth", [18, 50])
@pytest.mark.parametrize("size", [(32, 32), (160, 160), (256, 192), (97, 131)])
def test_any_input_size_that_survives_downsampling(depth, size):
    with torch.device("meta"):  # shapes only: the meta device runs no arithmetic
        model = resnet(depth, num_classes=7).eval()
        assert model(torch.randn(1, 3, *size)).shape == (1, 7)


def test_in_channels_option():
    with torch.device("meta"):
        model = resnet_lab.resnet18(in_channels=1, num_classes=10).eval()
        assert model(torch.randn(2, 1, 64, 64)).shape == (2, 10)


@pytest.mark.parametrize("depth", sorted(CIFAR_PARAMS))
def test_cifar_parameter_counts_match_table_6(depth):
    # (not on the meta device: its init runs through Python decompositions, slower than the CPU for small convs)
    assert count_parameters(cifar_resnet(depth)) == CIFAR_PARAMS[depth]
    assert count_parameters(cifar_resnet(depth, residual=False)) == CIFAR_PARAMS[depth]


@pytest.mark.parametrize("depth", [20, 56])
def test_cifar_structure(depth):
    n = (depth - 2) // 6
    model = cifar_resnet(depth).eval()
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1) and model.conv1.out_channels == 16
    assert [len(getattr(model, f"layer{i}")) for i in (1, 2, 3)] == [n, n, n]
    assert not hasattr(model, "maxpool") and not hasattr(model, "layer4")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(convs) + len(linears) == depth  # 6n+2 weighted layers, option A adds none
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
        assert cifar_resnet(depth, in_channels=1).eval()(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_cifar_option_a_has_no_projection_parameters_and_pads_with_zeros():
    block = BasicBlock(16, 32, stride=2, shortcut="A").eval()
    assert isinstance(block.downsample, resnet_lab.ZeroPadShortcut)
    assert sum(p.numel() for p in block.downsample.parameters()) == 0
    x = torch.randn(1, 16, 8, 8)
    out = block.downsample(x)
    assert out.shape == (1, 32, 4, 4)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(out[:, 16:]) == 0


def test_plain_cifar_net_has_no_shortcut_and_differs_from_residual():
    torch.manual_seed(0)
    plain = cifar_resnet(20, residual=False).eval()
    res = cifar_resnet(20).eval()
    res.load_state_dict(plain.state_dict())  # same layout: option A has no parameters
    assert all(b.downsample is None and not b.residual for b in plain.modules() if isinstance(b, BasicBlock))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(plain(x), res(x))


def test_plain_imagenet_nets_match_table_2_layout():
    with torch.device("meta"):
        plain18 = resnet_lab.resnet18(residual=False)
        plain34 = resnet_lab.resnet34(residual=False)
        resnet18 = resnet_lab.resnet18()
    assert all(b.downsample is None for b in plain34.modules() if isinstance(b, BasicBlock))
    # Without projections the plain nets have fewer parameters than ResNet-18/34 (option B).
    proj18 = sum(p.numel() for n, p in resnet18.named_parameters() if "downsample" in n)
    assert count_parameters(plain18) == TORCHVISION_PARAMS[18] - proj18
    assert plain34.description.startswith("plain-34")


@pytest.mark.parametrize("depth,block", [(18, BasicBlock), (50, Bottleneck)])
def test_zero_init_residual_zeroes_the_last_bn_of_every_block(depth, block):
    torch.manual_seed(0)
    model = resnet(depth, zero_init_residual=True)
    blocks = [m for m in model.modules() if isinstance(m, block)]
    assert len(blocks) == sum(resnet_lab.IMAGENET_CONFIGS[depth][1])
    assert all(torch.count_nonzero(b.last_bn.weight) == 0 for b in blocks)
    assert all(torch.count_nonzero(b.bn1.weight) > 0 for b in blocks)
    torch.manual_seed(0)
    assert_same_state(model, getattr(torchvision.models, f"resnet{depth}")(zero_init_residual=True))


def test_zero_init_block_is_identity_plus_relu():
    block = BasicBlock(8, 8).eval()
    torch.nn.init.zeros_(block.bn2.weight)
    torch.nn.init.zeros_(block.bn2.bias)
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        assert torch.allclose(block(x), torch.relu(x))


@pytest.mark.parametrize("shortcut,expected", [("A", "zero-pad"), ("B", "projection"), ("C", "projection")])
def test_shortcut_options(shortcut, expected):
    block = BasicBlock(64, 128, stride=2, shortcut=shortcut)
    same = BasicBlock(64, 64, shortcut=shortcut)
    assert resnet_lab.blocks.describe_shortcut(block.downsample, True) == expected
    assert (same.downsample is not None) == (shortcut == "C")
    x = torch.randn(1, 64, 8, 8)
    assert block.eval()(x).shape == (1, 128, 4, 4)
    assert same.eval()(x).shape == (1, 64, 8, 8)


def test_option_c_adds_projections_everywhere():
    with torch.device("meta"):
        b = count_parameters(resnet_lab.resnet18(shortcut="B"))
        c = count_parameters(resnet_lab.resnet18(shortcut="C"))
        a = count_parameters(resnet_lab.resnet18(shortcut="A"))
    assert a < b < c


def test_bottleneck_stride_placement():
    v15 = Bottleneck(256, 128, stride=2)
    v1 = Bottleneck(256, 128, stride=2, stride_at="1x1")
    assert v15.conv1.stride == (1, 1) and v15.conv2.stride == (2, 2)
    assert v1.conv1.stride == (2, 2) and v1.conv2.stride == (1, 1)
    x = torch.randn(1, 256, 16, 16)
    assert v15.eval()(x).shape == v1.eval()(x).shape == (1, 512, 8, 8)
    assert count_parameters(v15) == count_parameters(v1)
    assert Bottleneck.expansion == 4 and BasicBlock.expansion == 1
    # A basic block has no 1x1 conv on its branch: v1 and v1.5 are the same net (notebook 05 builds both).
    assert BasicBlock(64, 128, stride=2, stride_at="1x1").conv1.stride == (2, 2)
    with torch.device("meta"):
        assert resnet_lab.resnet18(stride_at="1x1").block_table == resnet_lab.resnet18().block_table


def test_bottleneck_matches_torchvision_block():
    torch.manual_seed(1)
    projection = torch.nn.Sequential(resnet_lab.conv1x1(256, 512, stride=2), torch.nn.BatchNorm2d(512))
    tv_block = torchvision.models.resnet.Bottleneck(
        256, 128, stride=2, downsample=projection
    ).eval()  # resnet50's layer2[0]
    ours = Bottleneck(256, 128, stride=2).eval()
    ours.load_state_dict(tv_block.state_dict())
    x = torch.randn(2, 256, 14, 14)
    with torch.no_grad():
        assert torch.allclose(ours(x), tv_block(x), atol=1e-5)


def test_make_stage_reports_its_blocks():
    stage, table = make_stage(Bottleneck, 256, 128, 4, stride=2, name="layer2")
    assert len(stage) == 4
    assert [(r.in_channels, r.out_channels, r.stride, r.shortcut) for r in table] == [
        (256, 512, 2, "projection"),
        (512, 512, 1, "identity"),
        (512, 512, 1, "identity"),
        (512, 512, 1, "identity"),
    ]
    assert stage.eval()(torch.randn(1, 256, 16, 16)).shape == (1, 512, 8, 8)
    text = resnet_lab.format_block_table(table)
    assert "layer2" in text and "projection" in text


def test_make_stages_builds_every_stage_and_one_table():
    with torch.device("meta"):  # shapes and tables only
        stages, table = make_stages(
            Bottleneck, 64, widths=(64, 128, 256, 512), depths=(3, 4, 6, 3), strides=(1, 2, 2, 2)
        )
        assert table == resnet_lab.resnet50().block_table  # the network is built from the same call
        x = torch.randn(1, 64, 32, 32)
        for stage in stages.values():
            x = stage.eval()(x)
    assert list(stages) == ["layer1", "layer2", "layer3", "layer4"]
    assert [len(stage) for stage in stages.values()] == [3, 4, 6, 3]
    assert [r.stage for r in table] == [f"layer{i}" for i, n in zip((1, 2, 3, 4), (3, 4, 6, 3)) for _ in range(n)]
    assert x.shape == (1, 2048, 4, 4)


def test_make_stages_passes_block_options_to_every_block():
    stages, table = make_stages(
        Bottleneck, 64, (64, 128), (2, 2), (1, 2), stride_at="1x1", shortcut="C", prefix="stage"
    )
    assert list(stages) == ["stage1", "stage2"]
    blocks = [b for stage in stages.values() for b in stage]
    assert all(b.stride_at == "1x1" for b in blocks)
    assert [r.shortcut for r in table] == ["projection"] * 4  # option C: a projection on every block


@pytest.mark.parametrize("widths,depths,strides", [((64, 128), (2,), (1, 2)), ((), (), ())])
def test_make_stages_needs_one_width_depth_and_stride_per_stage(widths, depths, strides):
    with pytest.raises(ValueError, match="one width, depth and stride per stage"):
        make_stages(BasicBlock, 64, widths, depths, strides)


class DoubleBlock(torch.nn.Module):
    """A block type the package does not know: 3x3 conv widening 2x, BN, added to a projection."""

    expansion = 2
    branch_convs = ("conv1",)

    def __init__(self, in_channels: int, planes: int, stride: int = 1, *, shortcut: str = "B", residual: bool = True):
        super().__init__()
        self.out_channels = planes * self.expansion
        self.conv1 = resnet_lab.conv3x3(in_channels, self.out_channels, stride)
        self.bn1 = torch.nn.BatchNorm2d(self.out_channels)
        self.downsample = (
            resnet_lab.make_shortcut(in_channels, self.out_channels, stride, shortcut) if residual else None
        )
        self.residual = residual
        self.last_bn = self.bn1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn1(self.conv1(x))
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + shortcut if self.residual else out)


def test_networks_read_the_block_type_from_its_class_attributes():
    model = resnet_lab.ResNet(DoubleBlock, [1, 1, 1, 1], num_classes=5, zero_init_residual=True)
    assert model.description.startswith("ResNet-6 (DoubleBlock")  # 4 blocks x 1 conv + stem + fc
    assert model.fc.in_features == 512 * 2
    assert all(torch.count_nonzero(b.bn1.weight) == 0 for b in model.modules() if isinstance(b, DoubleBlock))
    predicted = resnet_lab.predicted_feature_map_table(model, (1, 3, 64, 64), blocks=True)
    measured = resnet_lab.feature_map_table(model, (1, 3, 64, 64), blocks=True)
    assert [r.shape for r in predicted] == [r.shape for r in measured]


@pytest.mark.parametrize("depth", sorted(TABLE_1_BLOCKS))
def test_imagenet_configs_are_table_1(depth):
    block, layers = resnet_lab.IMAGENET_CONFIGS[depth]
    kind, paper_layers = TABLE_1_BLOCKS[depth]
    assert (block.__name__.lower().replace("basicblock", "basic"), layers) == (kind, paper_layers)
    with torch.device("meta"):  # shapes only: no memory, no init arithmetic
        stage_out = [r.out_channels for r in resnet(depth).block_table if r.index == 0]
    assert tuple(stage_out) == TABLE_1_STAGE_CHANNELS[kind]


def test_model_block_table_follows_the_channel_rule():
    with torch.device("meta"):
        table = resnet_lab.resnet50().block_table
    firsts = [r for r in table if r.index == 0]
    assert [(r.in_channels, r.out_channels, r.stride) for r in firsts] == [
        (64, 256, 1),
        (256, 512, 2),
        (512, 1024, 2),
        (1024, 2048, 2),
    ]
    assert len(table) == 16


def test_inplace_relu_does_not_clobber_the_input():
    block = BasicBlock(8, 8).eval()
    x = torch.randn(1, 8, 6, 6)
    before = x.clone()
    with torch.no_grad():
        block(x)
    assert torch.equal(x, before)


def test_training_step_backward_works():
    model = cifar_resnet(20)
    out = model(torch.randn(4, 3, 32, 32))
    torch.nn.functional.cross_entropy(out, torch.tensor([0, 1, 2, 3])).backward()
    assert all(p.grad is not None for p in model.parameters())
