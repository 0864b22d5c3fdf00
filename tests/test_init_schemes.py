"""init_schemes (orthogonal, LSUV, per-layer learning rates) and fixup (BN-free ResNet), on small nets."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from resnet_lab import fixup, init_schemes
from resnet_lab.models import cifar_resnet


def _images(n: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_orthogonal_makes_each_conv_an_orthonormal_matrix():
    torch.manual_seed(0)
    model = cifar_resnet(8, in_channels=1, residual=False)
    init_schemes.orthogonal_(model)
    w = model.layer2[0].conv2.weight.detach().reshape(32, -1)  # (32, 32*9): orthonormal rows
    assert torch.allclose(w @ w.T, torch.eye(32), atol=1e-5)
    stem = model.conv1.weight.detach().reshape(16, -1)  # (16, 9): more rows than columns, orthonormal columns
    assert torch.allclose(stem.T @ stem, torch.eye(9), atol=1e-5)
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        init_schemes.orthogonal_(nn.ReLU())


def test_lsuv_gives_unit_output_variance_per_layer_on_the_batch():
    torch.manual_seed(0)
    model = cifar_resnet(14, in_channels=1, residual=False)
    x = _images()
    before = init_schemes.layer_output_variances(model, x)
    assert max(abs(v - 1) for v in before.values()) > 0.1  # He init is not unit-variance everywhere
    after = init_schemes.lsuv_(model, x, tol=0.01)
    assert list(after) == list(init_schemes.weighted_layers(model))  # every conv and the fc, forward order
    assert all(abs(v - 1) < 0.01 for v in after.values()), after
    # measured afresh, independently of what lsuv_ returned
    again = init_schemes.layer_output_variances(model, x)
    assert all(abs(v - 1) < 0.01 for v in again.values())
    # running statistics are reset, not left with the calibration batch
    assert torch.equal(model.bn1.running_mean, torch.zeros(16)) and torch.equal(model.bn1.running_var, torch.ones(16))


def test_lsuv_measures_before_an_in_place_relu():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace=True),
        nn.Flatten(), nn.Linear(8 * 28 * 28, 10),
    )  # fmt: skip
    x = _images()
    init_schemes.lsuv_(model, x)
    out = model[0](x)
    assert abs(out.var().item() - 1) < 0.01  # the conv output, not the ReLU's (whose variance is about 0.34)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        init_schemes.lsuv_(model, x[0])


def test_per_layer_learning_rates_equal_sgd_with_parameter_groups():
    torch.manual_seed(0)
    model = cifar_resnet(8, in_channels=1, residual=False)
    hooked, grouped = copy.deepcopy(model), copy.deepcopy(model)
    scales = {"conv1.weight": 0.01, "layer1.0.conv1.weight": 0.3}
    lr, wd = 0.1, 1e-2  # a large decay, so the decay's share of the step is visible
    init_schemes.scale_layer_learning_rates(hooked, scales, wd)
    opt_h = torch.optim.SGD(hooked.parameters(), lr=lr, momentum=0.9, weight_decay=wd)
    named = dict(grouped.named_parameters())
    groups = [{"params": [named[k]], "lr": lr * s} for k, s in scales.items()]
    groups.append({"params": [p for k, p in named.items() if k not in scales]})
    opt_g = torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=wd)
    x, y = _images(8), torch.arange(8)
    for _ in range(3):
        for net, opt in ((hooked, opt_h), (grouped, opt_g)):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    moved = (hooked.conv1.weight - model.conv1.weight).norm().item()
    assert moved > 0
    for (name, a), b in zip(hooked.named_parameters(), grouped.parameters()):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5), name
    with pytest.raises(KeyError, match="not a parameter"):
        init_schemes.scale_layer_learning_rates(model, {"nope.weight": 0.5}, wd)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        init_schemes.scale_layer_learning_rates(model, {"conv1.weight": 0.0}, wd)


def test_layer_lr_scales_slow_the_layers_whose_relative_gradient_is_larger():
    torch.manual_seed(0)
    model = cifar_resnet(20, in_channels=1, residual=False)
    x, y = _images(32), torch.arange(32) % 10
    rel = init_schemes.relative_gradient_norms(model, x, y)
    scales = init_schemes.layer_lr_scales(model, x, y)
    assert list(scales) == list(rel) and "fc.weight" in scales
    last = "layer3.2.conv2.weight"
    assert scales[last] == 1.0
    for name, s in scales.items():
        assert 0 < s <= 1
        assert s == pytest.approx(min(1.0, rel[last] / rel[name]))
    assert scales["conv1.weight"] < 0.5  # the explosion of plain nets: the first conv is slowed
    with pytest.raises(ValueError, match="reference"):
        init_schemes.layer_lr_scales(model, x, y, reference="bn1.weight")


def test_fixup_factor_is_L_to_the_minus_1_over_2m_minus_2():
    assert fixup.fixup_factor(27, 2) == pytest.approx(27**-0.5)
    assert fixup.fixup_factor(16, 3) == pytest.approx(0.5)  # 16^(-1/4)
    with pytest.raises(ValueError, match="m >= 2"):
        fixup.fixup_factor(27, 1)
    with pytest.raises(ValueError, match="L >= 1"):
        fixup.fixup_factor(0, 2)


def test_fixup_resnet56_init_scales_and_zeros():
    torch.manual_seed(0)
    model = fixup.fixup_cifar_resnet(56, in_channels=1)
    assert model.branches == 27 and len(model.blocks()) == 27
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    he_std = math.sqrt(2 / (64 * 9))  # kaiming_normal_, fan_out, of a 64 -> 64 3x3 conv
    w = torch.cat([b.conv1.weight.detach().flatten() for b in model.layer3[1:]])  # 8 x 36,864 weights
    assert w.std().item() == pytest.approx(he_std / math.sqrt(27), rel=0.01)
    for block in model.blocks():
        assert torch.count_nonzero(block.conv2.weight) == 0 and block.scale.item() == 1.0
    assert torch.count_nonzero(model.fc.weight) == 0 and torch.count_nonzero(model.fc.bias) == 0
    stem = model.conv1.weight.detach()  # the stem is plain He init, not scaled
    assert stem.std().item() == pytest.approx(math.sqrt(2 / (16 * 9)), rel=0.2)


def test_fixup_blocks_are_the_identity_path_at_init_and_not_after_a_step():
    torch.manual_seed(0)
    model = fixup.fixup_cifar_resnet(20, in_channels=1)
    x = _images(4)
    block = model.layer2[0]  # the downsampling one
    h = torch.relu(torch.randn(4, 16, 28, 28))
    assert torch.equal(block(h), torch.relu(block.shortcut(h)))
    assert torch.equal(model.features(x), fixup.shortcut_path(model, x))
    assert torch.equal(model(x), torch.zeros(4, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):  # step 1 moves only the classifier and scalars; step 2 reaches the branches
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), torch.arange(4)).backward()
        opt.step()
    assert not torch.allclose(model.features(x), fixup.shortcut_path(model, x))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        model(x[0])


def test_per_layer_learning_rates_survive_the_memory_format_change_of_train():
    torch.manual_seed(0)
    model = cifar_resnet(8, in_channels=1, residual=False)
    plain = copy.deepcopy(model)
    init_schemes.scale_layer_learning_rates(model, {"conv1.weight": 0.5}, weight_decay=0.0)
    x = _images(4).to(memory_format=torch.channels_last)
    for net in (model, plain):
        net.to(memory_format=torch.channels_last)  # what training.train does on the CPU in fp32
        nn.functional.cross_entropy(net(x), torch.arange(4)).backward()
    assert torch.allclose(model.conv1.weight.grad, 0.5 * plain.conv1.weight.grad)
    assert torch.allclose(model.fc.weight.grad, plain.fc.weight.grad)
