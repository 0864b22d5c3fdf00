"""Run records: the committed records show the paper's findings; schema; the fast experiment and plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from resnet_lab import data, experiments, plots  # noqa: E402
from resnet_lab.training import History, TrainConfig  # noqa: E402

NET_NAMES = ["plain-20", "plain-56", "ResNet-20", "ResNet-56"]
HISTORY_KEYS = {"epoch", "train_loss", "train_error", "val_error", "test_error", "lr", "seconds", "step", "step_train_error"}


def check_schema(record: dict, nets: list[str]) -> None:
    assert record["schema"] == experiments.SCHEMA
    for key in ("experiment", "mode", "created", "dataset", "seed", "config", "environment", "nets", "total_seconds", "notes"):
        assert key in record, key
    for key in ("torch", "torchvision", "device", "device_name", "torch_threads", "precision"):
        assert record["environment"][key] not in (None, ""), key
    assert {"name", "train", "val", "test"} <= set(record["dataset"])
    assert list(record["nets"]) == nets
    epochs = record["config"]["epochs"]
    for name, net in record["nets"].items():
        assert net["name"] == name and net["seconds"] > 0 and net["parameters"] > 0
        assert HISTORY_KEYS <= set(net["history"])
        assert len(net["history"]["train_error"]) == epochs and not net["history"]["interrupted"]
        assert {"train_error", "val_error", "test_error"} <= set(net["final"])
        assert all(0 <= e <= 100 for e in net["history"]["train_error"])


@pytest.fixture(scope="module")
def degradation() -> dict:
    return experiments.load_record("degradation")


def test_committed_degradation_record_schema(degradation):
    check_schema(degradation, NET_NAMES)
    assert degradation["experiment"] == "degradation" and degradation["mode"] == "full"
    assert degradation["dataset"]["name"] == "fashion-mnist-subset" and degradation["dataset"]["train"] == 9000
    assert degradation["config"]["batch_size"] == 128 and degradation["config"]["momentum"] == 0.9
    assert degradation["config"]["weight_decay"] == 1e-4 and degradation["config"]["lr"] == 0.1
    assert [degradation["nets"][n]["residual"] for n in NET_NAMES] == [False, False, True, True]


def test_committed_record_shows_degradation_of_plain_nets(degradation):
    plain20 = degradation["nets"]["plain-20"]["history"]["train_error"]
    plain56 = degradation["nets"]["plain-56"]["history"]["train_error"]
    above = sum(b > a for a, b in zip(plain20, plain56))
    assert above > len(plain20) / 2, "plain-56 above plain-20 for most of the run"
    assert plain56[-1] > plain20[-1], "and at the end"


def test_committed_record_shows_residuals_remove_most_of_the_penalty(degradation):
    final = {name: net["final"]["train_error"] for name, net in degradation["nets"].items()}
    plain_gap = final["plain-56"] - final["plain-20"]
    resnet_gap = final["ResNet-56"] - final["ResNet-20"]
    assert resnet_gap <= plain_gap / 3
    assert final["ResNet-56"] < final["plain-56"]
    findings = experiments.degradation_findings(degradation)
    assert findings["degradation"] and findings["residual_removes_most_of_gap"] and findings["resnet56_below_plain56"]
    assert findings == degradation["findings"]


def test_committed_fashion_full_record():
    record = experiments.load_record("fashion-full-resnet20")
    check_schema(record, ["ResNet-20"])
    assert record["dataset"]["name"] == "fashion-mnist"
    assert (record["dataset"]["train"], record["dataset"]["val"], record["dataset"]["test"]) == (55000, 5000, 10000)
    assert record["config"]["keep_best"] and not record["config"]["test_every_epoch"]
    net = record["nets"]["ResNet-20"]
    assert net["history"]["test_error"] == [None] * record["config"]["epochs"]  # test set touched once, at the end
    assert record["test_accuracy"] == pytest.approx(100 - net["final"]["test_error"])
    assert record["mode"] == "full" and record["environment"]["cpu_count"] == 2 and record["environment"]["device"] == "cpu"
    assert record["total_seconds"] <= 30 * 60  # the budget: 30 minutes on 2 CPU cores
    assert record["test_accuracy"] >= 94.0  # the target
    assert net["final"]["best_val_error"] == min(net["history"]["val_error"])
    # the documented command reproduces this recipe
    assert TrainConfig(**record["config"]) == experiments.fashion_full_config(fast=False)


def test_fashion_full_record_was_chosen_on_validation_among_the_candidates():
    chosen = experiments.load_record("fashion-full-resnet20")
    other = experiments.load_record("fashion-full-resnet20-candidate-erasing")
    check_schema(other, ["ResNet-20"])
    assert other["config"]["random_erasing"] == 0.5 and chosen["config"]["random_erasing"] == 0.0
    assert {k: v for k, v in other["config"].items() if k != "random_erasing"} == {
        k: v for k, v in chosen["config"].items() if k != "random_erasing"
    }  # the same recipe otherwise
    assert chosen["nets"]["ResNet-20"]["final"]["best_val_error"] < other["nets"]["ResNet-20"]["final"]["best_val_error"]
    assert other["total_seconds"] <= 30 * 60


def test_load_record_explains_a_missing_name():
    with pytest.raises(FileNotFoundError, match="available"):
        experiments.load_record("no-such-run")


def test_fast_degradation_cli_writes_a_record_and_plots(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(experiments, "RUNS_DIR", tmp_path)
    for split, size in (("train", 128), ("val", 64), ("test", 64)):
        monkeypatch.setitem(data.FAST_SIZES, split, size)  # smaller still than fast mode: just the plumbing
    threads = torch.get_num_threads()
    experiments.main(["degradation", "--fast", "--epochs", "1", "--no-progress", "--save-as", "mini"])
    assert torch.get_num_threads() == threads  # the run's one thread was not left behind
    assert "record written" in capsys.readouterr().out
    record = experiments.load_record("mini")
    check_schema(record, NET_NAMES)
    assert record["mode"] == "fast" and record["dataset"]["train"] == 128
    assert record["environment"]["torch_threads"] == 1  # --fast: one thread, as recorded
    assert {net["history"]["threads"] for net in record["nets"].values()} == {1}
    assert set(record["findings"]) >= {"plain_gap", "resnet_gap", "degradation"}

    fig = plots.plot_degradation(record)
    left, right = fig.axes
    assert left.get_ylabel() == "training error (%)" and "iteration" in left.get_xlabel()
    assert {line.get_linestyle() for line in left.get_lines()} == {"--"}
    assert {line.get_linestyle() for line in right.get_lines()} == {"-"}
    assert len(left.get_legend().get_texts()) == 2 and fig._suptitle.get_text()
    plt.close(fig)
    fig, ax = plt.subplots()
    assert plots.plot_degradation(record, per="epoch", ax=ax) is fig
    assert fig._suptitle is None and "plain (dashed)" in ax.get_title()  # one axes: its own title, no suptitle
    assert len(ax.get_lines()) == 4
    plt.close(fig)
    fig = plots.plot_history(record["nets"]["ResNet-20"]["history"], title="ResNet-20")
    assert fig.axes[0].get_title() == "ResNet-20" and fig.axes[0].get_legend() is not None
    assert fig.axes[0].xaxis.get_major_locator()._integer  # whole epochs on the x axis
    plt.close(fig)
    text = experiments.format_record(record)
    assert "(from" not in text and str(data.DATA_DIR) not in text  # no path of the recording machine


def test_full_mode_asked_for_is_full_mode_even_under_the_test_suite(monkeypatch):
    monkeypatch.setenv("RESNET_LAB_FAST", "1")
    seen = []

    def fake_train(model, splits, config, *, progress, device, threads, description):
        seen.append((description, len(splits.train), config.epochs, threads))
        return History(epoch=[1], train_loss=[1.0], train_error=[50.0], val_error=[50.0], test_error=[50.0], lr=[0.1],
                       seconds=[1.0], final_test_error=50.0, threads=threads)  # fmt: skip

    monkeypatch.setattr(experiments, "train", fake_train)
    record = experiments.run_degradation(fast=False, nets=["ResNet-20"], progress=False)
    assert seen == [("ResNet-20", 9000, 10, torch.get_num_threads())]  # the whole subset, 10 epochs, threads as set
    assert record["mode"] == "full" and record["config"]["epochs"] == 10
    assert record["environment"]["torch_threads"] == torch.get_num_threads()


def test_fast_mode_recipe_is_small():
    assert experiments.degradation_config(fast=True).epochs <= 2
    assert experiments.degradation_config(fast=False) == TrainConfig(epochs=10, schedule="onecycle")


def test_committed_longer_record_reaches_the_papers_full_claim():
    record = experiments.load_record("degradation-long")
    check_schema(record, ["ResNet-20", "ResNet-56"])
    assert record["mode"] == "full" and record["config"]["epochs"] == 20
    final = {name: net["final"]["train_error"] for name, net in record["nets"].items()}
    assert final["ResNet-56"] <= final["ResNet-20"]
    assert record["findings"]["resnet56_at_or_below_resnet20"]


def test_dataset_line_drops_the_recording_machines_path():
    record = experiments.load_record("fashion-full-resnet20")
    assert record["dataset"]["description"].endswith("(from /usr/share/datasets/fashion-mnist)")
    assert experiments.dataset_line(record) == "fashion-mnist: 55000 train / 5000 val / 10000 test images of 1x28x28, 10 classes"
