"""The --seeds machinery of the degradation experiment: runs per seed, recorded, reused, weights saved."""

from __future__ import annotations

import copy

import pytest

from resnet_lab import experiments, weights
from resnet_lab.training import TrainConfig


def test_seeds_are_run_recorded_and_reused(tmp_path, monkeypatch):
    monkeypatch.setattr(experiments, "RUNS_DIR", tmp_path / "runs")
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

