"""resnet_lab.inside: layer responses, receptive fields, feature maps and Grad-CAM on small nets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet_lab import inside
from resnet_lab.models import cifar_resnet


def _hooks(model: nn.Module) -> int:
    return sum(
        len(getattr(m, a))
        for m in model.modules()
        for a in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    )


@pytest.fixture
def net() -> nn.Module:
    torch.manual_seed(0)
    model = cifar_resnet(8, in_channels=1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.3)
                m.bias.normal_(0, 0.5)
    return model.train()


def test_response_layers_are_the_bns_after_each_3x3_conv(net):
    names = list(inside.response_layers(net))
    assert names == [
        "bn1",
        "layer1.0.bn1",
        "layer1.0.bn2",
        "layer2.0.bn1",
        "layer2.0.bn2",
        "layer3.0.bn1",
        "layer3.0.bn2",
    ]
    projected = cifar_resnet(8, in_channels=1, shortcut="B")  # its 1x1 projections' BNs are not 3x3 responses
    assert len(inside.response_layers(projected)) == 7


def test_layer_response_std_equals_a_hand_computation(net):
    x = torch.randn(10, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    stds = inside.layer_response_stds(net, x, batch_size=3)  # batches of 3, 3, 3, 1: pooled exactly
    net.eval()
    with torch.no_grad():
        stem = net.bn1(net.conv1(x))
        block = net.layer1[0]
        inner = block.bn1(block.conv1(F.relu(stem)))
        second = block.bn2(block.conv2(F.relu(inner)))
    assert stds["bn1"] == pytest.approx(stem.std().item(), rel=1e-5)
    assert stds["layer1.0.bn1"] == pytest.approx(inner.std().item(), rel=1e-5)
    assert stds["layer1.0.bn2"] == pytest.approx(second.std().item(), rel=1e-5)  # before the += and the ReLU
    net.train()
    inside.layer_response_stds(net, x)
    assert net.training and _hooks(net) == 0


def test_erf_of_one_3x3_conv_is_its_kernel_footprint():
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.arange(1.0, 10.0).reshape(1, 1, 3, 3))
    model = nn.Sequential(conv)
    erf = inside.effective_receptive_field(model, torch.randn(2, 1, 9, 9), layer=conv)
    expected = np.zeros((9, 9))
    expected[3:6, 3:6] = np.arange(1.0, 10.0).reshape(3, 3)  # the centre unit (4, 4) reads rows/cols 3..5
    np.testing.assert_allclose(erf, expected)
    assert inside.theoretical_receptive_field(model) == 3
    assert _hooks(model) == 0


def test_theoretical_receptive_field_of_cifar_nets_and_the_erf_stays_inside_it():
    assert inside.theoretical_receptive_field(cifar_resnet(20, in_channels=1)) == 81
    assert inside.theoretical_receptive_field(cifar_resnet(56, in_channels=1, residual=False)) == 249
    torch.manual_seed(0)
    two = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 2, 3, padding=1))
    erf = inside.effective_receptive_field(two, torch.randn(4, 1, 11, 11), layer=two[2])
    assert inside.theoretical_receptive_field(two) == 5
    rows, cols = np.nonzero(erf)
    assert rows.min() >= 3 and rows.max() <= 7 and cols.min() >= 3 and cols.max() <= 7  # the 5x5 around (5, 5)


def test_mass_side():
    field = np.zeros((9, 9))
    field[4, 4] = 1.0
    assert inside.mass_side(field) == 1
    field[2:7, 2:7] += 1.0
    assert inside.mass_side(field, 1.0) == 5
    assert inside.mass_side(np.ones((28, 28)), 0.95, centre=(0, 0)) == 28  # clipped to the image
    with pytest.raises(ValueError, match="zero everywhere"):
        inside.mass_side(np.zeros((3, 3)))


def test_feature_maps_are_the_layers_outputs(net):
    x = torch.randn(2, 1, 16, 16)
    maps = inside.feature_maps(net, x, {"layer1": net.layer1, "layer3": net.layer3})
    assert maps["layer1"].shape == (2, 16, 16, 16) and maps["layer3"].shape == (2, 64, 4, 4)
    assert net.training and _hooks(net) == 0


class _ConstantMap(nn.Module):
    """A conv whose output is 1 everywhere (zero weights, bias 1), then pool and linear: any input -> same map."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.fc = nn.Linear(3, 4)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.fill_(1.0)
            self.fc.weight.copy_(torch.tensor([[1.0, 2.0, 3.0]] * 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean(dim=(2, 3)))


def test_grad_cam_of_a_constant_map_is_uniform():
    model = _ConstantMap()
    cam = inside.grad_cam(model, model.conv, torch.randn(2, 1, 6, 6), torch.tensor([0, 3]))
    assert cam.shape == (2, 6, 6)
    assert torch.allclose(cam, torch.full_like(cam, 6.0 / 36.0))  # sum_k (w_k / 36) * 1, all equal and > 0
    assert _hooks(model) == 0


def test_grad_cam_removes_its_hooks_even_when_it_fails(net):
    x = torch.randn(2, 1, 16, 16)
    inside.grad_cam(net, net.layer3, x)
    assert _hooks(net) == 0 and net.training
    with pytest.raises(RuntimeError):
        inside.grad_cam(net, net.layer3, x, torch.tensor([0, 99]))  # no class 99
    assert _hooks(net) == 0 and net.training
    unused = nn.Conv2d(1, 1, 1)
    with pytest.raises(ValueError, match="not used"):
        inside.grad_cam(net, unused, x)
    assert _hooks(unused) == 0


def test_grad_cam_leaves_the_model_in_the_mode_it_found(net):
    x = torch.randn(2, 1, 16, 16)
    net.eval()
    inside.grad_cam(net, net.layer3, x)
    assert not net.training
    net.train()
    inside.grad_cam(net, net.layer3, x)
    assert net.training and all(m.training for m in net.modules())


def test_grad_cam_matches_captum(net):
    captum_attr = pytest.importorskip("captum.attr")
    x = torch.randn(5, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    targets = torch.tensor([0, 1, 2, 3, 9])
    for layer in (net.layer3, net.layer2):
        ours = inside.grad_cam(net, layer, x, targets)
        net.eval()
        theirs = captum_attr.LayerGradCam(net, layer).attribute(x, target=targets, relu_attributions=True)[:, 0]
        net.train()
        assert ours.abs().max() > 0
        torch.testing.assert_close(ours, theirs.detach(), rtol=1e-4, atol=1e-6)
    up = inside.upsample(ours, (16, 16))
    theirs_up = captum_attr.LayerAttribution.interpolate(theirs[:, None].detach(), (16, 16), "bilinear")[:, 0]
    torch.testing.assert_close(up, theirs_up)


def test_randomized_weights_change_the_model_not_the_original(net):
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rand = inside.randomize_weights(net, seed=1)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert not torch.equal(rand.conv1.weight, net.conv1.weight)
    assert torch.equal(rand.bn1.running_mean, net.bn1.running_mean)


def test_map_correlation():
    a = torch.rand(3, 4, 4)
    np.testing.assert_allclose(inside.map_correlation(a, 2 * a + 1), 1.0)
    np.testing.assert_allclose(inside.map_correlation(a, -a), -1.0)
    with pytest.raises(ValueError, match="same shape"):
        inside.map_correlation(a, a[:, :2])


def test_erf_of_several_layers_in_one_pass_equals_one_at_a_time(net):
    x = torch.randn(3, 1, 16, 16)
    both = inside.effective_receptive_fields(net, x, {"a": net.layer1, "b": net.layer3})
    np.testing.assert_allclose(both["a"], inside.effective_receptive_field(net, x, layer=net.layer1), rtol=1e-6)
    np.testing.assert_allclose(both["b"], inside.effective_receptive_field(net, x), rtol=1e-6)
    assert net.training and _hooks(net) == 0
    with pytest.raises(ValueError, match="not used"):
        inside.effective_receptive_fields(net, x, {"unused": nn.Conv2d(1, 1, 1)})
    assert _hooks(net) == 0
