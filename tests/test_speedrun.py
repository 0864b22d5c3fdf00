"""The speedrun ablation runner (resnet_lab/speedrun.py): arms and their configs, the plan's rule on synthetic
records, the table and the figure, and tiny runs (test set withheld, read once) in a temporary data/runs."""

from __future__ import annotations

import dataclasses
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from resnet_lab import experiments, run_records, speedrun, training  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py; tiny_splits too


# ---------------------------------------------------------------------------------------------------------------
# arms and configs


def test_the_baseline_is_the_degradation_recipe_in_fp32_without_reading_the_test_set():
    config = speedrun.recipe("subset", seed=2)
    expected = dataclasses.replace(experiments.degradation_config(), seed=2, precision="fp32", test_every_epoch=False)
    assert config == expected and config.epochs == 10 and not config.keep_best
    full = speedrun.recipe("full", seed=0)
    assert full.epochs == 12 and full.keep_best and not full.test_every_epoch and full.precision == "fp32"
    assert (full.lr, full.batch_size, full.schedule) == (0.1, 128, "warmup_cosine")
    with pytest.raises(ValueError, match="data must be"):
        speedrun.recipe("cifar")


@pytest.mark.parametrize("data_kind,epochs", [("subset", 10), ("full", 12), ("full", 16)])
def test_every_lever_arm_makes_a_valid_config_that_changes_only_its_fields(data_kind, epochs):
    base = speedrun.recipe(data_kind, 0, epochs)
    for arm in speedrun.LEVERS:
        config, levers, changes = speedrun.arm_config(arm, 0, data_kind, epochs)
        assert levers == [arm] and changes
        different = {f.name for f in dataclasses.fields(config) if getattr(config, f.name) != getattr(base, f.name)}
        assert different == set(changes), arm
    assert speedrun.arm_config("baseline", 0, data_kind, epochs)[0] == base


def test_lever_settings():
    assert speedrun.lever_changes(["progressive"], 10) == {"progressive_resize": (3, 20)}
    assert speedrun.lever_changes(["progressive"], 12) == {"progressive_resize": (4, 20)}
    assert speedrun.lever_changes(["batch256"], 10) == {"batch_size": 256, "lr": 0.2}
    assert speedrun.lever_changes(["tta-translate"], 10) == {"tta_flip": True, "tta_translate": 1}


def test_combo_merges_levers_and_refuses_alternatives_and_unknown_names():
    config, levers, _ = speedrun.arm_config("combo", 1, combo=["ema", "nesterov", "tta-flip"])
    assert (config.ema_decay, config.nesterov, config.tta_flip, config.seed) == (0.99, True, True, 1)
    assert levers == ["ema", "nesterov", "tta-flip"]
    with pytest.raises(ValueError, match="alternatives"):
        speedrun.arm_config("combo", 0, combo=["tta-flip", "tta-translate"])
    with pytest.raises(ValueError, match="unknown lever 'mixup'"):
        speedrun.arm_config("combo", 0, combo=["mixup"])
    with pytest.raises(ValueError, match="needs its levers"):
        speedrun.arm_config("combo", 0)
    with pytest.raises(ValueError, match="for the combo arm"):
        speedrun.arm_config("ema", 0, combo=["nesterov"])
    with pytest.raises(ValueError, match="unknown arm"):
        speedrun.arm_config("mixup", 0)


def test_record_names():
    assert speedrun.record_name("ema", 2) == "speedrun-ema-2"
    assert speedrun.record_name("combo", 0, "full", 12) == "speedrun-full-combo-12-0"
    assert speedrun.record_name("baseline", 0, "subset", fast=True) == "speedrun-baseline-0-fast"


# ---------------------------------------------------------------------------------------------------------------
# the rule, the table and the figure on synthetic records


def synthetic(arm: str, seed: int, val_errors: list[float] | None, seconds: float = 30.0) -> dict:
    """A record as run_arm writes it: one net, per-epoch validation errors and seconds (None: diverged)."""
    record = {"schema": run_records.SCHEMA, "seed": seed, "nets": {},
              "arm": {"key": arm, "levers": [] if arm == "baseline" else [arm]}}  # fmt: skip
    if val_errors is None:
        record["diverged"] = "the loss became nan"
        return record
    history = {"epoch": list(range(1, len(val_errors) + 1)), "val_error": val_errors,
               "seconds": [seconds] * len(val_errors), "train_loss": [1.0 + seed] * len(val_errors)}  # fmt: skip
    final = {"val_error": val_errors[-1], "best_val_error": min(val_errors), "test_error": None}
    record["nets"]["ResNet-20"] = {"history": history, "final": final}
    return record


