"""scale_experiment: the arms' recipe and nets, and the rule, table and figure on small synthetic records."""

from __future__ import annotations

import json
from dataclasses import asdict

import matplotlib
import pytest
import torch

from resnet_lab import experiments, scale_experiment
from resnet_lab.fixup import FixupCifarResNet
from resnet_lab.models import cifar_resnet
from resnet_lab.runtime import seed_everything

matplotlib.use("Agg")


def test_arm_recipe_is_the_seeds_records_recipe_in_fp32():
    for seed in (0, 1, 2):
        baseline = json.loads((experiments.RUNS_DIR / f"degradation-seeds-{seed}.json").read_text())
        assert baseline["environment"]["precision"] == "fp32" and baseline["environment"]["torch_threads"] == 1
        config = asdict(scale_experiment.arm_config(seed))
        recorded = {**config, **baseline["config"]}  # fields added to TrainConfig later keep their defaults
        differing = {k for k in config if config[k] != recorded[k]}
        assert differing == {"precision"} and baseline["config"]["precision"] == "auto"
        assert config["precision"] == "fp32" and config["seed"] == seed


def test_build_arm_starts_plain_arms_from_the_baseline_init_and_measures_the_probe():
    x, y = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(0)), torch.arange(8)
    model, details = scale_experiment.build_arm("layer-lr", 3, x, y, weight_decay=1e-4)
    seed_everything(3)
    baseline = cifar_resnet(56, in_channels=1, residual=False)
    for a, b in zip(model.state_dict().values(), baseline.state_dict().values()):
        assert torch.equal(a, b)
    assert details["at_init"] == details["baseline_at_init"]
    assert details["at_init"]["first_over_last"] == pytest.approx(
        details["at_init"]["first_conv"] / details["at_init"]["last_conv"]
    )
    assert set(details["lr_factors"]) == {k for k, p in model.named_parameters() if p.dim() > 1}
    fixup_net, fixup_details = scale_experiment.build_arm("fixup", 3, x, y, weight_decay=1e-4)
    assert isinstance(fixup_net, FixupCifarResNet)
    assert fixup_details["at_init"]["first_conv"] == 0.0 and fixup_details["at_init"]["first_over_last"] is None
    with pytest.raises(ValueError, match="unknown arm"):
        scale_experiment.build_arm("warmup", 0, x, y, weight_decay=1e-4)


