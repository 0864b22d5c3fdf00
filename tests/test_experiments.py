"""The experiments: the CLI writes a record, full mode is full mode, plots and tables of a record."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from resnet_lab import data, experiments, plots, run_records  # noqa: E402
from resnet_lab.training import History, TrainConfig  # noqa: E402

NET_NAMES = ["plain-20", "plain-56", "ResNet-20", "ResNet-56"]


@pytest.fixture(scope="module")
def degradation() -> dict:
    """The committed record: real curves of all four nets to plot and format, without training anything."""
    return experiments.load_record("degradation")


def test_load_record_explains_a_missing_name():
    with pytest.raises(FileNotFoundError, match="available"):
        experiments.load_record("no-such-run")


def test_fast_cli_trains_and_writes_a_record(tmp_path, monkeypatch, capsys, check_schema):
    monkeypatch.setattr(run_records, "RUNS_DIR", tmp_path)
    for split, size in (("train", 128), ("val", 64), ("test", 64)):
        monkeypatch.setitem(data.FAST_SIZES, split, size)  # smaller still than fast mode: just the plumbing
    threads = torch.get_num_threads()
    experiments.main(["degradation", "--fast", "--epochs", "1", "--nets", "plain-20", "ResNet-20", "--no-progress",
                      "--save-as", "mini"])  # fmt: skip
    assert torch.get_num_threads() == threads  # the run's one thread was not left behind
    out = capsys.readouterr().out
    assert "record written" in out and "plain-20" in out
    record = experiments.load_record("mini")
    check_schema(record, ["plain-20", "ResNet-20"])
    assert record["mode"] == "fast" and record["dataset"]["train"] == 128 and record["config"]["epochs"] == 1
    assert record["environment"]["torch_threads"] == 1  # --fast: one thread, as recorded
    assert {net["history"]["threads"] for net in record["nets"].values()} == {1}
    assert record["findings"]["final_train_error"].keys() == {"plain-20", "ResNet-20"}  # no 56-layer claims


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


def test_plot_degradation_per_iteration_and_per_epoch(degradation):
    fig = plots.plot_degradation(degradation)
    left, right = fig.axes
    assert left.get_ylabel() == "training error (%)" and "iteration" in left.get_xlabel()
    assert {line.get_linestyle() for line in left.get_lines()} == {"--"}
    assert {line.get_linestyle() for line in right.get_lines()} == {"-"}
    assert len(left.get_legend().get_texts()) == 2 and fig._suptitle.get_text()
    plt.close(fig)
    fig, ax = plt.subplots()
    assert plots.plot_degradation(degradation, per="epoch", ax=ax) is fig
    assert fig._suptitle is None and "plain (dashed)" in ax.get_title()  # one axes: its own title, no suptitle
    assert len(ax.get_lines()) == 4
    plt.close(fig)


def test_plot_history(degradation):
    fig = plots.plot_history(degradation["nets"]["ResNet-20"]["history"], title="ResNet-20")
    assert fig.axes[0].get_title() == "ResNet-20" and fig.axes[0].get_legend() is not None
    assert fig.axes[0].xaxis.get_major_locator()._integer  # whole epochs on the x axis
    plt.close(fig)


def test_format_record(degradation):
    text = experiments.format_record(degradation)
    assert text.splitlines()[0].startswith("degradation (full mode) on fashion-mnist-subset: 9000 train")
    assert [line.split()[0] for line in text.splitlines()[2:]] == NET_NAMES
    assert "(from" not in text and str(data.DATA_DIR) not in text  # no path of the recording machine


def test_fast_mode_recipe_is_small():
    assert experiments.degradation_config(fast=True).epochs <= 2
    assert experiments.degradation_config(fast=False) == TrainConfig(epochs=10, schedule="onecycle")


def test_cli_passes_the_training_levers_to_the_recipe(monkeypatch):
    seen = {}

    def fake_run(*, fast, config, **kwargs):
        seen["config"] = config
        raise SystemExit(0)  # stop before printing a record

    monkeypatch.setattr(experiments, "run_fashion_full", fake_run)
    with pytest.raises(SystemExit):
        experiments.main(["fashion-full", "--epochs", "12", "--batch-size", "256", "--lr", "0.2", "--label-smoothing",
                          "0.1", "--ema-decay", "0.999", "--tta-flip", "--compile", "--eval-every", "3",
                          "--channels-last", "on"])  # fmt: skip
    c = seen["config"]
    assert (c.epochs, c.batch_size, c.lr, c.label_smoothing, c.ema_decay) == (12, 256, 0.2, 0.1, 0.999)
    assert c.tta_flip and c.compile and c.eval_every == 3 and c.channels_last is True
    # the recipe's other fields stay the fashion-full recipe's
    assert (c.momentum, c.weight_decay, c.keep_best) == (0.9, 1e-4, True)


def _candidate(best_val_error: float, seconds: float, test_error: float = 5.0) -> dict:
    final = {"best_val_error": best_val_error, "test_error": test_error}
    return {"total_seconds": seconds, "nets": {"ResNet-20": {"final": final}}}


def test_choose_on_validation_keeps_the_simplest_within_the_tie_and_drops_runs_over_budget():
    choose = experiments.choose_on_validation
    assert choose({"A": _candidate(7.62, 600), "B": _candidate(7.60, 600)}, tie_points=0.02) == "A"  # a tie
    assert choose({"A": _candidate(7.62, 600), "B": _candidate(7.58, 600)}, tie_points=0.02) == "B"
    assert choose({"A": _candidate(7.0, 600), "B": _candidate(7.5, 600)}) == "A"
    # the test error plays no part
    assert choose({"A": _candidate(7.6, 600, test_error=1.0), "B": _candidate(7.0, 600, test_error=9.0)}) == "B"
    # over the budget: out, however good
    assert choose({"A": _candidate(7.6, 700), "B": _candidate(5.0, 721)}, budget_seconds=720) == "A"
    with pytest.raises(ValueError, match="no candidate finished within 720"):
        choose({"A": _candidate(7.6, 730)}, budget_seconds=720)
    with pytest.raises(ValueError, match="at least one"):
        choose({})