def synthetic_ablation() -> dict:
    finals = {
        "baseline": [10.0, 11.0, 12.0],
        "ema": [9.5, 10.8, 11.9],  # below in every seed: helps
        "nesterov": [10.5, 10.9, 12.3],  # mixed: unclear
        "bn-lr": [10.2, 11.0, 12.5],  # a tie in seed 1: unclear
        "batch256": [None, 11.5, 12.1],  # diverged in seed 0, above in the others: hurts
        "tta-flip": [9.8, 10.9, 11.7],  # helps, mean 10.8
        "tta-translate": [9.9, 10.7, 11.6],  # helps, mean 10.733: the lower of the two alternatives
        "dirac": [9.0, 10.0],  # two seeds only: incomplete
    }
    return {
        arm: {s: synthetic(arm, s, None if v is None else [v + 5, v + 1, v], 30.0 + s) for s, v in enumerate(values)}
        for arm, values in finals.items()
    }


def test_verdicts_follow_the_plans_rule():
    assert speedrun.verdict([-0.1, -0.2, -0.3]) == "helps"
    assert speedrun.verdict([0.1, None, 0.3]) == "hurts"
    assert speedrun.verdict([-0.1, 0.0, -0.3]) == "unclear"
    assert speedrun.verdict([-0.1, 0.2, -0.3]) == "unclear"
    assert speedrun.verdict([-0.1, -0.2]) == "incomplete"


def test_ablation_findings_pair_each_seed_with_its_baseline():
    findings = speedrun.ablation_findings(synthetic_ablation())
    ema = findings["ema"]
    assert ema["val_error"] == {0: 9.5, 1: 10.8, 2: 11.9} and ema["verdict"] == "helps"
    assert ema["minus_baseline"] == pytest.approx({0: -0.5, 1: -0.2, 2: -0.1})
    assert ema["median_minus_baseline"] == pytest.approx(-0.2)
    assert (ema["median"], ema["min"], ema["max"]) == (10.8, 9.5, 11.9) and ema["median_seconds"] == 31.0 * 3
    verdicts = {arm: f["verdict"] for arm, f in findings.items()}
    assert verdicts == {"baseline": "baseline", "ema": "helps", "nesterov": "unclear", "bn-lr": "unclear",
                        "batch256": "hurts", "tta-flip": "helps", "tta-translate": "helps", "dirac": "incomplete"}  # fmt: skip
    assert findings["batch256"]["val_error"][0] is None and findings["batch256"]["minus_baseline"][0] is None
    assert findings["ema"]["same_training_as_baseline"] == {0: True, 1: True, 2: True}
    assert findings["batch256"]["same_training_as_baseline"] == {0: False, 1: True, 2: True}  # 0 diverged
    records = synthetic_ablation()
    records["nesterov"][1]["nets"]["ResNet-20"]["history"]["train_loss"][0] = 0.5
    assert speedrun.ablation_findings(records)["nesterov"]["same_training_as_baseline"][1] is False
    with pytest.raises(ValueError, match="no baseline"):
        speedrun.ablation_findings({"ema": synthetic_ablation()["ema"]})


def test_the_combo_takes_every_helping_lever_and_the_better_of_two_alternatives():
    findings = speedrun.ablation_findings(synthetic_ablation())
    assert speedrun.choose_combo(findings) == ["ema", "tta-translate"]
    findings["tta-translate"]["mean"] = findings["tta-flip"]["mean"]  # a tie: the first listed
    assert speedrun.choose_combo(findings) == ["ema", "tta-flip"]
    assert speedrun.choose_combo({"baseline": findings["baseline"]}) == []


