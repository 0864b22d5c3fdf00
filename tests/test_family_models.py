"""The family's networks: torchvision's ResNeXt and Wide ResNets exactly, pinned counts for the others."""

import pytest
import torch
import torchvision

import resnet_lab
from resnet_lab import BasicBlock, Bottleneck, count_macs, count_parameters, reference
from resnet_lab.models import (
    cifar_resnext,
    preact_resnet,
    resnet50d,
    se_resnet50,
    wide_resnet,
)
from resnet_lab.shapes import feature_map_table, predicted_feature_map_table

# torchvision 0.29's table (reference.md, "The ResNet family"): parameters, GMACs at 224x224
TORCHVISION_FAMILY = {name: (row.parameters, row.gmacs) for name, row in reference.FAMILY.items()}
# Exact counts of our builders (3 input channels; 1000 classes for ImageNet, 10 for CIFAR), from resnet_lab.reference
EXACT = reference.FAMILY_EXACT_PARAMS
SE_RESNET50 = EXACT["se_resnet50"]  # SE paper: 28.1M
RESNET50D = EXACT["resnet50d"]
PREACT = {depth: EXACT[f"preact_resnet{depth}"] for depth in (20, 110, 164, 1001)}  # paper: 1.7M (164), 10.2M (1001)
WRN = {(d, k): EXACT[f"wrn_{d}_{k}"] for d, k in ((28, 10), (40, 4), (16, 4), (16, 2))}  # paper: 36.5M, 8.9M, 2.7M


def test_exact_counts_round_to_the_papers_figures():
    assert round(SE_RESNET50 / 1e6, 1) == reference.SE_RESNET50_PARAMS_M[0]
    assert round(PREACT[164] / 1e6, 1) == reference.PREACT_PAPER_PARAMS_M[164]
    assert abs(PREACT[1001] / 1e6 - reference.PREACT_PAPER_PARAMS_M[1001]) < 0.15  # 10.33M vs "10.2M"
    for (d, k), name in (((28, 10), "WRN-28-10"), ((40, 4), "WRN-40-4"), ((16, 4), "WRN-16-4")):
        assert abs(WRN[(d, k)] / 1e6 - reference.WRN_PAPER_PARAMS_M[name]) < 0.06


@pytest.mark.parametrize("name", sorted(TORCHVISION_FAMILY))
def test_family_initialises_as_torchvision_loads_its_weights_and_gives_its_outputs(name):
    """From the same seed our builder draws exactly torchvision's initial weights (so a from-scratch run can be
    compared bit for bit; a change of Kaiming's mode or of the module order would fail here); torchvision's
    state dict loads with strict=True; in eval mode the outputs agree."""
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, name)().eval()
    torch.manual_seed(0)
    ours = getattr(resnet_lab.models, name)()
    mine, reference = ours.state_dict(), theirs.state_dict()
    assert list(mine) == list(reference)
    assert all(torch.equal(mine[k], reference[k]) for k in reference), "initial weights differ from torchvision's"
    for m in theirs.modules():  # BN statistics other than the initial 0/1, so the check below means something
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    ours.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (ours(x) - theirs(x)).abs().max().item() < 1e-5


def test_se_resnet50_and_resnet50d_counts():
    with torch.device("meta"):
        se, d, plain = se_resnet50(), resnet50d(), resnet_lab.resnet50()
    assert count_parameters(se) == SE_RESNET50
    assert count_parameters(d) == RESNET50D
    assert sum(isinstance(m, resnet_lab.blocks.SqueezeExcitation) for m in se.modules()) == 16
    # SE adds ~10% parameters but only ~0.1% multiply-adds; ResNet-D's stem costs ~6% more MACs
    assert 1.0 < count_macs(se) / count_macs(plain) < 1.002
    assert 1.05 < count_macs(d) / count_macs(plain) < 1.07


def test_resnet50d_structure():
    model = resnet50d()
    convs = [m for m in model.conv1 if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride) for c in convs] == [
        (3, 32, (2, 2)),
        (32, 32, (1, 1)),
        (32, 64, (1, 1)),
    ]
    downs = [b.downsample for b in model.modules() if isinstance(b, Bottleneck) and b.downsample is not None]
    assert [type(d[0]).__name__ for d in downs] == ["Identity", "AvgPool2d", "AvgPool2d", "AvgPool2d"]
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


