"""The --seeds machinery of the degradation experiment: runs per seed, recorded, reused, weights saved."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from resnet_lab import experiments, run_records, weights
from resnet_lab.training import TrainConfig


def test_seeds_are_run_recorded_and_reused(tmp_path, monkeypatch):
    monkeypatch.setattr(run_records, "RUNS_DIR", tmp_path / "runs")
    config = TrainConfig(epochs=1)
    record = experiments.run_degradation_seeds([3, 4], fast=True, config=config, nets=["plain-20"], progress=False,
                                               save_as="tiny", save_weights=tmp_path / "w")  # fmt: skip
    assert record["seeds"] == [3, 4] and [r["seed"] for r in record["runs"].values()] == [3, 4]
    assert (tmp_path / "runs" / "tiny.json").is_file() and (tmp_path / "runs" / "tiny-4.json").is_file()
    weights.write_checksums(tmp_path / "w")
    net = weights.load_degradation_net("plain-20", seed=4, root=tmp_path / "w")
    assert weights.provenance("plain-20", 4, tmp_path / "w")["record"] == "tiny-4" and not net.training
    assert record["findings"]["numbers"]["final_train_error/plain-20"]["per_seed"].keys() == {"3", "4"}

    def no_training(**kwargs):
        raise AssertionError("a recorded seed was trained again")

    monkeypatch.setattr(experiments, "run_degradation", no_training)
    again = experiments.run_degradation_seeds([3, 4], fast=True, config=config, nets=["plain-20"], save_as="tiny")
    assert again["runs"] == record["runs"]
    changed = copy.deepcopy(config)
    changed.lr = 0.05
    with pytest.raises(AssertionError, match="trained again"):  # another recipe is not reused
        experiments.run_degradation_seeds([3], fast=True, config=changed, nets=["plain-20"], save_as="tiny")


def test_figure6_over_seeds_draws_the_mean_and_a_range_band():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    from resnet_lab import plots

    def run(seed: int, plain20: list[float]) -> dict:
        history = {"epoch": [1, 2, 3], "train_error": plain20, "step": [], "step_train_error": []}
        nets = {name: {"name": name, "depth": depth, "residual": residual, "history": history,
                       "final": {"train_error": plain20[-1], "val_error": 1.0, "test_error": 1.0}, "seconds": 1.0}
                for name, depth, residual in experiments.DEGRADATION_NETS}  # fmt: skip
        return {"seed": seed, "nets": nets, "dataset": {"name": "toy"}}

    record = {"runs": {"0": run(0, [50.0, 30.0, 20.0]), "1": run(1, [70.0, 40.0, 10.0])}, "mode": "full"}
    fig = plots.plot_degradation_seeds(record, per="epoch")
    left = fig.axes[0]
    line = next(line for line in left.get_lines() if line.get_label().startswith("plain-20"))
    assert list(line.get_ydata()) == [60.0, 35.0, 15.0]
    assert "final 15.0% (10.0-20.0)" in line.get_label()
    band = next(c for c in left.collections if isinstance(c, PolyCollection))
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.min() == 10.0 and ys.max() == 70.0
    assert fig._suptitle is not None and "2 seeds" in fig._suptitle.get_text()
    plt.close(fig)


NET_NAMES = ["plain-20", "plain-56", "ResNet-20", "ResNet-56"]


def test_shipped_weights_are_the_four_seed0_nets_with_checksums():
    sums = weights.read_checksums()
    assert sorted(sums) == [f"degradation-seed0/{n}.pt" for n in sorted(NET_NAMES)]
    assert sum(weights.weights_path(n).stat().st_size for n in NET_NAMES) < 6_000_000  # fp16: ~2 bytes per parameter
    for name in NET_NAMES:
        assert weights.sha256_of(weights.weights_path(name)) == sums[f"degradation-seed0/{name}.pt"]
        p = weights.provenance(name)
        assert p["net"] == name and p["seed"] == 0 and p["dtype"] == "float16" and p["mode"] == "full"
        assert TrainConfig(**p["config"]) == replace(
            experiments.degradation_config(fast=False), seed=0
        )  # old name "onecycle" -> warmup_cosine
        assert p["architecture"]["description"].startswith(name)


def test_shipped_nets_keep_their_recorded_test_error():
    """fp16 storage and fp32 evaluation give the test error recorded at the end of training (bf16 autocast) within 0.5 points."""
    from resnet_lab import data, probes

    splits = data.load_fashion_mnist("subset", seed=0, fast=False)
    x, y = probes.fixed_images(splits.test, splits)
    for name in ("ResNet-20", "plain-20"):
        model = weights.load_degradation_net(name)
        assert abs(probes.error(model, x, y) - weights.provenance(name)["test_error"]) < 0.5


def test_a_seed_recorded_before_trainconfig_grew_a_field_is_reused(tmp_path, monkeypatch):
    """Records keep their recipe as it was; a field added to TrainConfig later counts as its default."""
    monkeypatch.setattr(run_records, "RUNS_DIR", tmp_path)
    config = replace(experiments.RECIPES["degradation"](True), seed=5)
    old_config = {k: v for k, v in vars(config).items() if k not in ("label_smoothing", "ema_decay", "eval_every")}
    experiments.save_record(
        {"schema": experiments.SCHEMA, "mode": "fast", "config": old_config, "seed": 5, "findings": {}}, "old-5"
    )

    def no_training(**kwargs):
        raise AssertionError("a recorded seed was trained again")

    monkeypatch.setattr(experiments, "run_degradation", no_training)
    monkeypatch.setattr(experiments, "seed_findings", lambda runs: {})
    record = experiments.run_degradation_seeds([5], fast=True, save_as="old")
    assert record["runs"]["5"]["config"] == old_config
