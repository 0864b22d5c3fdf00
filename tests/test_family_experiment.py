"""The family comparison: the rule, merging part-records, a one-net fast run, and the committed record."""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import pytest

from resnet_lab import experiments, run_records
from resnet_lab import family_experiment as family
from resnet_lab.training import TrainConfig

FIVE = list(family.FAMILY_NETS)


def fake_record(val_errors: dict[str, float], n_val: int = 1000) -> dict:
    nets = {
        name: {
            "name": name,
            "parameters": 1000,
            "macs": 10**6,
            "seconds": 1.0,
            "final": {"train_error": err, "val_error": err, "test_error": None},
        }
        for name, err in val_errors.items()
    }
    return {
        "experiment": "family",
        "mode": "full",
        "seed": 0,
        "config": {"epochs": 5},
        "dataset": {"val": n_val},
        "nets": nets,
        "total_seconds": 2.0,
        "created": "2026-01-01T00:00:00+00:00",
        "notes": "",
        "complete": True,
    }


def test_standard_error_is_binomial():
    assert family.standard_error(10.0, 1000) == pytest.approx(100 * math.sqrt(0.1 * 0.9 / 1000))
    assert family.standard_error(0.0, 1000) >= 0


def test_rule_separates_only_gaps_beyond_two_standard_errors():
    findings = family.family_findings(fake_record({"a": 10.0, "b": 11.0, "c": 16.0}))
    assert findings["ranking"] == ["a", "b", "c"]
    assert findings["spread"] == 6.0
    # SE(10%) = 0.95, SE(11%) = 0.99: a 1-point gap is < 2 x 1.37; 5-6 points are beyond it
    assert [pair[:2] for pair in findings["separable"]] == [["a", "c"], ["b", "c"]]
    assert not findings["best_separable_from_all"]
    assert family.family_findings(fake_record({"a": 5.0, "b": 12.0, "c": 16.0}))["best_separable_from_all"]


def test_merge_records_joins_parts_in_the_given_order():
    a, b = fake_record({"WRN-16-2": 10.0}), fake_record({"ResNet-20": 12.0, "SE-ResNet-20": 11.0})
    merged = family.merge_records([a, b], order=FIVE, notes="joined")
    assert list(merged["nets"]) == ["ResNet-20", "SE-ResNet-20", "WRN-16-2"]
    assert merged["total_seconds"] == 4.0 and merged["complete"] and merged["notes"].startswith("joined")
    assert merged["findings"]["ranking"][0] == "WRN-16-2"


def test_merge_records_refuses_different_runs_and_repeated_nets():
    a, b = fake_record({"ResNet-20": 10.0}), fake_record({"WRN-16-2": 11.0})
    other = copy.deepcopy(b)
    other["config"]["epochs"] = 6
    with pytest.raises(ValueError, match="differ in 'config'"):
        family.merge_records([a, other])
    with pytest.raises(ValueError, match="more than one record"):
        family.merge_records([a, copy.deepcopy(a)])


def test_unknown_net_is_named():
    with pytest.raises(ValueError, match="unknown nets"):
        family.run_family(fast=True, nets=["ResNet-21"])


def test_fast_run_of_one_net_writes_a_record(tmp_path, monkeypatch, check_schema):
    monkeypatch.setattr(run_records, "RUNS_DIR", tmp_path)
    record = family.run_family(
        fast=True, nets=["SE-ResNet-20"], config=TrainConfig(epochs=1), progress=False, save_as="family-test"
    )
    check_schema(record, ["SE-ResNet-20"])
    assert record["complete"] and record["mode"] == "fast" and record["environment"]["torch_threads"] == 1
    net = record["nets"]["SE-ResNet-20"]
    assert net["parameters"] == 271_807 and net["macs"] > 30_000_000
    assert experiments.load_record(str(tmp_path / "family-test.json"))["nets"].keys() == {"SE-ResNet-20"}
    assert "SE-ResNet-20" in family.format_family(record)


def test_recipe_is_the_committed_plan():
    full, fast = family.family_config(False), family.family_config(True)
    assert (full.epochs, full.schedule, full.lr, full.batch_size, full.seed) == (5, "warmup_cosine", 0.1, 128, 0)
    assert not full.keep_best and not full.test_every_epoch and fast.epochs == 1
    assert experiments.RECIPES["family"](False) == full


@pytest.fixture(scope="module")
def committed() -> dict:
    return experiments.load_record("family")


def test_committed_family_record(committed, check_schema):
    check_schema(committed, FIVE)
    assert committed["experiment"] == "family" and committed["mode"] == "full" and committed["complete"]
    assert committed["dataset"]["name"] == "fashion-mnist-subset" and committed["dataset"]["val"] == 1000
    # Recorded with the full recipe (5 epochs), all five nets in one process
    assert TrainConfig(**committed["config"]) == replace(family.family_config(False), seed=0)
    assert committed["seed"] == 0
    assert committed["findings"] == family.family_findings(committed)  # the rule, re-applied, gives the same
    assert committed["nets"]["ResNet-20"]["parameters"] == 269_434
    assert committed["nets"]["WRN-16-2"]["parameters"] == 692_122 - 288  # one input channel: 16 x 2 x 9 fewer
