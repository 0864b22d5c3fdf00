"""The levers of issue 25 (resnet_lab/levers.py, TrainConfig fields): each does what it says, on tiny data and one
thread, and with every field at its default ``train`` gives the history it gave before the levers existed."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet_lab import cifar_resnet, data, levers, runtime, training

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py; tiny_splits too

BEFORE = Path(__file__).with_name("levers_defaults_before.json")


def tiny_config(**changes) -> training.TrainConfig:
    base = training.TrainConfig(epochs=1, batch_size=32, precision="fp32", channels_last=False)
    return dataclasses.replace(base, **changes)


def resnet8() -> nn.Module:
    torch.manual_seed(0)
    return cifar_resnet(8, in_channels=1)


def run(model: nn.Module, splits: data.Splits, config: training.TrainConfig) -> training.History:
    return training.train(model, splits, config, progress=False, device="cpu")


def normalized(images: data.ImageSet, splits: data.Splits) -> torch.Tensor:
    return data.normalize(images.images, splits.mean, splits.std)


# ---------------------------------------------------------------------------------------------------------------
# defaults: bit-identical to the engine before the levers


def weights_sha256(model: nn.Module) -> str:
    return hashlib.sha256(
        b"".join(v.detach().contiguous().numpy().tobytes() for v in model.state_dict().values())
    ).hexdigest()


def test_defaults_give_the_history_and_weights_saved_before_the_levers_existed(tiny_splits):
    # tests/levers_defaults_before.json was written by the same runs with training.py at the commit it names,
    # before levers.py existed (ResNet-8 from seed 0, 2 epochs of 96 images, batch 32, fp32, NCHW, one thread)
    before = json.loads(BEFORE.read_text())
    cpu = runtime.device_name(torch.device("cpu"))
    if (before["torch"], before["cpu"]) != (torch.__version__, cpu):
        pytest.skip(f"saved with torch {before['torch']} on {before['cpu']}; bit-identity holds on that pair only")
    base = training.TrainConfig(epochs=2, batch_size=32, precision="fp32", channels_last=False)
    variants = {
        "defaults": base,
        "existing-levers": dataclasses.replace(base, label_smoothing=0.1, ema_decay=0.9, tta_flip=True, keep_best=True),
    }
    for name, config in variants.items():
        model = resnet8()
        history = training.train(model, tiny_splits, config, progress=False, device="cpu").to_dict()
        history.pop("seconds")
        assert history == before["runs"][name]["history"], name
        assert weights_sha256(model) == before["runs"][name]["weights_sha256"], name


def test_the_new_levers_are_off_by_default():
    config = training.TrainConfig()
    assert (config.nesterov, config.bn_weight_decay, config.bn_lr_scale, config.tta_translate) == (False, True, 1.0, 0)
    assert config.first_conv_init is None and config.progressive_resize is None
    optimizer = levers.make_optimizer(resnet8(), config)
    assert type(optimizer) is torch.optim.SGD and len(optimizer.param_groups) == 1
    assert optimizer.param_groups[0]["nesterov"] is False


@pytest.mark.parametrize(
    "changes,field",
    [
        (dict(nesterov=1), "nesterov"),
        (dict(nesterov=True, momentum=0.0), "nesterov"),
        (dict(bn_weight_decay="no"), "bn_weight_decay"),
        (dict(bn_lr_scale=0.0), "bn_lr_scale"),
        (dict(bn_lr_scale=float("nan")), "bn_lr_scale"),
        (dict(bn_lr_scale=True), "bn_lr_scale"),
        (dict(tta_translate=1), "tta_translate"),  # without tta_flip
        (dict(tta_translate=-1, tta_flip=True), "tta_translate"),
        (dict(tta_translate=5, tta_flip=True), "tta_translate"),
        (dict(tta_translate=1.0, tta_flip=True), "tta_translate"),
        (dict(first_conv_init="orthogonal"), "first_conv_init"),
        (dict(progressive_resize=20), "progressive_resize"),
        (dict(progressive_resize=(3, 20, 1)), "progressive_resize"),
        (dict(progressive_resize=(10, 20)), "progressive_resize"),  # the last epoch must be at full size
        (dict(progressive_resize=(0, 20)), "progressive_resize"),
        (dict(progressive_resize=(3, 4)), "progressive_resize"),
    ],
)
def test_bad_lever_values_are_refused_with_the_field_named(changes, field):
    with pytest.raises(ValueError, match=rf"^{field}"):
        training.TrainConfig(epochs=10, **changes)


def test_progressive_resize_read_back_from_json_becomes_a_tuple():
    assert training.TrainConfig(epochs=10, progressive_resize=[3, 20]).progressive_resize == (3, 20)


# ---------------------------------------------------------------------------------------------------------------
# Nesterov


@pytest.mark.parametrize("nesterov", [True, False])
def test_the_engine_takes_torchs_sgd_steps_with_or_without_nesterov(tiny_splits, nesterov):
    # one batch of all 96 images per epoch, no augmentation, constant lr: 3 epochs are 3 SGD steps on the same batch
    config = tiny_config(epochs=3, batch_size=96, augment=False, schedule="constant", lr=0.05, nesterov=nesterov)
    model, reference = resnet8(), resnet8()
    run(model, tiny_splits, config)
    x, y = normalized(tiny_splits.train, tiny_splits), tiny_splits.train.labels
    generator = runtime.seed_everything(config.seed)  # the engine's: one shuffle of the 96 images per epoch
    orders = [torch.randperm(96, generator=generator) for _ in range(3)]
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4, nesterov=nesterov)
    other = copy.deepcopy(reference)
    other_optimizer = torch.optim.SGD(
        other.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4, nesterov=not nesterov
    )
    for net, opt in ((reference, optimizer), (other, other_optimizer)):
        for order in orders:
            opt.zero_grad()
            F.cross_entropy(net(x[order]), y[order]).backward()
            opt.step()
    trained = dict(model.named_parameters())
    for name, param in reference.named_parameters():
        torch.testing.assert_close(trained[name], param, rtol=1e-6, atol=1e-7, msg=name)
    apart = max((trained[n] - p).abs().max().item() for n, p in other.named_parameters())
    assert apart > 1e-4  # the other momentum gives other weights: the comparison can tell them apart


# ---------------------------------------------------------------------------------------------------------------
# norm and bias parameters: no weight decay, a scaled learning rate


def expected_norm_and_bias(model: nn.Module) -> set[str]:
    names = {n for n, _ in model.named_parameters() if ".bn" in f".{n}" and n.rsplit(".", 1)[-1] in ("weight", "bias")}
    return names | {"fc.bias"}


def test_norm_and_bias_parameters_of_resnet20_are_exactly_its_bn_parameters_and_the_fc_bias():
    model = cifar_resnet(20, in_channels=1)
    names = levers.norm_and_bias_names(model)
    assert set(names) == expected_norm_and_bias(model) and len(names) == 39
    assert all(dict(model.named_parameters())[n].dim() == 1 for n in names)
    assert all(n.endswith("conv1.weight") or n.endswith("conv2.weight") or n == "fc.weight"
               for n, _ in model.named_parameters() if n not in names)  # fmt: skip


def groups_by_name(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[set[str]]:
    name_of = {id(p): n for n, p in model.named_parameters()}
    return [{name_of[id(p)] for p in group["params"]} for group in optimizer.param_groups]


def test_without_bn_weight_decay_the_norm_and_bias_group_has_none_and_is_not_decayed():
    model = cifar_resnet(20, in_channels=1)
    config = training.TrainConfig(bn_weight_decay=False, weight_decay=0.01, lr=0.1)
    optimizer = levers.make_optimizer(model, config)
    rest, special = groups_by_name(model, optimizer)
    assert special == expected_norm_and_bias(model) and rest | special == {n for n, _ in model.named_parameters()}
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.01, 0.0]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)  # BN weights 1.5, biases 0.5: a decay would move them
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()  # zero gradient: only the weight decay moves a weight, by lr * wd * w
    for name, param in model.named_parameters():
        expected = before[name] if name in special else before[name] * (1 - 0.1 * 0.01)
        torch.testing.assert_close(param.detach(), expected, msg=name)


def test_bn_lr_scale_scales_the_step_of_the_norm_and_bias_parameters_and_keeps_their_decay_per_step():
    model = cifar_resnet(8, in_channels=1)
    config = training.TrainConfig(bn_lr_scale=4.0, weight_decay=0.01, lr=0.1, momentum=0.0)
    optimizer = levers.make_optimizer(model, config)
    special = set(levers.norm_and_bias_names(model))
    assert isinstance(optimizer, levers.ScaledSGD) and groups_by_name(model, optimizer)[1] == special
    for group in optimizer.param_groups:
        group["lr"] = 0.05  # what the engine sets every step: the scheduled rate
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    optimizer.step()
    assert [g["lr"] for g in optimizer.param_groups] == [0.05, 0.05]  # restored after the step
    for name, param in model.named_parameters():
        w = before[name]
        expected = w - 4 * 0.05 * (1 + 0.01 / 4 * w) if name in special else w - 0.05 * (1 + 0.01 * w)
        torch.testing.assert_close(param.detach(), expected, msg=name)


def test_the_engine_builds_its_optimizer_from_the_config(tiny_splits, monkeypatch):
    made = []
    original = levers.make_optimizer

    def spy(model, config):
        made.append(original(model, config))
        return made[-1]

    monkeypatch.setattr(levers, "make_optimizer", spy)
    history = run(resnet8(), tiny_splits, tiny_config(bn_weight_decay=False, bn_lr_scale=2.0, nesterov=True))
    assert len(made) == 1 and isinstance(made[0], levers.ScaledSGD) and history.train_loss[0] > 0
    assert [g["lr_scale"] for g in made[0].param_groups] == [1.0, 2.0]
    assert all(g["nesterov"] for g in made[0].param_groups)


# ---------------------------------------------------------------------------------------------------------------
# test-time augmentation: flip + translations


def test_translate_moves_the_content_and_reflects_at_the_border():
    x = torch.arange(2 * 1 * 5 * 6, dtype=torch.float32).view(2, 1, 5, 6)
    down_right, up_left = levers.translate(x, 2), levers.translate(x, -2)
    assert down_right.shape == up_left.shape == x.shape
    assert torch.equal(down_right[..., 2:, 2:], x[..., :-2, :-2]) and torch.equal(
        up_left[..., :-2, :-2], x[..., 2:, 2:]
    )
    assert torch.equal(down_right[..., 0, 2:], x[..., 2, :-2])  # row -2 reflects row 2
    assert levers.translate(x, 0) is x


def test_tta_views_are_the_six_airbench_views_with_weights_summing_to_one():
    x = torch.randn(3, 1, 28, 28)
    views = levers.tta_views(x, 1)
    assert len(views) == 6 and sum(w for w, _ in views) == 1.0
    assert [w for w, _ in views] == [0.25, 0.25, 0.125, 0.125, 0.125, 0.125]
    expected = [x, x.flip(-1), levers.translate(x, 1), levers.translate(x, 1).flip(-1),
                levers.translate(x, -1), levers.translate(x, -1).flip(-1)]  # fmt: skip
    assert all(torch.equal(v, e) for (_, v), e in zip(views, expected))


def test_translation_tta_averages_the_views_and_changes_nothing_on_an_image_that_all_views_leave_alike(tiny_splits):
    model = resnet8().eval()
    x = normalized(tiny_splits.val, tiny_splits)
    with torch.inference_mode():
        expected = sum(w * model(v) for w, v in levers.tta_views(x, 2))
        torch.testing.assert_close(training.predict(model, x, True, 2), expected)
        flat = torch.full((4, 1, 28, 28), 0.7)  # constant: every flip and translation is the image itself
        torch.testing.assert_close(training.predict(model, flat, True, 1), model(flat), rtol=1e-6, atol=1e-6)
        wrong = (expected.argmax(dim=1) != tiny_splits.val.labels).sum().item()
    error = training.evaluate(model, tiny_splits.val, tiny_splits, precision="fp32", tta_flip=True, tta_translate=2)
    assert error == pytest.approx(100.0 * wrong / len(tiny_splits.val))


def test_the_engine_evaluates_with_the_translation_views(tiny_splits, monkeypatch):
    seen = []
    original = training.evaluate

    def recording(net, dataset, splits, **kwargs):
        seen.append((kwargs["tta_flip"], kwargs["tta_translate"]))
        return original(net, dataset, splits, **kwargs)

    monkeypatch.setattr(training, "evaluate", recording)
    run(resnet8(), tiny_splits, tiny_config(tta_flip=True, tta_translate=1))
    assert seen == [(True, 1), (True, 1)]  # validation and test


# ---------------------------------------------------------------------------------------------------------------
# the first conv: Dirac and whitening


def test_dirac_makes_filter_0_the_identity_and_keeps_the_other_filters(tiny_splits):
    model = resnet8()
    before = model.conv1.weight.detach().clone()  # (16, 1, 3, 3)
    levers.dirac_first_conv_(model)
    weight = model.conv1.weight.detach()
    identity = torch.zeros(1, 3, 3)
    identity[0, 1, 1] = 1.0
    assert torch.equal(weight[0], identity) and torch.equal(weight[1:], before[1:])
    x = normalized(tiny_splits.val, tiny_splits)
    with torch.no_grad():
        assert torch.equal(model.conv1(x)[:, 0:1], x)


def test_whitening_filters_decorrelate_the_patches_to_unit_variance(tiny_splits):
    x = normalized(tiny_splits.train, tiny_splits)  # (96, 1, 28, 28)
    patches = levers.image_patches(x, (3, 3))
    assert patches.shape == (96 * 26 * 26, 9)
    torch.testing.assert_close(patches[0].view(3, 3), x[0, 0, :3, :3])  # the conv weight's (C, kh, kw) order
    filters, eigenvalues = levers.whitening_filters(patches, 16, eps=0.0)
    assert filters.shape == (16, 9) and torch.all(eigenvalues[:-1] >= eigenvalues[1:])
    outputs = patches.double() @ filters.double().T  # (M, 16): the stem's outputs on every patch
    covariance = torch.cov(outputs[:, :9].T)
    torch.testing.assert_close(covariance, torch.eye(9, dtype=torch.float64), atol=2e-3, rtol=0)
    assert torch.equal(filters[9:], -filters[:7])  # 16 filters from 9 directions: the 7 strongest again, negated
    with_eps, _ = levers.whitening_filters(patches, 16)  # eps = 5e-4: variance lambda / (lambda + eps)
    variances = torch.var(patches.double() @ with_eps.double()[:9].T, dim=0)
    torch.testing.assert_close(variances, (eigenvalues / (eigenvalues + levers.WHITEN_EPS)).double(), rtol=2e-3, atol=0)


def test_the_engine_whitens_the_stem_from_the_training_images_before_the_first_step(tiny_splits):
    model = resnet8()
    run(model, tiny_splits, tiny_config(first_conv_init="whiten", lr=1e-12, schedule="constant"))
    patches = levers.image_patches(normalized(tiny_splits.train, tiny_splits), (3, 3))
    expected, _ = levers.whitening_filters(patches, 16)
    torch.testing.assert_close(model.conv1.weight.detach().view(16, 9), expected, rtol=1e-4, atol=1e-6)


def test_first_conv_init_draws_no_random_numbers(tiny_splits):
    # so a run with it shuffles and crops exactly as the run without it: only the stem differs
    models = resnet8(), resnet8()
    state = torch.random.get_rng_state()
    levers.init_first_conv(models[0], "whiten", tiny_splits)
    levers.init_first_conv(models[1], "dirac", tiny_splits)
    assert torch.equal(state, torch.random.get_rng_state())


# ---------------------------------------------------------------------------------------------------------------
# progressive resizing


def test_training_size_per_epoch():
    assert [levers.training_size((2, 20), e) for e in (1, 2, 3, 10)] == [20, 20, None, None]
    assert levers.training_size(None, 1) is None


def test_the_engine_trains_the_first_epochs_on_smaller_images_and_evaluates_at_full_size(tiny_splits):
    model = resnet8()
    shapes = []
    model.register_forward_pre_hook(lambda m, args: shapes.append((m.training, tuple(args[0].shape))))
    history = run(model, tiny_splits, tiny_config(epochs=3, progressive_resize=(2, 20), test_every_epoch=False))
    training_shapes = [s for t, s in shapes if t]
    assert training_shapes == [(32, 1, 20, 20)] * 6 + [(32, 1, 28, 28)] * 3  # 3 batches per epoch
    assert {s[1:] for t, s in shapes if not t} == {(1, 28, 28)}
    assert len(history.epoch) == 3


def test_resized_batches_are_bilinear_antialiased_and_keep_the_labels():
    x, y = torch.randn(4, 1, 28, 28), torch.arange(4)
    ((small, labels),) = list(levers.resized_batches(iter([(x, y)]), 14))
    assert small.shape == (4, 1, 14, 14) and torch.equal(labels, y)
    torch.testing.assert_close(small, F.interpolate(x, size=(14, 14), mode="bilinear", antialias=True))
    batches = iter([(x, y)])
    assert levers.resized_batches(batches, None) is batches


# ---------------------------------------------------------------------------------------------------------------
# the triangular schedule


def test_triangular_warms_up_for_a_fifth_of_the_run_then_falls_linearly_to_zero():
    config = training.TrainConfig(epochs=10, lr=0.2, schedule="triangular")
    lrs = [training.learning_rate(config, s, 1000) for s in range(1000)]
    assert lrs[0] == pytest.approx(0.02) and lrs.index(max(lrs)) == 200 and max(lrs) == pytest.approx(0.2)
    assert lrs[600] == pytest.approx(0.1)  # half-way down: 400 of 800 decay steps
    assert lrs[-1] == pytest.approx(0.2 / 800) and all(a >= b for a, b in zip(lrs[200:], lrs[201:]))
