"""Notebook 13's checkers (triangular_lr, ema_update, flip_tta): correct answers in two styles pass, the
typical mistakes are named, stubs are "not done yet", hidden configurations work, the random state is kept."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from rejecting import passes, rejects
from torch import nn

from resnet_lab import checks, training
from resnet_lab.checks import engine
from resnet_lab.checks.speed import reference_triangular_lr

LESSON = Path(__file__).resolve().parent.parent / "notebooks" / "13_train_faster.ipynb"


def test_registered():
    for name in ("triangular_lr", "ema_update", "flip_tta"):
        assert name in checks.CHECKERS
    assert "speed" in checks.CHECKER_MODULES


# ---- triangular_lr


def lr_branches(step, total_steps, peak_lr):
    warmup = round(0.2 * total_steps)
    if step < warmup:
        return peak_lr * (0.1 + 0.9 * step / warmup)
    return peak_lr * (1 - (step - warmup) / (total_steps - warmup))


def lr_interp(step, total_steps, peak_lr):
    warmup = round(0.2 * total_steps)
    if warmup == 0:
        return peak_lr * (1 - step / total_steps)
    return np.interp(step, [0, warmup, total_steps], [peak_lr / 10, peak_lr, 0.0])  # a numpy float


def test_reference_is_the_training_loops_schedule_and_the_formula():
    for total, peak in ((710, 0.1), (50, 0.2), (8, 1.0), (7, 1.0), (3, 0.5), (2, 0.5), (1, 0.1)):
        config = training.TrainConfig(epochs=10, lr=peak, schedule="triangular")
        for step in range(total):
            lr = training.learning_rate(config, step, total)
            assert reference_triangular_lr(step, total, peak) == lr
            assert lr_branches(step, total, peak) == pytest.approx(lr, rel=1e-12, abs=1e-15)
    assert reference_triangular_lr(0, 1, 0.1) == 0.1  # no warm-up in a run of one step
    assert 0 < reference_triangular_lr(709, 710, 0.1) < 0.001  # the last step: small but positive


def test_triangular_lr_accepts_two_styles(capsys):
    line = passes(checks.triangular_lr, lr_branches, capsys, "triangular_lr")
    assert "4 schedules match" in line
    passes(checks.triangular_lr, lr_interp, capsys, "triangular_lr")


def _warmup(total):
    return round(0.2 * total)


def _variant(warm=None, decay=None, warmup_of=_warmup):
    def lr(step, total, peak):
        w = warmup_of(total)
        if step < w:
            return warm(step, w, peak) if warm else peak * (0.1 + 0.9 * step / w)
        return decay(step, total, w, peak) if decay else peak * (1 - (step - w) / (total - w))

    return lr


@pytest.mark.parametrize(
    ("answer", "phrase"),
    [
        (_variant(warm=lambda s, w, p: p * s / w), "not at zero"),
        (_variant(warmup_of=lambda t: 0), "the first fifth of the run is a warm-up"),
        (_variant(warmup_of=lambda t: round(t / 6)), "not 20 % of the decay"),
        (_variant(warmup_of=lambda t: int(0.2 * t)), "round(), not int()"),
        (_variant(warmup_of=lambda t: 0.2 * t), "counted in whole iterations"),
        (_variant(warmup_of=lambda t: math.ceil(0.2 * t)), "math.ceil() makes it 1"),
        (_variant(decay=lambda s, t, w, p: p * (0.1 + 0.9 * (1 - (s - w) / (t - w)))), "not at a tenth of the peak"),
        (_variant(decay=lambda s, t, w, p: p * (1 - (s - w) / (t - 1 - w))), "off by one at the end"),
        (_variant(warm=lambda s, w, p: p * (0.1 + 0.9 * s / max(1, w - 1))), "off by one in the warm-up"),
        (_variant(decay=lambda s, t, w, p: p * (1 - s / t)), "not from step 0"),
        (_variant(decay=lambda s, t, w, p: p * (1 - (s - w) / t)), "lasts total_steps - warmup iterations"),
    ],
)
def test_triangular_lr_names_the_mistakes(answer, phrase):
    rejects(checks.triangular_lr, answer, phrase)


def test_triangular_lr_rejects_tensors_none_and_a_division_by_an_empty_warmup():
    rejects(checks.triangular_lr, lambda s, t, p: torch.tensor(lr_branches(s, t, p)), "returned a tensor", ".item()")
    rejects(checks.triangular_lr, lambda s, t, p: None, "returned None")

    def eager(step, total_steps, peak_lr):
        warmup = round(0.2 * total_steps)
        up = peak_lr * (0.1 + 0.9 * step / warmup)  # divides by zero when the run has no warm-up
        down = peak_lr * (1 - (step - warmup) / (total_steps - warmup))
        return up if step < warmup else down

    rejects(checks.triangular_lr, eager, "total_steps=1", "ZeroDivisionError", "inside the warm-up branch")


def test_triangular_lr_not_done_hidden_configuration_and_random_state(capsys):
    def stub(step, total_steps, peak_lr):
        raise NotImplementedError("two straight lines")

    rejects(checks.triangular_lr, stub, engine.HINT_NOT_DONE)
    before = torch.random.get_rng_state()
    checks.triangular_lr(lr_branches, configs=[(13, 0.3), (3, 0.5)])
    assert "2 schedules match" in capsys.readouterr().out
    assert torch.equal(before, torch.random.get_rng_state())


# ---- ema_update


def ema_loops(average, model, decay):
    with torch.no_grad():
        for mine, theirs in zip(average.parameters(), model.parameters()):
            mine.mul_(decay).add_(theirs, alpha=1 - decay)
        for mine, theirs in zip(average.buffers(), model.buffers()):
            if mine.is_floating_point():
                mine.lerp_(theirs, 1 - decay)
            else:
                mine.copy_(theirs)


def ema_state_dict(average, model, decay):
    """state_dict() holds detached tensors that share the modules' storage: copy_ into them needs no no_grad."""
    theirs = model.state_dict()
    for key, mine in average.state_dict().items():
        mine.copy_(decay * mine + (1 - decay) * theirs[key] if mine.is_floating_point() else theirs[key])