@pytest.mark.parametrize("depth", sorted(PREACT))
def test_preact_resnet_counts(depth):
    with torch.device("meta"):
        model = preact_resnet(depth)
    assert count_parameters(model) == PREACT[depth]
    block = Bottleneck if depth >= 164 else BasicBlock
    assert all(type(b) is block for b in model.modules() if isinstance(b, (BasicBlock, Bottleneck)))


def test_preact_resnet_depth_rule_and_errors():
    assert type(preact_resnet(29).layer1[0]) is Bottleneck  # 9n+2 only
    assert type(preact_resnet(20, bottleneck=True).layer1[0]) is Bottleneck
    with pytest.raises(ValueError, match="6n\\+2 .* or 9n\\+2"):
        preact_resnet(21)
    with pytest.raises(ValueError, match="9n\\+2"):
        preact_resnet(26, bottleneck=True)
    with pytest.raises(ValueError, match="pre-activation blocks have none"):
        preact_resnet(20, zero_init_residual=True)


def test_preact_net_has_bare_stem_and_final_bn_relu():
    model = preact_resnet(20, in_channels=1).eval()
    assert not hasattr(model, "bn1") and isinstance(model.final_bn, torch.nn.BatchNorm2d)
    assert model.final_bn.num_features == 64
    names = [n for n, _ in model.named_children()]
    assert names == ["conv1", "layer1", "layer2", "layer3", "final_bn", "final_relu", "avgpool", "fc"]
    with torch.no_grad():
        assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("depth,k", sorted(WRN))
def test_wide_resnet_counts(depth, k):
    with torch.device("meta"):
        model = wide_resnet(depth, k)
    assert count_parameters(model) == WRN[(depth, k)]
    assert model.layer3[0].out_channels == 64 * k and len(model.layer1) == (depth - 4) // 6


@pytest.mark.parametrize("depth,k,words", [(27, 2, "6n\\+4"), (16, 0, "widening factor"), (16, 1.5, "widening factor")])
def test_wide_resnet_errors(depth, k, words):
    with pytest.raises(ValueError, match=words):
        wide_resnet(depth, k)


def test_cifar_resnext_is_a_grouped_bottleneck_net_near_resnet20():
    model = cifar_resnext(20, groups=8, base_width=16, in_channels=1)
    assert count_parameters(model) == 247_610
    assert [b.conv2.groups for b in model.modules() if isinstance(b, Bottleneck)] == [8] * 6
    assert [b.width for b in model.layer3] == [128, 128]
    assert count_macs(model, (1, 1, 28, 28)) == pytest.approx(
        count_macs(resnet_lab.cifar_resnet(20, 1), (1, 1, 28, 28)), rel=0.01
    )


@pytest.mark.parametrize(
    "build,size",
    [
        (lambda: resnet_lab.ResNet(Bottleneck, (1, 1, 1, 1), groups=32, base_width=4), (1, 3, 64, 64)),
        (lambda: resnet_lab.ResNet(Bottleneck, (1, 2, 1, 1), stem="deep", shortcut="D"), (1, 3, 64, 64)),
        (lambda: resnet_lab.ResNet(Bottleneck, (1, 1, 1, 1), se=True), (1, 3, 64, 64)),
        (lambda: resnet_lab.ResNet(BasicBlock, (2, 2, 2, 2), preact=True, se=True), (1, 3, 64, 64)),
        (lambda: preact_resnet(20, 1), (1, 1, 28, 28)),
        (lambda: wide_resnet(16, 2, 1), (1, 1, 28, 28)),
        (lambda: cifar_resnext(20, 8, 16, 1), (1, 1, 28, 28)),
        (lambda: resnet_lab.cifar_resnet(20, 1, se=True), (1, 1, 28, 28)),
    ],
)
def test_feature_map_tables_work_unchanged_for_every_variant(build, size):
    model = build()
    predicted = predicted_feature_map_table(model, size, blocks=True)
    measured = feature_map_table(model, size, blocks=True)
    assert [(r.name, r.shape) for r in predicted] == [(r.name, r.shape) for r in measured]
    assert sum(r.params for r in measured) == count_parameters(model)


def test_stem_option_is_checked():
    with pytest.raises(ValueError, match="unknown stem"):
        resnet_lab.ResNet(BasicBlock, (2, 2, 2, 2), stem="5x5")
