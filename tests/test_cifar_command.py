"""`python -m resnet_lab.experiments cifar10`: the paper's Table 6 recipe as one command, on a synthetic CIFAR folder."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from resnet_lab import data, experiments, reference, run_records, training

PER_FILE = 40  # images in each of the six batch files: 200 train (180 after 20 for validation), 40 test
BATCH_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def write_synthetic_cifar(root: Path) -> Path:
    """``root/cifar-10-batches-py`` in torchvision's python-pickle layout, filled with random 32x32x3 images."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in BATCH_FILES:
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(label) for label in rng.integers(0, 10, PER_FILE)],
            b"data": rng.integers(0, 256, (PER_FILE, 3 * 32 * 32), dtype=np.uint8),  # rows: R plane, G, B
            b"filenames": [f"{name}_{i}.png".encode() for i in range(PER_FILE)],
        }
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle)
    return folder


@pytest.fixture
def no_download(monkeypatch):
    """Fail the test if anything tries to download CIFAR-10."""
    import torchvision.datasets

    def refuse(*args, **kwargs):
        raise AssertionError("CIFAR-10 was downloaded without being asked")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", refuse)
    monkeypatch.delenv(data.DOWNLOAD_ENV, raising=False)


def test_the_recipe_is_table_6_in_epochs():
    config = experiments.cifar10_config()
    recipe = reference.CIFAR_RECIPE
    assert (config.lr, config.momentum, config.weight_decay, config.batch_size) == (0.1, 0.9, 1e-4, 128)
    assert config.schedule == "step" and config.augment and config.random_erasing == 0
    plan = experiments.iteration_plan(config, recipe["train_val_split"][0])
    assert plan["steps_per_epoch"] == 352 and config.epochs == 182  # 45,000 / 128 rounded up; 64k / 352 rounded
    assert plan["iterations"] == 64_064 and plan["lr_divided_by_10_at"] == [32_032, 48_048]
    paper = [*recipe["lr_drops_at_iterations"], recipe["iterations"]]
    ours = [*plan["lr_divided_by_10_at"], plan["iterations"]]
    assert all(abs(a - b) < plan["steps_per_epoch"] for a, b in zip(ours, paper))  # within one epoch of the paper
    lrs = [training.learning_rate(config, step, plan["iterations"]) for step in (0, 32_031, 32_032, 48_047, 48_048)]
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])


def test_resnet_110_warms_up_from_a_tenth_of_the_lr():
    config = experiments.cifar10_config(depth=110)
    plan = experiments.iteration_plan(config, 45_000)
    assert plan["warmup_iterations"] == 352  # one epoch; the paper: 0.01 for about 400 iterations
    assert training.learning_rate(config, 0, plan["iterations"]) == pytest.approx(0.01)
    assert training.learning_rate(config, 352, plan["iterations"]) == pytest.approx(0.1)
    assert experiments.cifar10_config(depth=56).warmup_epochs is None


def test_global_batch_is_processes_times_batch_size():
    four = experiments.iteration_plan(experiments.cifar10_config(), 45_000, processes=4)
    assert four["global_batch"] == 512 and four["steps_per_epoch"] == 88 and four["iterations"] == 88 * 182
    kept = experiments.iteration_plan(training.TrainConfig(epochs=182, batch_size=32, schedule="step"), 45_000, 4)
    assert kept["global_batch"] == 128 and kept["steps_per_epoch"] == 352  # the paper's iterations again


def test_cifar10_command_trains_a_3_channel_resnet_and_writes_the_record(
    tmp_path, monkeypatch, capsys, check_schema, no_download
):
    write_synthetic_cifar(tmp_path / "data")
    monkeypatch.setattr(run_records, "RUNS_DIR", tmp_path / "runs")
    threads = torch.get_num_threads()
    experiments.main(["cifar10", "--data-root", str(tmp_path / "data"), "--val-size", "20", "--fast", "--epochs", "2",
                      "--no-progress"])  # fmt: skip
    assert torch.get_num_threads() == threads
    out = capsys.readouterr().out
    assert "1 process(es) x batch 128 = global batch 128, lr 0.1; 4 iterations, lr / 10 at [2, 3]" in out
    assert "paper (Table 6): ResNet-20 8.75% test error" in out
    record = experiments.load_record("cifar10-resnet20-fast")
    check_schema(record, ["ResNet-20"])
    assert record["experiment"] == "cifar10" and record["mode"] == "fast"
    assert record["dataset"]["name"] == "cifar10-fast"
    assert (record["dataset"]["train"], record["dataset"]["val"], record["dataset"]["test"]) == (180, 20, 40)
    assert "3x32x32, 10 classes" in record["dataset"]["description"]
    config = record["config"]
    assert (config["lr"], config["momentum"], config["weight_decay"], config["batch_size"]) == (0.1, 0.9, 1e-4, 128)
    assert config["schedule"] == "step" and config["augment"] and config["epochs"] == 2
    # the schedule, as the paper's 32k and 48k of 64k iterations translate to this tiny run: 50% and 75%
    assert record["schedule"]["iterations"] == 4 and record["schedule"]["lr_divided_by_10_at"] == [2, 3]
    assert record["paper"]["lr_divided_by_10_at"] == [32_000, 48_000] and record["paper"]["iterations"] == 64_000
    assert record["paper"]["test_error"] == 8.75 and record["sync_bn"] is False
    net = record["nets"]["ResNet-20"]
    assert net["depth"] == 20 and net["residual"]
    assert net["parameters"] == reference.CIFAR_PARAMS[20] == 269_722  # Table 6's ResNet-20: 3 input channels
    assert net["history"]["processes"] == 1 and record["environment"]["torch_threads"] == 1


def test_missing_cifar_folder_says_how_to_get_it_and_downloads_nothing(tmp_path, monkeypatch, no_download):
    monkeypatch.setattr(run_records, "RUNS_DIR", tmp_path / "runs")
    with pytest.raises(data.DataError, match=r"CIFAR-10 not found: .*cifar-10-batches-py lacks data_batch_1.*"
                       r"download=True.*cifar-10-python\.tar\.gz"):  # fmt: skip
        experiments.main(["cifar10", "--data-root", str(tmp_path), "--fast", "--no-progress"])
    assert not (tmp_path / "runs").exists()
