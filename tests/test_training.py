"""The training engine: schedule, history, repeatability, interrupts, test-set discipline."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from resnet_lab import cifar_resnet, training
from resnet_lab.checkpoints import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py; tiny_splits too


def tiny_config(**changes) -> training.TrainConfig:
    return dataclasses.replace(training.TrainConfig(epochs=2, batch_size=32, precision="fp32"), **changes)


def test_onecycle_warms_up_then_decays_to_zero():
    config = training.TrainConfig(epochs=10, lr=0.1, schedule="onecycle")
    lrs = [training.learning_rate(config, s, 1000) for s in range(1000)]
    assert lrs[0] == pytest.approx(0.01)
    assert max(lrs) == pytest.approx(0.1, rel=1e-3)
    assert lrs.index(max(lrs)) == 150  # 15% warm-up
    assert lrs[-1] < 1e-5


def test_step_schedule_is_the_papers():
    config = training.TrainConfig(epochs=4, lr=0.1, schedule="step")
    lr = [training.learning_rate(config, s, 64000) for s in (0, 31999, 32000, 47999, 48000, 63999)]
    assert lr == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="schedule"):
        training.TrainConfig(schedule="exponential")
    with pytest.raises(ValueError, match="precision"):
        training.TrainConfig(precision="fp8")
    with pytest.raises(ValueError, match="random_erasing"):
        training.TrainConfig(random_erasing=1.5)


def test_train_returns_a_full_history_and_is_repeatable(tiny_splits):
    histories = []
    for _ in range(2):
        torch.manual_seed(0)
        model = cifar_resnet(8, in_channels=1)
        histories.append(training.train(model, tiny_splits, tiny_config(), progress=False, device="cpu"))
    history = histories[0]
    assert history.epoch == [1, 2]
    for key in ("train_loss", "train_error", "val_error", "test_error", "lr", "seconds"):
        assert len(getattr(history, key)) == 2
    assert all(0 <= e <= 100 for e in history.train_error + history.val_error + history.test_error)
    assert history.step[-1] == 2 * 3 and len(history.step) == len(history.step_train_error)
    assert history.final_test_error == history.test_error[-1]
    assert not history.interrupted
    assert history.to_dict() == histories[1].to_dict() | {"seconds": history.seconds}
    assert "train err%" in history.summary()


def test_bf16_training_runs(tiny_splits):
    model = cifar_resnet(8, in_channels=1)
    one_batch = tiny_splits.first(train=32, val=40, test=40)  # one batch: bf16 is slow on CPUs
    history = training.train(model, one_batch, tiny_config(epochs=1, precision="bf16"), progress=False, device="cpu")
    assert history.epoch == [1] and history.train_loss[0] > 0
    assert history.precision == "bf16" and history.channels_last is False  # bf16 on the CPU: NCHW is faster


class InterruptAfter(torch.nn.Module):
    """Wraps a model; raises KeyboardInterrupt (as Ctrl-C would) at the n-th training forward."""

    def __init__(self, model: torch.nn.Module, calls: int) -> None:
        super().__init__()
        self.model, self.calls = model, calls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls -= 1
            if self.calls == 0:
                raise KeyboardInterrupt
        return self.model(x)


def test_keyboard_interrupt_returns_the_history_so_far(tiny_splits, tmp_path):
    model = InterruptAfter(cifar_resnet(8, in_channels=1), calls=5)  # 3 batches per epoch: dies in epoch 2
    history = training.train(
        model, tiny_splits, tiny_config(epochs=3), progress=False, device="cpu", checkpoint_path=tmp_path / "ck.pt"
    )
    assert history.interrupted
    assert history.epoch == [1] and len(history.train_error) == 1
    assert load_checkpoint(tmp_path / "ck.pt")["epoch"] == 1  # the last complete epoch is on disk


def test_test_set_touched_once_and_best_model_kept(tiny_splits, monkeypatch):
    evaluated = []
    original = training.evaluate

    def counting_evaluate(model, dataset, splits, **kwargs):
        evaluated.append("test" if dataset is splits.test else "val")
        return original(model, dataset, splits, **kwargs)

    monkeypatch.setattr(training, "evaluate", counting_evaluate)
    config = tiny_config(epochs=2, test_every_epoch=False, keep_best=True)
    history = training.train(cifar_resnet(8, in_channels=1), tiny_splits, config, progress=False, device="cpu")
    assert evaluated.count("test") == 1 and evaluated.count("val") == 2
    assert history.test_error == [None, None]
    assert history.final_test_error is not None
    assert history.best_epoch == 1 + history.val_error.index(min(history.val_error))


def test_train_does_what_its_arguments_say_whatever_the_environment(tiny_splits, monkeypatch, capsys):
    monkeypatch.setenv("RESNET_LAB_FAST", "1")  # fast mode is decided by the caller, not read by train()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        history = training.train(cifar_resnet(8, in_channels=1), tiny_splits, tiny_config(epochs=3), progress=False,
                                 device="cpu", threads=1)  # fmt: skip
        assert torch.get_num_threads() == 2  # one thread while training, the caller's setting restored after
    finally:
        torch.set_num_threads(before)  # whatever the caller (or the one_thread fixture) had set
    assert history.epoch == [1, 2, 3]
    assert (history.device, history.precision, history.channels_last, history.threads) == ("cpu", "fp32", True, 1)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""  # progress=False: nothing printed


def test_threads_must_be_positive(tiny_splits):
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        training.train(cifar_resnet(8, in_channels=1), tiny_splits, tiny_config(), progress=False, threads=0)


def test_history_of_an_older_record_loads_without_the_settled_values():
    old = {"epoch": [1], "train_loss": [1.0], "train_error": [50.0], "val_error": [40.0], "test_error": [None],
           "lr": [0.1], "seconds": [1.0]}  # fmt: skip
    history = training.History.from_dict(old)
    assert history.precision is None and history.threads is None and history.epoch == [1]


def test_progress_bar_is_plain_text_under_ci(tiny_splits, monkeypatch, capsys):
    monkeypatch.setenv("CI", "true")
    training.train(cifar_resnet(8, in_channels=1), tiny_splits, tiny_config(epochs=1), progress=True, device="cpu")
    err = capsys.readouterr().err
    assert "3/3" in err and "HBox" not in err


def test_a_diverging_loss_stops_training_with_advice(tiny_splits):
    torch.manual_seed(0)
    model = cifar_resnet(8, in_channels=1)
    with pytest.raises(FloatingPointError, match="lower lr or add warm-up"):
        training.train(model, tiny_splits, tiny_config(lr=1e12, schedule="constant"), progress=False, device="cpu")


@pytest.mark.parametrize(
    "config, total",
    [
        (training.TrainConfig(epochs=182, schedule="step"), 64_064),
        (training.TrainConfig(epochs=182, schedule="step", warmup_epochs=1.0), 64_064),
        (training.TrainConfig(epochs=3, schedule="step", warmup_epochs=0.5), 31),
        (training.TrainConfig(epochs=1, schedule="step"), 2),
    ],
)
def test_step_milestones_are_where_the_schedule_divides_the_lr(config, total):
    lrs = [training.learning_rate(config, step, total) for step in range(total)]
    after_warmup = range(training.warmup_steps(config, total) + 1, total)
    drops = [step for step in after_warmup if lrs[step] < lrs[step - 1]]
    assert training.step_milestones(config, total) == drops
    assert training.step_milestones(training.TrainConfig(epochs=3), total) == []  # warmup_cosine: no steps


def test_steps_per_epoch_and_linear_scaling():
    assert training.steps_per_epoch(45_000, 128) == 352
    assert training.steps_per_epoch(45_000, 32, world_size=4) == 352  # 11,250 images per process
    assert training.steps_per_epoch(45_001, 128, world_size=2) == 176  # one image waits for the next epoch's order
    assert training.linear_scaling(0.1, 512) == pytest.approx(0.4)
    assert training.linear_scaling(0.1, 128) == 0.1