def ema_through_moving_average(average, model, decay):
    """The package's moving_average (the grader calls this 'reference used'); it matches the checker."""
    ema = training.moving_average(average, decay)  # its first update copies, the second averages
    ema.update_parameters(average)
    ema.update_parameters(model)
    average.load_state_dict(ema.module.state_dict())


@pytest.mark.parametrize("answer", [ema_loops, ema_state_dict, ema_through_moving_average])
def test_ema_update_accepts_two_styles_and_the_package(answer, capsys):
    line = passes(checks.ema_update, answer, capsys, "ema_update")
    assert "3 decays match" in line


def _ema(average, model, decay, *, params=True, buffers=True, ints="copy", swap=False):
    d = 1 - decay if swap else decay
    with torch.no_grad():
        if params:
            for mine, theirs in zip(average.parameters(), model.parameters()):
                mine.copy_(d * mine + (1 - d) * theirs)
        for mine, theirs in zip(average.buffers(), model.buffers()):
            if mine.is_floating_point():
                if buffers == "copy":
                    mine.copy_(theirs)
                elif buffers:
                    mine.copy_(d * mine + (1 - d) * theirs)
            elif ints == "copy":
                mine.copy_(theirs)
            elif ints == "average":
                mine.copy_(d * mine + (1 - d) * theirs)  # truncated to an integer


@pytest.mark.parametrize(
    ("kwargs", "phrases"),
    [
        ({"swap": True}, ["swapped"]),
        ({"buffers": False}, ["only the parameters were averaged", "running_mean"]),
        ({"buffers": "copy"}, ["averaged like the weights, not copied"]),
        ({"ints": "average"}, ["num_batches_tracked", "copy it, don't average it"]),
        ({"ints": "left"}, ["num_batches_tracked", "it was left as it was"]),
    ],
)
def test_ema_update_names_the_value_mistakes(kwargs, phrases):
    rejects(checks.ema_update, lambda a, m, d: _ema(a, m, d, **kwargs), *phrases)


