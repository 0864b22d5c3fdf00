"""The warm-up + cosine schedule has its accurate name, and the old name "onecycle" keeps working."""

import pytest

from resnet_lab import training
from resnet_lab.training import TrainConfig


def test_default_schedule_is_warmup_cosine():
    assert TrainConfig().schedule == "warmup_cosine"
    assert "warmup_cosine" in training.SCHEDULES and "onecycle" not in training.SCHEDULES


def test_old_name_is_accepted_and_stored_under_the_new_one():
    old, new = TrainConfig(epochs=10, schedule="onecycle"), TrainConfig(epochs=10, schedule="warmup_cosine")
    assert old == new and old.schedule == "warmup_cosine"
    assert training.canonical_schedule("onecycle") == "warmup_cosine"
    assert training.canonical_schedule("step") == "step"


@pytest.mark.parametrize("step", [0, 50, 106, 355, 709])
def test_same_learning_rates_under_both_names(step):
    new = TrainConfig(epochs=10, schedule="warmup_cosine")
    old = TrainConfig(epochs=10)
    old.schedule = "onecycle"  # a config whose field was set after construction, as an older pickle might hold
    assert training.learning_rate(old, step, 710) == training.learning_rate(new, step, 710)


def test_warmup_cosine_shape():
    config = TrainConfig(epochs=10, lr=0.1, schedule="warmup_cosine")
    lr = [training.learning_rate(config, s, 710) for s in range(710)]
    assert lr[0] == pytest.approx(0.01)  # warm-up starts at lr/10
    assert max(lr) == pytest.approx(0.1) and lr.index(max(lr)) == 106  # 15% of 710 steps, rounded
    assert lr[-1] < 1e-5  # cosine decay to zero