def test_the_table_shows_seeds_spread_paired_differences_and_verdicts():
    table = speedrun.format_ablation(speedrun.ablation_findings(synthetic_ablation()))
    lines = table.splitlines()
    assert "seed 0" in lines[0] and "minus baseline" in lines[0]
    ema = next(line for line in lines if line.startswith("ema"))
    assert "10.80 [9.50-11.90]" in ema and "-0.50" in ema and ema.endswith("helps (trains as baseline)")
    assert next(line for line in lines if line.startswith("batch256")).split()[1] == "-"


def test_the_figure_draws_error_against_epoch_and_seconds_with_a_band_per_arm():
    records = synthetic_ablation()
    figure = speedrun.plot_ablation(records, ["baseline", "ema", "batch256"])
    by_epoch, by_seconds = figure.axes
    assert [line.get_label() for line in by_epoch.lines] == [
        "baseline (3 seeds)",
        "ema (3 seeds)",
        "batch256 (2 seeds)",
    ]
    assert list(by_epoch.lines[1].get_ydata()) == pytest.approx([15.8, 11.8, 10.8])  # the median over seeds
    assert list(by_seconds.lines[0].get_xdata()) == pytest.approx([31.0, 62.0, 93.0])  # cumulative, mean of 30/31/32
    assert len(by_epoch.collections) == 3  # one min-max band per arm
    plt.close(figure)


def test_the_paired_figure_sorts_levers_by_their_median_difference_and_draws_every_seed():
    findings = speedrun.ablation_findings(synthetic_ablation())
    figure = speedrun.plot_paired_differences(findings)
    (ax,) = figure.axes
    labels = [tick.get_text() for tick in ax.get_yticklabels()]
    assert labels == [  # medians -1.0, -0.3, -0.2, -0.2, +0.2, +0.3, +0.3 (batch256: over its two finished seeds)
        "dirac (incomplete)", "tta-translate (helps)", "ema (helps)", "tta-flip (helps)", "bn-lr (unclear)",
    ] + labels[5:]  # fmt: skip
    assert sorted(labels[5:]) == ["batch256 (hurts)", "nesterov (unclear)"]  # both +0.3, up to rounding
    dots = [line for line in ax.lines if line.get_marker() not in ("None", None, "")]
    assert len(dots) == 3 * 5 + 2 + 2  # three seeds for five arms, two for dirac, two finished for batch256
    plt.close(figure)


# ---------------------------------------------------------------------------------------------------------------
# tiny runs in a temporary data/runs


@pytest.fixture
def tiny_runs(tmp_path, monkeypatch, tiny_splits):
    monkeypatch.setattr(run_records, "RUNS_DIR", tmp_path / "runs")
    monkeypatch.setattr(speedrun, "WEIGHTS_DIR", tmp_path / "weights")
    splits = tiny_splits.first(train=96, val=40, test=24)  # a test set of its own size, to tell its reads apart
    monkeypatch.setattr(speedrun, "load_splits", lambda data_kind, seed, fast: splits)
    evaluated = []
    original = training.evaluate

    def recording(net, dataset, splits, **kwargs):
        evaluated.append(len(dataset))
        return original(net, dataset, splits, **kwargs)

    monkeypatch.setattr(training, "evaluate", recording)
    monkeypatch.setattr(speedrun, "evaluate", recording)
    return evaluated


def test_a_subset_run_records_its_arm_machine_and_curves_and_never_reads_the_test_set(tiny_runs, check_schema):
    record = speedrun.run_arm("nesterov", 0, epochs=2, depth=8, progress=False, save_as="speedrun-nesterov-0")
    saved = run_records.load_record("speedrun-nesterov-0")
    assert json.loads(json.dumps(record)) == saved
    check_schema(saved, ["ResNet-8"])
    assert saved["experiment"] == "speedrun" and saved["config"]["nesterov"] is True
    assert saved["arm"]["levers"] == ["nesterov"] and saved["arm"]["changes"] == {"nesterov": True}
    assert {"cpu_model", "bf16_native", "cpu_bf16_flags", "load_average_at_start", "load_average_at_end"} <= set(
        saved["machine"]
    )
    assert saved["environment"]["torch_threads"] == 1 and saved["environment"]["precision"] == "fp32"
    expected = "python -m resnet_lab.speedrun --data subset --arm nesterov --epochs 2 --seed 0 --threads 1 --depth 8"
    assert saved["command"] == expected
    net = saved["nets"]["ResNet-8"]
    assert len(net["history"]["val_error"]) == 2 and None not in net["history"]["val_error"]
    assert net["final"]["test_error"] is None and saved["test"] is None
    assert tiny_runs and set(tiny_runs) <= {40, 0}  # validation (40 images), or the emptied test set (not 24)
    assert "weights" not in saved  # subset runs keep no weights


