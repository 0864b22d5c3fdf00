"""The training engine's levers for a faster recipe (TrainConfig): label_smoothing, ema_decay, tta_flip,
compile and eval_every, each on tiny data and one thread.

The compiled ResNet-8 test takes 25-35 s on a busy 2-core CPU with a cold compile cache, so it runs only
with RESNET_LAB_COMPILE_TESTS=1; by default a small conv net (conv, BN, ReLU, pool, linear) takes the same
compiled path in 4-10 s.
"""

from __future__ import annotations

import copy
import dataclasses
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from test_training import InterruptAfter  # noqa: E402  (tests/ is on sys.path under pytest)
from torch import nn  # noqa: E402

from resnet_lab import cifar_resnet, data, plots, training  # noqa: E402
from resnet_lab.checkpoints import load_checkpoint  # noqa: E402

WHY_NO_COMPILE = training.compile_unsupported(torch.device("cpu"))
SLOW_COMPILE = os.environ.get("RESNET_LAB_COMPILE_TESTS", "") == "1"


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py; tiny_splits too


def tiny_config(**changes) -> training.TrainConfig:
    base = training.TrainConfig(epochs=1, batch_size=32, precision="fp32", channels_last=False)
    return dataclasses.replace(base, **changes)


def resnet8() -> nn.Module:
    torch.manual_seed(0)
    return cifar_resnet(8, in_channels=1)


def small_convnet() -> nn.Module:
    """Conv, BN, ReLU, pool, linear: the layers ResNet is made of, compiled in seconds rather than half a minute."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
    )  # fmt: skip


def run(model: nn.Module, splits: data.Splits, config: training.TrainConfig, **kwargs) -> training.History:
    return training.train(model, splits, config, progress=False, device="cpu", **kwargs)


def normalized(images: data.ImageSet, splits: data.Splits) -> torch.Tensor:
    return data.normalize(images.images, splits.mean, splits.std)


# ---------------------------------------------------------------------------------------------------------------
# label smoothing


def test_label_smoothing_changes_the_training_loss_but_not_the_evaluation(tiny_splits):
    # one batch of all 96 images, no augmentation, an lr too small to move the weights: the epoch's loss is the
    # loss of the initial model on the whole training set (BN normalises with the batch's statistics), and the
    # evaluated model is the same whatever the training loss was
    config = tiny_config(batch_size=96, augment=False, lr=1e-12, schedule="constant")
    x, y = normalized(tiny_splits.train, tiny_splits), tiny_splits.train.labels
    histories = {}
    for smoothing in (0.0, 0.3):
        model = resnet8()
        with torch.no_grad():
            expected = F.cross_entropy(copy.deepcopy(model).train()(x), y, label_smoothing=smoothing).item()
        histories[smoothing] = run(model, tiny_splits, dataclasses.replace(config, label_smoothing=smoothing))
        assert histories[smoothing].train_loss[0] == pytest.approx(expected, rel=1e-5)
    plain, smoothed = histories[0.0], histories[0.3]
    assert abs(smoothed.train_loss[0] - plain.train_loss[0]) > 1e-3
    assert smoothed.train_error == plain.train_error  # the same predictions, scored by another loss
    assert (smoothed.val_error, smoothed.test_error) == (plain.val_error, plain.test_error)


# ---------------------------------------------------------------------------------------------------------------
# EMA of the weights


def test_ema_is_evaluated_and_is_the_hand_computed_average_after_two_steps(tiny_splits, tmp_path):
    decay = 0.6
    model = resnet8()
    before_step = []  # the weights and buffers at each training forward: those after the previous step

    def snapshot(module: nn.Module, args: tuple) -> None:
        if module is model and module.training:
            before_step.append({k: v.detach().clone() for k, v in module.state_dict().items()})

    model.register_forward_pre_hook(snapshot)
    config = tiny_config(batch_size=48, augment=False, lr=0.05, schedule="constant", ema_decay=decay)
    history = run(model, tiny_splits, config, checkpoint_path=tmp_path / "ck.pt")

    assert len(before_step) == 2 and history.evaluated_weights == "ema"
    after_first, raw = before_step[1], load_checkpoint(tmp_path / "ck.pt")["raw_model"]
    returned = model.state_dict()
    for name, value in returned.items():
        if value.is_floating_point():
            expected = decay * after_first[name] + (1 - decay) * raw[name]
            torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6, msg=name)
        else:  # BN's step counter follows the raw model
            assert torch.equal(value, raw[name]), name
    moved = max((returned[k] - raw[k]).abs().max().item() for k in raw if raw[k].is_floating_point())
    assert moved > 1e-4  # the evaluated weights are not the raw ones
    # history, checkpoint and returned model agree on which weights were evaluated
    checkpoint = load_checkpoint(tmp_path / "ck.pt", resnet8())
    assert all(torch.equal(checkpoint["model"][k], v) for k, v in returned.items()) and checkpoint["ema_updates"] == 2
    val = training.evaluate(model, tiny_splits.val, tiny_splits, precision="fp32")
    test = training.evaluate(model, tiny_splits.test, tiny_splits, precision="fp32")
    assert (history.val_error, history.final_test_error) == ([val], test)


def test_without_ema_the_raw_weights_are_evaluated(tiny_splits, tmp_path):
    history = run(resnet8(), tiny_splits, tiny_config(), checkpoint_path=tmp_path / "ck.pt")
    assert history.evaluated_weights == "raw" and history.compiled is False and history.compile_seconds is None
    assert "raw_model" not in load_checkpoint(tmp_path / "ck.pt")


def test_keep_best_keeps_the_ema_weights_of_the_best_epoch(tiny_splits, monkeypatch):
    model = resnet8()
    seen = []  # (the model object evaluated on validation, a copy of its weights then)
    original = training.evaluate

    def recording_evaluate(net, dataset, splits, **kwargs):
        if dataset is splits.val:
            seen.append((net, copy.deepcopy(net.state_dict())))
        return original(net, dataset, splits, **kwargs)

    monkeypatch.setattr(training, "evaluate", recording_evaluate)
    config = tiny_config(epochs=3, ema_decay=0.5, keep_best=True, test_every_epoch=False)
    history = run(model, tiny_splits, config)
    assert len(seen) == 3 and all(net is not model for net, _ in seen)  # the average was evaluated, not the model
    kept = seen[history.best_epoch - 1][1]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in kept.items())


# ---------------------------------------------------------------------------------------------------------------
# test-time flip averaging


class FlipInvariant(nn.Module):
    """net(x) + net(mirrored x): the same logits for an image and its mirror image."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) + self.net(x.flip(-1))