def test_ema_update_names_a_copy_a_new_module_a_no_op_and_the_model_changed():
    rejects(checks.ema_update, lambda a, m, d: a.load_state_dict(m.state_dict()), "average became a copy of model")

    def new_module(average, model, decay):
        fresh = copy.deepcopy(average)
        ema_loops(fresh, model, decay)
        return fresh

    rejects(checks.ema_update, new_module, "update its tensors in place and return None")

    def rebinds(average, model, decay):
        for mine, theirs in zip(average.parameters(), model.parameters()):
            mine = decay * mine + (1 - decay) * theirs  # noqa: F841 - rebinding the loop variable changes nothing

    rejects(checks.ema_update, rebinds, "average did not change")
    rejects(checks.ema_update, lambda a, m, d: ema_loops(m, a, d), "changed model", "the arguments are (average")


def test_ema_update_names_replaced_tensors_and_autograd():
    def replaces(average, model, decay):
        theirs = dict(model.named_parameters())
        for name, module in list(average.named_modules()):
            for key, mine in list(module.named_parameters(recurse=False)):
                new = decay * mine.detach() + (1 - decay) * theirs[f"{name}.{key}" if name else key].detach()
                setattr(module, key, nn.Parameter(new))
        ema_loops_buffers_only(average, model, decay)

    rejects(checks.ema_update, replaces, "replaced", "in place")

    def recorded(average, model, decay):
        for mine, theirs in zip(average.parameters(), model.parameters()):
            mine.requires_grad_(False)
            mine.mul_(decay).add_(theirs * (1 - decay))  # theirs requires grad: autograd records the update
        ema_loops_buffers_only(average, model, decay)

    rejects(checks.ema_update, recorded, "autograd recorded the update", "torch.no_grad()")

    def switched_off(average, model, decay):
        for p in average.parameters():
            p.requires_grad_(False)
        ema_loops(average, model, decay)

    rejects(checks.ema_update, switched_off, "switched requires_grad off", "torch.no_grad()")

    def no_no_grad(average, model, decay):
        for mine, theirs in zip(average.parameters(), model.parameters()):
            mine.mul_(decay).add_(theirs, alpha=1 - decay)

    rejects(checks.ema_update, no_no_grad, "leaf Variable", "with torch.no_grad():")


def ema_loops_buffers_only(average, model, decay):
    with torch.no_grad():
        for mine, theirs in zip(average.buffers(), model.buffers()):
            mine.copy_(decay * mine + (1 - decay) * theirs if mine.is_floating_point() else theirs)


def test_ema_update_not_done_hidden_configuration_and_random_state(capsys):
    def stub(average, model, decay):
        raise NotImplementedError("move the average a little")

    rejects(checks.ema_update, stub, engine.HINT_NOT_DONE)
    before = torch.random.get_rng_state()
    checks.ema_update(ema_loops, configs=[(0.5, 4)])
    assert "1 decay matches" in capsys.readouterr().out
    assert torch.equal(before, torch.random.get_rng_state())


# ---- flip_tta


def tta_two_passes(model, images):
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return (model(images) + model(images.flip(-1))) / 2
    finally:
        model.train(was_training)


def tta_one_batch(model, images):
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        logits = model(torch.cat([images, torch.flip(images, dims=[3])]))
    model.train(was_training)
    return logits.view(2, len(images), -1).mean(dim=0)


