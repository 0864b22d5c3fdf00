"""Notebooks 07 and 08's checkers accept correct answers in several styles and name the expected mistakes."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from rejecting import rejects

from resnet_lab import checks, cifar_resnet, experiments, training
from resnet_lab.checks import engine
from resnet_lab.checks.training import _synthetic_record, reference_warmup_cosine


def passes(checker, answer, capsys, **kwargs) -> None:
    checker(answer, **kwargs)
    out = capsys.readouterr().out
    assert out.startswith(f"✓ {checker.__name__}:"), out


def test_registered():
    for name in ("plain_twin", "degradation_gaps", "warmup_cosine", "train_step", "crop_flip"):
        assert name in checks.CHECKERS


# ---- plain_twin (07)


def twin_by_state_dict(resnet):
    twin = cifar_resnet(resnet.depth, in_channels=resnet.in_channels, residual=False)
    twin.load_state_dict(resnet.state_dict())
    return twin


def twin_by_copy(resnet):
    twin = copy.deepcopy(resnet)
    for module in twin.modules():
        if hasattr(module, "residual"):
            module.residual = False
    return twin


def test_plain_twin_accepts_two_styles(capsys):
    passes(checks.plain_twin, twin_by_state_dict, capsys)
    passes(checks.plain_twin, twin_by_copy, capsys)


def test_plain_twin_rejects_the_resnet_itself_and_a_switched_original():
    rejects(checks.plain_twin, lambda r: r, "was changed (or returned itself)")

    def switch_in_place(resnet):
        for module in resnet.modules():
            if hasattr(module, "residual"):
                module.residual = False
        return resnet

    rejects(checks.plain_twin, switch_in_place, "work on a copy")


def test_plain_twin_rejects_a_copy_with_shortcuts_and_fresh_weights():
    rejects(checks.plain_twin, copy.deepcopy, "computes exactly what the ResNet computes", "residual switch")
    rejects(
        checks.plain_twin,
        lambda r: cifar_resnet(r.depth, in_channels=r.in_channels, residual=False),
        "weights are not the ResNet's",
    )


def test_plain_twin_rejects_option_b_and_a_wrong_input():
    rejects(
        checks.plain_twin,
        lambda r: cifar_resnet(r.depth, in_channels=r.in_channels, shortcut="B"),
        "parameters",
        "option A",
    )

    def forgets_in_channels(resnet):  # built for 3 channels: cannot take the 1-channel stem's weights
        twin = cifar_resnet(resnet.depth, residual=False)
        twin.load_state_dict(resnet.state_dict())
        return twin

    message = rejects(checks.plain_twin, forgets_in_channels, "raised")
    assert "RuntimeError" in message


def test_plain_twin_hidden_configuration(capsys):
    checks.plain_twin(twin_by_copy, configs=[(44, 2)])
    assert "1 configuration matches" in capsys.readouterr().out


# ---- degradation_gaps (07)


def gaps_from_history(record):
    final = {name: net["history"]["train_error"][-1] for name, net in record["nets"].items()}
    return {"plain_gap": final["plain-56"] - final["plain-20"], "resnet_gap": final["ResNet-56"] - final["ResNet-20"]}


def gaps_from_findings(record):
    findings = experiments.degradation_findings(record)
    return {k: torch.tensor(findings[k]) for k in ("plain_gap", "resnet_gap")}  # tensors are numbers too


def test_degradation_gaps_accepts_two_styles(capsys):
    passes(checks.degradation_gaps, gaps_from_history, capsys)
    passes(checks.degradation_gaps, gaps_from_findings, capsys)


def test_degradation_gaps_on_a_real_record(capsys):
    record = experiments.load_record("degradation-seeds-0")
    passes(checks.degradation_gaps, gaps_from_history, capsys, configs=[record])
    assert gaps_from_history(record)["plain_gap"] == pytest.approx(record["findings"]["plain_gap"])


def test_degradation_gaps_names_the_mistakes():
    def reversed_gaps(record):
        return {k: -v for k, v in gaps_from_history(record).items()}

    def best_epoch(record):
        best = {name: min(net["history"]["train_error"]) for name, net in record["nets"].items()}
        return {"plain_gap": best["plain-56"] - best["plain-20"], "resnet_gap": best["ResNet-56"] - best["ResNet-20"]}

    def validation(record):
        last = {name: net["history"]["val_error"][-1] for name, net in record["nets"].items()}
        return {"plain_gap": last["plain-56"] - last["plain-20"], "resnet_gap": last["ResNet-56"] - last["ResNet-20"]}

    rejects(checks.degradation_gaps, reversed_gaps, "reversed")
    rejects(checks.degradation_gaps, best_epoch, "final epoch")
    rejects(checks.degradation_gaps, validation, "validation error")
    rejects(checks.degradation_gaps, lambda r: tuple(gaps_from_history(r).values()), "return a dict")
    rejects(checks.degradation_gaps, lambda r: {"plain_gap": "big", "resnet_gap": 0.0}, "expected a number")


def test_synthetic_records_separate_the_mistakes():
    record = _synthetic_record(0)
    train = record["nets"]["plain-56"]["history"]["train_error"]
    assert train[-1] != min(train)  # the best epoch is not the last
    assert record["nets"]["plain-56"]["final"]["train_error"] == train[-1]


# ---- warmup_cosine (08)


def lr_branches(step, total_steps, warmup_steps, peak_lr):
    if step < warmup_steps:
        return peak_lr / 10 + (peak_lr - peak_lr / 10) * step / warmup_steps
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return peak_lr * (1 + math.cos(math.pi * progress)) / 2


def lr_torch(step, total_steps, warmup_steps, peak_lr):
    warm = torch.tensor(peak_lr * (0.1 + 0.9 * step / max(warmup_steps, 1)))
    progress = torch.tensor((step - warmup_steps) / (total_steps - warmup_steps))
    cosine = peak_lr * 0.5 * (1 + torch.cos(torch.pi * progress))
    return torch.where(torch.tensor(step < warmup_steps), warm, cosine)  # a 0-d tensor


def test_reference_matches_the_training_loop():
    config = training.TrainConfig(epochs=10)
    total = 710
    warmup = training.warmup_steps(config, total)
    assert warmup == 106
    for step in range(total):
        assert reference_warmup_cosine(step, total, warmup, 0.1) == pytest.approx(
            training.learning_rate(config, step, total), rel=1e-12, abs=1e-15
        )


def test_warmup_cosine_accepts_two_styles(capsys):
    passes(checks.warmup_cosine, lr_branches, capsys)
    passes(checks.warmup_cosine, lr_torch, capsys)


def test_warmup_cosine_names_the_mistakes():
    def from_zero(step, total, warmup, peak):
        return peak * step / warmup if step < warmup else lr_branches(step, total, warmup, peak)

    def no_warmup(step, total, warmup, peak):
        return peak * (1 + math.cos(math.pi * step / total)) / 2

    def over_total(step, total, warmup, peak):
        return (
            lr_branches(step, total, warmup, peak)
            if step < warmup
            else peak * (1 + math.cos(math.pi * step / total)) / 2
        )

    def full_cosine(step, total, warmup, peak):
        if step < warmup:
            return lr_branches(step, total, warmup, peak)
        return peak * math.cos(math.pi * (step - warmup) / (total - warmup))

    rejects(checks.warmup_cosine, from_zero, "not at zero")
    rejects(checks.warmup_cosine, no_warmup, "climb linearly")
    rejects(checks.warmup_cosine, over_total, "total_steps - warmup_steps")
    rejects(checks.warmup_cosine, full_cosine, "half of (1 + cos")
    rejects(checks.warmup_cosine, lambda *args: None, "expected a number")


def test_warmup_cosine_not_done():
    def stub(step, total_steps, warmup_steps, peak_lr):
        raise NotImplementedError("the idea")

    rejects(checks.warmup_cosine, stub, engine.HINT_NOT_DONE)


# ---- train_step (08)


def step_zero_first(model, images, labels, optimizer):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss.item()


def step_zero_last(model, images, labels, optimizer):
    loss = torch.nn.CrossEntropyLoss()(model(images), labels)
    loss.backward()
    optimizer.step()
    model.zero_grad(set_to_none=True)
    return loss.detach()  # a tensor is accepted too


def test_train_step_accepts_two_styles(capsys):
    passes(checks.train_step, step_zero_first, capsys)
    passes(checks.train_step, step_zero_last, capsys)


def test_train_step_names_the_mistakes():
    def no_zero_grad(model, images, labels, optimizer):
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    def no_step(model, images, labels, optimizer):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        return loss.item()

    def softmax_first(model, images, labels, optimizer):
        optimizer.zero_grad()
        loss = F.cross_entropy(F.softmax(model(images), dim=1), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    def eval_mode(model, images, labels, optimizer):
        model.eval()
        return step_zero_first(model, images, labels, optimizer)

    rejects(checks.train_step, no_zero_grad, "zero_grad")
    rejects(checks.train_step, no_step, "optimizer has to take its step")
    rejects(checks.train_step, softmax_first, "raw logits")
    rejects(checks.train_step, eval_mode, "training mode")
    rejects(checks.train_step, lambda *args: None, "expected a number")


def test_train_step_keeps_the_callers_random_state():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    checks.train_step(step_zero_first)
    assert torch.equal(before, torch.get_rng_state())


# ---- crop_flip (08)


def crop_flip_loop(images, dy, dx, flip, pad):
    h, w = images.shape[-2:]
    padded = F.pad(images, (pad, pad, pad, pad))
    out = []
    for i in range(len(images)):
        crop = padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
        out.append(crop.flip(-1) if flip[i] else crop)
    return torch.stack(out)


def crop_flip_batched(images, dy, dx, flip, pad):
    b, c, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad))
    rows = dy[:, None] + torch.arange(h)  # (B, H)
    cols = dx[:, None] + torch.arange(w)  # (B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    return padded[
        torch.arange(b)[:, None, None, None],
        torch.arange(c)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]


def test_crop_flip_accepts_two_styles(capsys):
    passes(checks.crop_flip, crop_flip_loop, capsys)
    passes(checks.crop_flip, crop_flip_batched, capsys)


def test_crop_flip_names_the_mistakes():
    def flip_first(images, dy, dx, flip, pad):
        h, w = images.shape[-2:]
        padded = F.pad(images, (pad, pad, pad, pad))
        padded = torch.where(flip[:, None, None, None], padded.flip(-1), padded)
        return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(len(images))])

    def vertical(images, dy, dx, flip, pad):
        out = crop_flip_loop(images, dy, dx, torch.zeros_like(flip), pad)
        return torch.where(flip[:, None, None, None], out.flip(-2), out)

    def swapped(images, dy, dx, flip, pad):
        return crop_flip_loop(images, dx, dy, flip, pad)

    def no_pad(images, dy, dx, flip, pad):
        return crop_flip_loop(images, dy, dx, flip, 0)

    def in_place(images, dy, dx, flip, pad):
        images[:] = crop_flip_loop(images, dy, dx, flip, pad)
        return images

    rejects(checks.crop_flip, flip_first, "crop first, then flip")
    rejects(checks.crop_flip, vertical, "the last dimension")
    rejects(checks.crop_flip, swapped, "swapped")
    rejects(checks.crop_flip, no_pad, "pad first")
    rejects(checks.crop_flip, in_place, "changed the images")
    rejects(checks.crop_flip, lambda *args: crop_flip_loop(*args).float(), "dtype")
