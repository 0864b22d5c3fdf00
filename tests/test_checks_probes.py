"""Notebook 11's checkers (lesion_block, filter_normalize) accept correct answers in two styles and name the
mistakes a learner would make; probes.filter_normalize is what random_direction applies."""

from __future__ import annotations

import copy

import pytest
import torch
from rejecting import rejects
from torch import nn

from resnet_lab import checks, probes
from resnet_lab.models import cifar_resnet

# ---- lesion_block: correct answers


def lesion_identity(model, name):
    """Deep copy, then put nn.Identity where the block was (the block's shape does not change)."""
    lesioned = copy.deepcopy(model)
    parent_name, _, child = name.rpartition(".")
    setattr(lesioned.get_submodule(parent_name), child, nn.Identity())
    return lesioned


def lesion_zero_branch(model, name):
    """Another style: keep the block but silence its branch (last BN's scale and shift set to 0).

    For a residual block that leaves ReLU(0 + x) = x, since x >= 0 comes out of a ReLU; for a plain block
    (no shortcut) it would output zeros, so plain nets get the identity.
    """
    lesioned = copy.deepcopy(model)
    block = dict(lesioned.named_modules())[name]
    if not block.residual:
        return lesion_identity(model, name)
    with torch.no_grad():
        block.bn2.weight.zero_()
        block.bn2.bias.zero_()
    return lesioned


@pytest.mark.parametrize("fn", [lesion_identity, lesion_zero_branch, lambda m, n: probes.lesion(m, [n])])
def test_lesion_block_accepts_correct_lesions(fn, capsys):
    checks.lesion_block(fn)
    assert capsys.readouterr().out.startswith("✓ lesion_block: 4 configurations match resnet_lab.probes.lesion")


# ---- lesion_block: mistakes


def lesion_in_place(model, name):
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name), child, nn.Identity())
    return model


def lesion_nothing(model, name):
    return copy.deepcopy(model)


class Zeros(nn.Module):
    def forward(self, x):
        return torch.zeros_like(x)


def lesion_outputs_zeros(model, name):
    lesioned = copy.deepcopy(model)
    parent_name, _, child = name.rpartition(".")
    setattr(lesioned.get_submodule(parent_name), child, Zeros())
    return lesioned


def lesion_next_block(model, name):
    stage, index = name.split(".")
    return lesion_identity(model, f"{stage}.{int(index) + 1}")


def test_lesion_block_names_the_wrong_block():
    rejects(
        checks.lesion_block,
        lesion_next_block,
        "with block `layer1.1` deleted, not `layer1.0`",
        configs=[(14, True, "layer1.0")],
    )


def lesion_drops_the_shortcut(model, name):
    """Turns the block plain: the branch stays and the shortcut goes (the opposite of a lesion)."""
    lesioned = copy.deepcopy(model)
    dict(lesioned.named_modules())[name].residual = False
    return lesioned


@pytest.mark.parametrize(
    "fn,phrase",
    [
        (lesion_in_place, "the model passed in was changed"),
        (lesion_nothing, "no block was deleted"),
        (lesion_outputs_zeros, "the deleted block outputs zeros"),
        (lesion_drops_the_shortcut, "keeps its residual branch and loses its shortcut"),
    ],
)
def test_lesion_block_names_the_mistake(fn, phrase):
    rejects(checks.lesion_block, fn, phrase)


def test_lesion_block_rejects_a_non_module_and_reports_an_unfinished_exercise():
    rejects(checks.lesion_block, lambda m, n: None, "returned NoneType, expected an nn.Module")

    def stub(model, name):
        raise NotImplementedError("not yet")

    rejects(checks.lesion_block, stub, "not done yet")


def test_lesion_block_hidden_configuration_and_a_bad_one():
    checks.lesion_block(lesion_identity, configs=[(32, True, "layer2.3")])
    with pytest.raises(ValueError, match="has no block 'layer4.0'"):
        checks.lesion_block(lesion_identity, configs=[(8, True, "layer4.0")])


# ---- filter_normalize


def normalize_loop(direction, model):
    out = {}
    for name, p in model.named_parameters():
        d = direction[name]
        if p.dim() == 1:
            out[name] = torch.zeros_like(d)
            continue
        scaled = torch.empty_like(d)
        for i in range(d.shape[0]):
            scaled[i] = d[i] * p[i].detach().norm() / d[i].norm()
        out[name] = scaled
    return out


