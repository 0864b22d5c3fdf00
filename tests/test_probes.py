"""Probes (lesions, loss surfaces, gradient statistics) on small nets, and the shipped weights' loader."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from resnet_lab import cifar_resnet, probes, weights
from resnet_lab.blocks import ZeroPadShortcut
from resnet_lab.runtime import seed_everything


def small_net(residual: bool = True, depth: int = 8, seed: int = 0) -> nn.Module:
    seed_everything(seed)
    net = cifar_resnet(depth, in_channels=1, residual=residual)
    # give BN non-trivial running statistics, as a trained net has
    with torch.no_grad():
        net.train()
        net(torch.randn(32, 1, 12, 12))
    return net.eval()


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(24, 1, 12, 12, generator=generator), torch.randint(0, 10, (24,), generator=generator)


# --- lesions -------------------------------------------------------------------------------------


def test_block_names_in_forward_order():
    names = probes.block_names(small_net(depth=14))
    assert names == [f"layer{s}.{i}" for s in (1, 2, 3) for i in range(2)]
    assert probes.downsampling_blocks(small_net(depth=14)) == ["layer2.0", "layer3.0"]


def test_lesion_of_a_block_whose_branch_is_zero_changes_nothing(batch):
    x, _ = batch
    net = small_net(depth=14)
    for name in ("layer1.1", "layer2.0"):  # an identity block and an option-A downsampling block
        block = dict(net.named_modules())[name]
        with torch.no_grad():
            block.bn2.weight.zero_()
            block.bn2.bias.zero_()
        lesioned = probes.lesion(net, [name])
        assert isinstance(dict(lesioned.named_modules())[name], probes.Skip)
        torch.testing.assert_close(lesioned(x), net(x), rtol=0, atol=0)


def test_lesion_changes_a_trained_branch_and_leaves_the_model_alone(batch):
    x, _ = batch
    net = small_net(depth=14)
    before = net(x)
    lesioned = probes.lesion(net, ["layer1.1", "layer3.1"])
    assert not torch.allclose(lesioned(x), before)
    torch.testing.assert_close(net(x), before, rtol=0, atol=0)  # the original keeps its blocks
    assert probes.block_names(lesioned) == ["layer1.0", "layer2.0", "layer2.1", "layer3.0"]


def test_plain_lesion_uses_the_same_parameter_free_map():
    plain = small_net(residual=False, depth=14)
    skip_down = probes.Skip(dict(plain.named_modules())["layer2.0"])
    skip_same = probes.Skip(dict(plain.named_modules())["layer2.1"])
    assert isinstance(skip_down.shortcut, ZeroPadShortcut) and skip_down.changes_shape
    assert isinstance(skip_same.shortcut, nn.Identity) and not skip_same.changes_shape
    x = torch.rand(2, 16, 8, 8)
    out = skip_down(x)
    assert out.shape == (2, 32, 4, 4)
    torch.testing.assert_close(out[:, :16], x[:, :, ::2, ::2])
    assert out[:, 16:].abs().sum() == 0
    assert sum(p.numel() for p in skip_down.parameters()) == 0


def test_fast_lesion_errors_equal_running_each_lesioned_copy(batch):
    x, y = batch
    net = small_net(depth=20)  # trained-like BN statistics; errors differ between lesions
    sets = [[], ["layer1.0"], ["layer2.0"], ["layer3.2"], ["layer1.1", "layer3.0"], probes.block_names(net)[2:7]]
    expected = [probes.error(probes.lesion(net, s), x, y) for s in sets]
    assert probes.lesion_errors(net, sets, x, y, batch_size=10) == expected
    assert len(set(expected)) > 1


def test_lesion_rejects_unknown_blocks():
    with pytest.raises(ValueError, match="no blocks named"):
        probes.lesion(small_net(), ["layer4.0"])
    with pytest.raises(ValueError, match="no blocks named"):
        probes.lesion_errors(
            small_net(), [["layer1.0"], ["fc"]], torch.zeros(1, 1, 8, 8), torch.zeros(1, dtype=torch.long)
        )


def test_single_and_random_lesions_shapes_and_seeds(batch):
    x, y = batch
    net = small_net(depth=14)
    single = probes.single_block_lesions(net, x, y)
    assert list(single) == probes.block_names(net) and all(0 <= e <= 100 for e in single.values())
    first = probes.random_lesions(net, x, y, ks=[0, 1, 4], draws=3, seed=5)
    again = probes.random_lesions(net, x, y, ks=[0, 1, 4], draws=3, seed=5)
    assert list(first) == [0, 1, 4] and all(v.shape == (3,) for v in first.values())
    for k in first:
        np.testing.assert_array_equal(first[k], again[k])
    assert np.all(first[0] == probes.error(net, x, y))  # deleting nothing is the model itself
    with pytest.raises(ValueError, match="k must be between 0 and 4"):
        probes.random_lesions(net, x, y, ks=[5], draws=1)  # 6 blocks, 2 of them downsampling


# --- loss surfaces -------------------------------------------------------------------------------


def test_directions_are_filter_normalised_and_seeded():
    net = small_net()
    d = probes.random_direction(net, seed=3)
    assert set(d) == {name for name, _ in net.named_parameters()}
    for name, p in net.named_parameters():
        assert d[name].shape == p.shape
        if p.dim() > 1:
            torch.testing.assert_close(d[name].flatten(1).norm(dim=1), p.detach().flatten(1).norm(dim=1))
        else:
            assert d[name].abs().sum() == 0  # biases and BN parameters do not move
    again, other = probes.random_direction(net, seed=3), probes.random_direction(net, seed=4)
    assert all(torch.equal(d[k], again[k]) for k in d)
    assert not torch.equal(d["conv1.weight"], other["conv1.weight"])


def test_surface_at_alpha_zero_equals_the_models_loss(batch):
    x, y = batch
    net = small_net()
    loss, err = probes.loss_and_error(net, x, y)
    assert math.isclose(loss, nn.functional.cross_entropy(net(x), y).item(), rel_tol=1e-5)
    d1, d2 = probes.random_direction(net, seed=1), probes.random_direction(net, seed=2)
    one = probes.loss_slice_1d(net, d1, [-0.5, 0.0, 0.5], x, y)
    assert one["loss"].shape == (3,) and one["error"].shape == (3,)
    assert math.isclose(one["loss"][1], loss, rel_tol=1e-6) and one["error"][1] == err
    assert one["loss"][0] != loss
    two = probes.loss_slice_2d(net, d1, d2, [-1.0, 0.0, 1.0], [0.0, 0.5], x, y)
    assert two["loss"].shape == (2, 3) and two["error"].shape == (2, 3)
    assert math.isclose(two["loss"][0, 1], loss, rel_tol=1e-6)
    np.testing.assert_allclose(two["loss"][0], probes.loss_slice_1d(net, d1, [-1.0, 0.0, 1.0], x, y)["loss"], rtol=1e-6)
    after, _ = probes.loss_and_error(net, x, y)
    assert after == loss  # the model was not moved


def test_interpolation_ends_are_the_two_models(batch):
    x, y = batch
    a, b = small_net(seed=0), small_net(seed=1)
    path = probes.interpolate(a, b, [0.0, 0.5, 1.0], x, y)
    assert math.isclose(path["loss"][0], probes.loss_and_error(a, x, y)[0], rel_tol=1e-6)
    assert math.isclose(path["loss"][2], probes.loss_and_error(b, x, y)[0], rel_tol=1e-6)
    with pytest.raises(ValueError, match="same architecture"):
        probes.interpolate(a, small_net(depth=14), [0.0], x, y)


def test_direction_for_another_model_is_refused(batch):
    x, y = batch
    with pytest.raises(ValueError, match="does not fit"):
        probes.loss_slice_1d(small_net(depth=14), probes.random_direction(small_net()), [0.0], x, y)


# --- gradient statistics -------------------------------------------------------------------------


def test_layer_gradient_norms_cover_every_weight_in_order(batch):
    x, y = batch
    net = small_net()
    stats_before = net.bn1.running_mean.clone()
    norms = probes.layer_gradient_norms(net, x, y)
    expected = [n for n, p in net.named_parameters() if p.dim() > 1]
    assert list(norms) == expected and len(norms) == 8  # 7 convs + fc for depth 8
    assert all(v > 0 for v in norms.values())
    assert torch.equal(net.bn1.running_mean, stats_before) and net.conv1.weight.grad is None
    relative = probes.layer_gradient_norms(net, x, y, relative=True)
    assert math.isclose(relative["fc.weight"], norms["fc.weight"] / net.fc.weight.norm().item(), rel_tol=1e-5)


def test_gradient_correlation_is_one_for_a_linear_model_and_in_range(batch):
    x, _ = batch
    linear = nn.Sequential(nn.Flatten(), nn.Linear(144, 10))  # the input gradient does not depend on the input
    np.testing.assert_allclose(probes.gradient_correlation(linear, x, scales=(0.1, 1.0)), [1.0, 1.0], rtol=1e-5)
    corr = probes.gradient_correlation(small_net(), x, scales=(0.01, 1.0))
    assert corr.shape == (2,) and np.all(np.abs(corr) <= 1)
    assert corr[0] > corr[1]  # nearer inputs, more alike gradients


def test_shattering_vs_depth_shapes_and_seed(batch):
    x, _ = batch
    first = probes.shattering_vs_depth([8, 14], x[:8], scales=(0.05,), seed=0)
    again = probes.shattering_vs_depth([8, 14], x[:8], scales=(0.05,), seed=0)
    assert first["plain"].shape == (2, 1) and first["residual"].shape == (2, 1)
    np.testing.assert_array_equal(first["plain"], again["plain"])
    np.testing.assert_array_equal(first["residual"], again["residual"])


def test_calibrated_batchnorm_uses_the_batch_statistics(batch):
    x, _ = batch
    net = small_net()
    calibrated = probes.calibrate_batchnorm(net, x)
    assert not calibrated.training
    with torch.no_grad():
        torch.testing.assert_close(calibrated.bn1.running_mean, net.conv1(x).mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-6)
    assert not torch.equal(calibrated.bn1.running_mean, net.bn1.running_mean)


# --- shipped weights -----------------------------------------------------------------------------


def fake_root(tmp_path, name="ResNet-20", seed=0):
    net = small_net(depth=20)
    weights.save_half(net, weights.weights_path(name, seed, tmp_path), net=name, seed=seed)
    weights.write_checksums(tmp_path)
    return net


def test_half_precision_weights_load_into_fp32_models(tmp_path):
    net = fake_root(tmp_path)
    saved = torch.load(weights.weights_path("ResNet-20", 0, tmp_path), weights_only=True)
    assert saved["dtype"] == "float16" and saved["model"]["conv1.weight"].dtype == torch.float16
    assert saved["model"]["bn1.num_batches_tracked"].dtype == torch.int64
    loaded = weights.load_degradation_net("ResNet-20", root=tmp_path)
    assert loaded.conv1.weight.dtype == torch.float32 and not loaded.training
    torch.testing.assert_close(loaded.conv1.weight, net.conv1.weight, rtol=1e-3, atol=1e-4)
    assert (weights.read_checksums(tmp_path)["degradation-seed0/ResNet-20.pt"]
            == weights.sha256_of(weights.weights_path("ResNet-20", 0, tmp_path)))  # fmt: skip


def test_missing_weights_are_refused_with_what_to_do(tmp_path):
    with pytest.raises(weights.WeightsError, match="no weights file .*retrain: python -m resnet_lab.experiments"):
        weights.load_degradation_net("plain-56", root=tmp_path)
    with pytest.raises(weights.WeightsError, match="no shipped weights for 'ResNet-18'"):
        weights.load_degradation_net("ResNet-18", root=tmp_path)


def test_corrupt_weights_are_refused(tmp_path):
    fake_root(tmp_path)
    path = weights.weights_path("ResNet-20", 0, tmp_path)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(weights.WeightsError, match="corrupt or altered"):
        weights.load_degradation_net("ResNet-20", root=tmp_path)
    path.write_bytes(b"not a checkpoint")
    weights.write_checksums(tmp_path)  # even with a matching checksum, garbage does not load
    with pytest.raises(weights.WeightsError, match="not a readable checkpoint"):
        weights.load_degradation_net("ResNet-20", root=tmp_path)


def test_weights_of_another_net_are_refused(tmp_path):
    fake_root(tmp_path)  # a ResNet-20's weights...
    src = weights.weights_path("ResNet-20", 0, tmp_path)
    dst = weights.weights_path("plain-20", 0, tmp_path)
    dst.write_bytes(src.read_bytes())  # ...copied to where plain-20's belong (same shapes!)
    weights.write_checksums(tmp_path)
    with pytest.raises(weights.WeightsError, match="holds weights of ResNet-20 .* but the model is plain-20"):
        weights.load_degradation_net("plain-20", root=tmp_path)
    with pytest.raises(weights.WeightsError, match="ResNet-56"):
        weights.load_degradation_net("ResNet-20", root=tmp_path, model=cifar_resnet(56, in_channels=1))