def test_full_runs_keep_their_weights_and_the_rule_reads_the_test_once(tiny_runs):
    for arm, combo in (("baseline", ()), ("combo", ("tta-flip", "label-smoothing"))):
        speedrun.run_arm(arm, 0, data_kind="full", epochs=2, combo=combo, depth=8, progress=False,
                         save_as=speedrun.record_name(arm, 0, "full", 2))  # fmt: skip
    assert set(tiny_runs) <= {40, 0}  # no test image read during the runs
    combo = run_records.load_record(speedrun.record_name("combo", 0, "full", 2))
    assert " --arm combo --levers tta-flip,label-smoothing --epochs 2 " in combo["command"]
    records = {arm: run_records.load_record(speedrun.record_name(arm, 0, "full", 2)) for arm in ("baseline", "combo")}
    best = {arm: r["nets"]["ResNet-8"]["final"]["best_val_error"] for arm, r in records.items()}
    expected = "combo" if best["combo"] < best["baseline"] - speedrun.TIE_POINTS else "baseline"
    tiny_runs.clear()
    record = speedrun.read_test(2)
    assert record["choice"]["chosen"] == speedrun.record_name(expected, 0, "full", 2)
    assert tiny_runs == [24]  # the test set (24 images), once
    assert record["test"]["error"] == record["nets"]["ResNet-8"]["final"]["test_error"]
    assert record["test_accuracy"] == 100.0 - record["test"]["error"]
    assert run_records.load_record(record["choice"]["chosen"])["test"] == record["test"]
    with pytest.raises(ValueError, match="read once"):
        speedrun.read_test(2)
    runs = speedrun.load_full_runs(0)
    assert list(runs) == [speedrun.record_name(arm, 0, "full", 2) for arm in ("baseline", "combo")]
    table = speedrun.format_full_runs(runs).splitlines()
    chosen = next(line for line in table if line.startswith(record["choice"]["chosen"]))
    other = next(line for line in table[1:] if not line.startswith(record["choice"]["chosen"]))
    assert f"{record['test']['accuracy']:.2f} % (chosen by the rule" in chosen and other.endswith("not read")
    alone = {record["choice"]["chosen"]: {**record, "choice": {**record["choice"], "candidates": {"x": 6.0}}}}
    assert "(the only run of its epochs; read " in speedrun.format_full_runs(alone)


def test_read_test_refuses_weights_that_are_not_the_recorded_ones(tiny_runs, tmp_path):
    name = speedrun.record_name("baseline", 0, "full", 2)
    speedrun.run_arm("baseline", 0, data_kind="full", epochs=2, depth=8, progress=False, save_as=name)
    (tmp_path / "weights" / f"{name}.pt").write_bytes(b"not the weights")
    with pytest.raises(ValueError, match="sha256 differs"):
        speedrun.read_test(2)
    with pytest.raises(FileNotFoundError, match="no full-data record"):
        speedrun.read_test(14)


def test_the_command_line_runs_arms_and_prints_the_table(tiny_runs, capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("RESNET_LAB_FAST", raising=False)  # the suite may run in fast mode; --fast says it here
    for arm in ("baseline", "ema"):
        speedrun.main(["--arm", arm, "--seed", "0", "--fast", "--epochs", "1", "--no-progress"])
    assert run_records.load_record("speedrun-ema-0-fast")["arm"]["depth"] == speedrun.FAST_DEPTH
    speedrun.main(["--table", "--fast", "--figure", str(tmp_path / "ablation.png")])
    out = capsys.readouterr().out
    assert "speedrun-ema-0-fast: final val error" in out and "incomplete" in out
    assert "combo by the rule: none" in out and (tmp_path / "ablation.png").stat().st_size > 0
    with pytest.raises(SystemExit):
        speedrun.main(["--table"])  # no full-mode baseline records in this data/runs
    with pytest.raises(SystemExit):
        speedrun.main(["--arm", "combo", "--levers", "tta-flip,tta-translate", "--fast"])