def tta_with_predict(model, images):
    """training.predict (the grader calls this 'reference used'); it matches the checker."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits = training.predict(model, images, tta_flip=True)
    model.train(was_training)
    return logits


@pytest.mark.parametrize("answer", [tta_two_passes, tta_one_batch, tta_with_predict])
def test_flip_tta_accepts_two_styles_and_the_package(answer, capsys):
    line = passes(checks.flip_tta, answer, capsys, "flip_tta")
    assert "3 nets match" in line


def _views(model, images, how):
    was_training = model.training
    model.eval()
    with torch.no_grad():
        a = model(images)
        if how == "vertical":
            b = model(images.flip(-2))
        elif how == "both":
            b = model(images.flip(-1).flip(-2))
        else:
            b = model(images.flip(-1))
    model.train(was_training)
    if how == "softmax":
        return (a.softmax(dim=1) + b.softmax(dim=1)) / 2
    if how == "mirror_only":
        return b
    if how == "sum":
        return a + b
    return (a + b) / 2


@pytest.mark.parametrize(
    ("how", "phrase"),
    [
        ("vertical", "not the height"),
        ("both", "not the height as well"),
        ("softmax", "not the softmax probabilities"),
        ("mirror_only", "not the mirror alone"),
        ("sum", "not their sum"),
    ],
)
def test_flip_tta_names_the_view_mistakes(how, phrase):
    rejects(checks.flip_tta, lambda model, images: _views(model, images, how), phrase)


def test_flip_tta_names_training_mode_and_a_missing_mirror():
    def in_training_mode(model, images):
        with torch.no_grad():
            return (model(images) + model(images.flip(-1))) / 2

    rejects(checks.flip_tta, in_training_mode, "changed the model", "BN running statistics moved", "model.eval()")

    def on_a_training_copy(model, images):
        twin = copy.deepcopy(model).train()
        with torch.no_grad():
            return (twin(images) + twin(images.flip(-1))) / 2

    rejects(checks.flip_tta, on_a_training_copy, "BatchNorm normalises with each batch's own statistics")

    def no_mirror(model, images):
        was_training = model.training
        model.eval()
        with torch.no_grad():
            logits = (model(images) + model(images.flip(1))) / 2  # one channel: flipping dim 1 changes nothing
        model.train(was_training)
        return logits

    rejects(checks.flip_tta, no_mirror, "the mirror image did not count")


def test_flip_tta_the_mode_must_be_restored_and_no_graph_kept():
    def stays_in_eval(model, images):
        model.eval()
        with torch.no_grad():
            return (model(images) + model(images.flip(-1))) / 2

    message = rejects(checks.flip_tta, stays_in_eval, "left the model in eval mode", "handed over in training mode")
    assert "model.train(was_training)" in message

    def always_train(model, images):
        logits = tta_two_passes(model, images)
        model.train()
        return logits

    rejects(checks.flip_tta, always_train, "left the model in training mode", "handed over in eval mode")

    def with_graph(model, images):
        was_training = model.training
        model.eval()
        logits = (model(images) + model(images.flip(-1))) / 2
        model.train(was_training)
        return logits

    rejects(checks.flip_tta, with_graph, "autograd graph", "torch.no_grad()")

    def flips_in_place(model, images):
        images.copy_(images.flip(-1))
        return tta_two_passes(model, images)

    rejects(checks.flip_tta, flips_in_place, "changed the images")
    rejects(checks.flip_tta, lambda model, images: None, "expected a tensor")


def test_flip_tta_not_done_hidden_configuration_and_random_state(capsys):
    def stub(model, images):
        raise NotImplementedError("two views")

    rejects(checks.flip_tta, stub, engine.HINT_NOT_DONE)
    before = torch.random.get_rng_state()
    checks.flip_tta(tta_two_passes, configs=[("plain", "eval")])
    assert "1 net matches" in capsys.readouterr().out
    assert torch.equal(before, torch.random.get_rng_state())


# ---- the lesson's exercises (once notebook 13 is in the repository)


@pytest.mark.skipif(not LESSON.exists(), reason="notebooks/13_train_faster.ipynb is not written yet")
@pytest.mark.parametrize(
    ("name", "target"),
    [("triangular_lr", "my_triangular_lr"), ("ema_update", "my_ema_update"), ("flip_tta", "my_flip_tta")],
)
def test_the_lessons_solutions_pass(name, target, capsys):
    from resnet_lab.checks import exercises

    exercise = exercises.find(name)
    assert exercise.lesson == LESSON.name and exercise.target == target
    assert len(exercise.hints) >= 3
    namespace: dict = {}
    exec("import math\nimport torch\nfrom torch import nn\n" + exercise.source, namespace)  # noqa: S102
    checks.CHECKERS[name](namespace[target])
    assert capsys.readouterr().out.startswith(f"✓ {name}: ")
