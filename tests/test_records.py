"""Claims about the committed run records in data/runs/: the paper's findings, as measured, and their recipes."""

from __future__ import annotations

import dataclasses

import pytest

from resnet_lab import experiments
from resnet_lab.training import TrainConfig

NET_NAMES = ["plain-20", "plain-56", "ResNet-20", "ResNet-56"]


@pytest.fixture(scope="module")
def degradation() -> dict:
    return experiments.load_record("degradation")


def test_committed_degradation_record_schema(degradation, check_schema):
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


def test_committed_fashion_full_record(check_schema):
    record = experiments.load_record("fashion-full-resnet20")
    check_schema(record, ["ResNet-20"])
    assert record["dataset"]["name"] == "fashion-mnist"
    assert (record["dataset"]["train"], record["dataset"]["val"], record["dataset"]["test"]) == (55000, 5000, 10000)
    assert record["config"]["keep_best"] and not record["config"]["test_every_epoch"]
    net = record["nets"]["ResNet-20"]
    assert net["history"]["test_error"] == [None] * record["config"]["epochs"]  # test set touched once, at the end
    assert record["test_accuracy"] == pytest.approx(100 - net["final"]["test_error"])
    assert (
        record["mode"] == "full"
        and record["environment"]["cpu_count"] == 2
        and record["environment"]["device"] == "cpu"
    )
    assert record["total_seconds"] <= 30 * 60  # the budget: 30 minutes on 2 CPU cores
    assert record["test_accuracy"] >= 94.0  # the target
    assert net["final"]["best_val_error"] == min(net["history"]["val_error"])
    # the documented command reproduces this recipe
    assert TrainConfig(**record["config"]) == experiments.fashion_full_config(fast=False)


def test_fashion_full_record_was_chosen_on_validation_among_the_candidates(check_schema):
    chosen = experiments.load_record("fashion-full-resnet20")
    other = experiments.load_record("fashion-full-resnet20-candidate-erasing")
    check_schema(other, ["ResNet-20"])
    assert other["config"]["random_erasing"] == 0.5 and chosen["config"]["random_erasing"] == 0.0
    assert {k: v for k, v in other["config"].items() if k != "random_erasing"} == {
        k: v for k, v in chosen["config"].items() if k != "random_erasing"
    }  # the same recipe otherwise
    # the rule of commit 256f087: the lower best validation error, a tie to C (crop + flip, the simpler)
    assert experiments.choose_on_validation({"C": chosen, "E": other}) == "C"
    assert other["total_seconds"] <= 30 * 60


def test_committed_longer_record_reaches_the_papers_full_claim(check_schema):
    record = experiments.load_record("degradation-long")
    check_schema(record, ["ResNet-20", "ResNet-56"])
    assert record["mode"] == "full" and record["config"]["epochs"] == 20
    final = {name: net["final"]["train_error"] for name, net in record["nets"].items()}
    assert final["ResNet-56"] <= final["ResNet-20"]
    assert record["findings"]["resnet56_at_or_below_resnet20"]


def test_dataset_line_drops_the_recording_machines_path():
    record = experiments.load_record("fashion-full-resnet20")
    assert record["dataset"]["description"].endswith("(from /usr/share/datasets/fashion-mnist)")
    assert (
        experiments.dataset_line(record)
        == "fashion-mnist: 55000 train / 5000 val / 10000 test images of 1x28x28, 10 classes"
    )


def test_three_seed_degradation_record_and_the_findings_that_hold_in_every_seed(check_schema):
    """The committed 3-seed record (notebook 07): the claims stated as findings hold in every seed."""
    seeds = experiments.load_record("degradation-seeds")
    assert seeds["mode"] == "full" and seeds["seeds"] == [0, 1, 2]
    for seed, run in seeds["runs"].items():
        check_schema(run, NET_NAMES)
        assert run["seed"] == int(seed) and run["config"]["epochs"] == 10 and run["dataset"]["train"] == 9000
        final = {name: net["final"]["train_error"] for name, net in run["nets"].items()}
        assert final["plain-56"] > final["plain-20"] + 5  # degradation, by 9-20 points
        assert final["ResNet-56"] - final["ResNet-20"] < (final["plain-56"] - final["plain-20"]) / 5
        assert final["ResNet-56"] > final["ResNet-20"]  # at 10 epochs the deeper ResNet is not yet below
    claims = seeds["findings"]["claims"]
    for key in ("degradation", "residual_removes_most_of_gap", "resnet56_below_plain56", "resnet_gap_below_plain_gap"):
        assert claims[key]["every_seed"], key
    assert claims["resnet56_at_or_below_resnet20"]["holds_in_seeds"] == []


def test_12_minute_candidates_follow_their_committed_plan(check_schema):
    """data/runs/plans/fashion-full-12min.md: two 7-epoch candidates, chosen on validation, within 720 s."""
    a, b = experiments.load_record("fashion-full-12min-a"), experiments.load_record("fashion-full-12min-b")
    levers = {"label_smoothing": 0.1, "tta_flip": True}
    for record in (a, b):
        check_schema(record, ["ResNet-20"])
        assert (record["dataset"]["train"], record["dataset"]["val"], record["dataset"]["test"]) == (55000, 5000, 10000)
        assert record["environment"]["cpu_count"] == 2 and record["environment"]["torch_threads"] == 2
        assert record["environment"]["precision"] == "fp32"  # the CPU has no native bf16
        assert record["total_seconds"] <= 12 * 60
        net = record["nets"]["ResNet-20"]
        assert net["history"]["test_error"] == [None] * 7  # test set touched once, at the end
        assert net["final"]["best_val_error"] == min(net["history"]["val_error"])
    plan = dataclasses.replace(experiments.fashion_full_config(), epochs=7)
    assert TrainConfig(**a["config"]) == plan
    assert TrainConfig(**b["config"]) == dataclasses.replace(plan, **levers)
    chosen = experiments.choose_on_validation({"A": a, "B": b}, budget_seconds=12 * 60, tie_points=0.02)
    assert chosen == "B"  # as notebook 08 and the README report
    # the 25-minute budget: the chosen levers for 14 epochs
    long = experiments.load_record("fashion-full-25min")
    check_schema(long, ["ResNet-20"])
    assert TrainConfig(**long["config"]) == dataclasses.replace(plan, epochs=14, **levers)
    # planned for 25 minutes from A's pace; it took 32 s more (flip TTA), as the README and notebook 08 say
    assert 25 * 60 < long["total_seconds"] <= 26 * 60
    # the reported outcome: the 12-minute target (>= 94.0 %) is not met, nor by the 14-epoch run
    assert b["test_accuracy"] == pytest.approx(92.57) and long["test_accuracy"] == pytest.approx(93.69)