def test_tta_flip_averages_the_logits_of_an_image_and_its_mirror_image(tiny_splits):
    model = resnet8().eval()
    x = normalized(tiny_splits.val, tiny_splits)
    with torch.inference_mode():
        plain, mirrored = model(x), model(x.flip(-1))
        torch.testing.assert_close(training.predict(model, x, tta_flip=True), (plain + mirrored) / 2)
        assert torch.equal(training.predict(model, x), plain)
        symmetric = x + x.flip(-1)  # exactly its own mirror image
        assert torch.equal(training.predict(model, symmetric, tta_flip=True), model(symmetric))
        expected = 100.0 * ((plain + mirrored).argmax(dim=1) != tiny_splits.val.labels).float().mean().item()
    assert training.evaluate(model, tiny_splits.val, tiny_splits, tta_flip=True) == pytest.approx(expected)
    invariant = FlipInvariant(model)
    assert training.evaluate(invariant, tiny_splits.val, tiny_splits, tta_flip=True) == training.evaluate(
        invariant, tiny_splits.val, tiny_splits
    )


# ---------------------------------------------------------------------------------------------------------------
# evaluation every k-th epoch (with tta_flip passed on)


def test_eval_every_evaluates_every_kth_and_the_last_epoch(tiny_splits, monkeypatch):
    calls = []
    original = training.evaluate

    def recording_evaluate(net, dataset, splits, **kwargs):
        calls.append(("val" if dataset is splits.val else "test", kwargs.get("tta_flip")))
        return original(net, dataset, splits, **kwargs)

    monkeypatch.setattr(training, "evaluate", recording_evaluate)
    history = run(resnet8(), tiny_splits, tiny_config(epochs=3, eval_every=2, keep_best=True, tta_flip=True))
    assert calls == [("val", True), ("test", True)] * 2  # epochs 2 and 3
    assert history.val_error[0] is None and None not in history.val_error[1:]
    assert history.test_error[0] is None and None not in history.test_error[1:]
    assert history.best_epoch in (2, 3) and history.final_test_error == history.test_error[history.best_epoch - 1]
    assert history.summary().splitlines()[1].split()[3:5] == ["-", "-"]
    figure = plots.plot_history(history)  # the validation curve skips epoch 1
    assert list(figure.axes[0].lines[1].get_xdata()) == [2, 3]
    plt.close(figure)