def test_fixup_lr10_trains_the_scalars_at_a_tenth_of_the_learning_rate_and_the_rest_at_the_full_one():
    """Two SGD steps (momentum, weight decay) through the arm's hooks equal SGD with parameter groups that put
    every *bias* / *scale* parameter at lr/10, as in Zhang et al.'s CIFAR code."""
    x, y = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(0)), torch.arange(8)
    hooked, details = scale_experiment.build_arm("fixup-lr10", 3, x, y, weight_decay=1e-4)
    plain, _ = scale_experiment.build_arm("fixup", 3, x, y, weight_decay=1e-4)
    scalars = {n for n, _ in plain.named_parameters() if "bias" in n or "scale" in n}
    assert set(details["lr_factors"]) == scalars and set(details["lr_factors"].values()) == {0.1}
    assert "fc.bias" in scalars and "layer1.0.scale" in scalars and "fc.weight" not in scalars
    opt_hooked = torch.optim.SGD(hooked.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    groups = [
        {"params": [p for n, p in plain.named_parameters() if n in scalars], "lr": 0.01},
        {"params": [p for n, p in plain.named_parameters() if n not in scalars]},
    ]
    opt_plain = torch.optim.SGD(groups, lr=0.1, momentum=0.9, weight_decay=1e-4)
    for _ in range(3):
        for model, opt in ((hooked, opt_hooked), (plain, opt_plain)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    for (name, a), b in zip(hooked.named_parameters(), plain.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7, msg=name)
    assert any(float(b.abs().max()) > 0 for n, b in plain.named_parameters() if n in scalars)  # they did move


def _record(curve: list[float], net: str = "x", diverged: bool = False) -> dict:
    if diverged:
        return {"nets": {}, "diverged": "loss nan"}
    return {"nets": {net: {"final": {"train_error": curve[-1]}, "history": {"train_error": curve}}}}


def _baseline(p20: float, p56: float, r20: float, r56: float) -> dict:
    return {"nets": {n: _record([e + 10, e], n)["nets"][n] for n, e in
                     zip(("plain-20", "plain-56", "ResNet-20", "ResNet-56"), (p20, p56, r20, r56))}}  # fmt: skip


@pytest.fixture
def synthetic():
    baselines = {"0": _baseline(13.0, 23.0, 11.0, 12.0), "1": _baseline(12.0, 32.0, 11.5, 12.5)}
    arms = {
        "0": {"layer-lr": _record([40, 20.0]), "lsuv": _record([40, 13.0]), "fixup": _record([30, 10.0])},
        "1": {"layer-lr": _record([40, 30.0]), "lsuv": _record([40, 11.5]), "fixup": _record([], diverged=True)},
    }
    return arms, baselines


def test_findings_apply_the_plans_rule_per_seed(synthetic):
    arms, baselines = synthetic
    f = scale_experiment.scale_findings(arms, baselines)
    s0 = f["per_seed"]["0"]["arms"]
    assert s0["lsuv"]["closes_gap"] is True  # 13.0 <= plain-20's 13.0: "at or below"
    assert s0["layer-lr"]["closes_gap"] is False and s0["layer-lr"]["helps"] is True  # 20 < 23
    assert s0["fixup"]["minus_plain20"] == -3.0 and s0["fixup"]["minus_resnet56"] == -2.0
    assert f["per_seed"]["1"]["arms"]["fixup"] == {
        "train_error": None, "closes_gap": False, "helps": False,
        "minus_plain20": None, "minus_plain56": None, "minus_resnet56": None,
    }  # fmt: skip
    assert f["arms"]["lsuv"]["verdict"] == "closes the gap in every seed"
    assert f["arms"]["layer-lr"]["verdict"] == "closes the gap in no seed"
    assert f["arms"]["layer-lr"]["helps"] == {"holds_in_seeds": ["0", "1"], "every_seed": True, "no_seed": False}
    assert f["arms"]["fixup"]["verdict"] == "seeds disagree"  # closes in 0, diverged in 1
    with pytest.raises(ValueError, match="no baseline"):
        scale_experiment.scale_findings(arms, {"0": baselines["0"]})


def test_table_gives_each_seed_and_mean_range(synthetic):
    table = scale_experiment.format_scale_table(scale_experiment.scale_findings(*synthetic))
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["net", "seed", "0"]
    assert lines[2].split() == ["plain-56", "23.00", "32.00", "27.50", "[23.00-32.00]"]
    assert lines[6].split() == ["plain-56", "LSUV", "13.00", "11.50", "12.25", "[11.50-13.00]", "0,1", "/", "0,1"]
    assert lines[5].split()[-3:] == ["none", "/", "0,1"]  # layer-lr: below plain-56, never at plain-20
    fixup_row = lines[7]
    assert "div." in fixup_row and "10.00 [10.00-10.00]*" in fixup_row


def test_figure_draws_mean_and_band_per_arm_and_baseline(synthetic):
    fig = scale_experiment.plot_scale_experiment(*synthetic)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["plain-20 (baseline), 2 seeds", "plain-56 (baseline), 2 seeds", "ResNet-56 (baseline), 2 seeds",
                      "plain-56 layer-lr, 2 seeds", "plain-56 LSUV, 2 seeds", "Fixup ResNet-56, 1 seed"]  # fmt: skip
    layer_lr = ax.get_lines()[3]
    assert list(layer_lr.get_ydata()) == [40.0, 25.0]  # the mean of seeds 0 and 1
    assert len(ax.collections) == 6 and ax.get_xlabel() == "epoch" and "training error" in ax.get_ylabel()
    matplotlib.pyplot.close(fig)