def normalize_vectorised_in_place(direction, model):
    """Another style: one line per parameter, the given dict changed in place and returned."""
    for name, p in model.named_parameters():
        d = direction[name]
        if p.dim() < 2:
            d.zero_()
        else:
            w = p.detach().reshape(p.shape[0], -1).norm(dim=1)
            d.mul_((w / d.reshape(d.shape[0], -1).norm(dim=1)).reshape(-1, *[1] * (d.dim() - 1)))
    return direction


@pytest.mark.parametrize("fn", [normalize_loop, normalize_vectorised_in_place, probes.filter_normalize])
def test_filter_normalize_accepts_correct_answers(fn, capsys):
    checks.filter_normalize(fn)
    assert capsys.readouterr().out.startswith("✓ filter_normalize: 3 configurations match")


def normalize_whole_layer(direction, model):
    return {
        n: (direction[n] * p.detach().norm() / direction[n].norm()) if p.dim() > 1 else torch.zeros_like(p)
        for n, p in model.named_parameters()
    }


def normalize_to_unit_filters(direction, model):
    return {
        n: (direction[n] / direction[n].flatten(1).norm(dim=1).view(-1, *[1] * (p.dim() - 1)))
        if p.dim() > 1
        else torch.zeros_like(p)
        for n, p in model.named_parameters()
    }


def normalize_keeps_biases(direction, model):
    out = normalize_loop(direction, model)
    return {n: (direction[n] if p.dim() == 1 else out[n]) for n, p in model.named_parameters()}


def normalize_wrong_dim(direction, model):
    out = {}
    for n, p in model.named_parameters():
        d = direction[n]
        if p.dim() == 1:
            out[n] = torch.zeros_like(d)
        else:
            dims = tuple(i for i in range(p.dim()) if i != 1)
            out[n] = (
                d
                * torch.linalg.vector_norm(p.detach(), dim=dims, keepdim=True)
                / torch.linalg.vector_norm(d, dim=dims, keepdim=True)
            )
    return out


def normalize_weights_only(direction, model):
    return {n: normalize_loop(direction, model)[n] for n, p in model.named_parameters() if p.dim() > 1}


@pytest.mark.parametrize(
    "fn,phrase",
    [
        (normalize_whole_layer, "is normalised as a whole"),
        (normalize_to_unit_filters, "have norm 1"),
        (normalize_keeps_biases, "is left as it was: give 1-D parameters zeros"),
        (normalize_wrong_dim, "normalised along dim 1"),
        (normalize_weights_only, "no entry for conv.bias"),
    ],
)
def test_filter_normalize_names_the_mistake(fn, phrase):
    rejects(checks.filter_normalize, fn, phrase)


# ---- the package's function


def test_probes_filter_normalize_gives_each_filter_the_models_norm_and_leaves_the_input_alone():
    torch.manual_seed(0)
    model = cifar_resnet(8, in_channels=1)
    raw = {n: torch.randn(p.shape) for n, p in model.named_parameters()}
    before = {n: t.clone() for n, t in raw.items()}
    d = probes.filter_normalize(raw, model)
    w = model.conv1.weight.detach()
    assert torch.allclose(d["conv1.weight"].flatten(1).norm(dim=1), w.flatten(1).norm(dim=1), rtol=1e-5)
    assert torch.equal(d["bn1.weight"], torch.zeros(16)) and torch.equal(d["fc.bias"], torch.zeros(10))
    assert all(torch.equal(raw[n], before[n]) for n in raw)
    with pytest.raises(ValueError, match="does not fit this model at 'conv1.weight'"):
        probes.filter_normalize({**raw, "conv1.weight": torch.zeros(3)}, model)


def test_random_direction_is_the_filter_normalised_raw_direction():
    model = cifar_resnet(8, in_channels=1)
    raw = probes.random_direction(model, seed=4, filter_normalized=False)
    normalised = probes.random_direction(model, seed=4)
    expected = probes.filter_normalize(raw, model)
    assert all(torch.equal(normalised[n], expected[n]) for n in expected)


def test_probe_checkers_are_registered():
    assert "probes_exercises" in checks.CHECKER_MODULES
    for name in ("lesion_block", "filter_normalize"):
        assert checks.CHECKERS[name] is getattr(checks.probes_exercises, name)