def test_an_interrupted_run_whose_last_epoch_was_not_evaluated_tests_the_returned_model(tiny_splits):
    model = InterruptAfter(resnet8(), calls=5)  # 3 batches per epoch: dies in epoch 2
    history = run(model, tiny_splits, tiny_config(epochs=3, eval_every=2))
    assert history.interrupted and history.val_error == [None] and history.best_epoch is None
    assert history.final_test_error == training.evaluate(model, tiny_splits.test, tiny_splits, precision="fp32")


# ---------------------------------------------------------------------------------------------------------------
# torch.compile


@pytest.mark.skipif(WHY_NO_COMPILE is not None, reason=f"torch.compile is unavailable: {WHY_NO_COMPILE}")
@pytest.mark.parametrize(
    "make",
    [
        small_convnet,
        pytest.param(
            resnet8,
            marks=pytest.mark.skipif(
                not SLOW_COMPILE, reason="compiling ResNet-8 takes ~30 s here; set RESNET_LAB_COMPILE_TESTS=1"
            ),
        ),
    ],
)
def test_compiled_training_gives_the_eager_loss(tiny_splits, make):
    # lr 0.01: at 0.1 the untrained ResNet-8 grows the rounding differences of compiled kernels ~30x per step
    # (0.1% apart after 3 steps); at 0.01 the epoch's losses agree to ~1e-6
    eager = run(make(), tiny_splits, tiny_config(lr=0.01))
    compiled = run(make(), tiny_splits, tiny_config(lr=0.01, compile=True))
    assert (eager.compiled, compiled.compiled) == (False, True)
    assert eager.compile_seconds is None and compiled.compile_seconds > 0
    assert compiled.train_loss == pytest.approx(eager.train_loss, rel=1e-4)
    assert compiled.train_error == eager.train_error


def test_compile_falls_back_to_eager_with_a_warning_where_it_cannot_run(tiny_splits, monkeypatch):
    monkeypatch.setattr(training, "compile_unsupported", lambda device: "no C++ compiler (pretend)")
    with pytest.warns(UserWarning, match=r"compile=True: no C\+\+ compiler \(pretend\); training without it"):
        history = run(small_convnet(), tiny_splits, tiny_config(compile=True))
    assert history.compiled is False and history.compile_seconds is None


# ---------------------------------------------------------------------------------------------------------------
# values


@pytest.mark.parametrize(
    "changes,field",
    [
        (dict(label_smoothing=-0.1), "label_smoothing"),
        (dict(label_smoothing=1.0), "label_smoothing"),
        (dict(label_smoothing=float("nan")), "label_smoothing"),
        (dict(ema_decay=0.0), "ema_decay"),
        (dict(ema_decay=1.0), "ema_decay"),
        (dict(ema_decay=True), "ema_decay"),
        (dict(tta_flip="yes"), "tta_flip"),
        (dict(compile=1), "compile"),
        (dict(eval_every=0), "eval_every"),
        (dict(eval_every=1.5), "eval_every"),
        (dict(eval_every=True), "eval_every"),
    ],
)
def test_bad_lever_values_are_refused(changes, field):
    with pytest.raises(ValueError, match=rf"^{field} must be"):
        training.TrainConfig(**changes)


def test_the_levers_are_off_by_default():
    config = training.TrainConfig()
    assert (config.label_smoothing, config.ema_decay, config.tta_flip, config.compile, config.eval_every) == (
        0.0, None, False, False, 1,
    )  # fmt: skip
