"""checks.grad_cam (notebook 12): accepts correct Grad-CAMs in two styles, names typical mistakes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from resnet_lab import checks


def _with_tensor_hook(model, layer, images, targets):
    """Style 1: a forward hook keeps the activations and registers a tensor hook for their gradient."""
    store = {}

    def keep(_module, _inputs, output):
        store["acts"] = output
        output.register_hook(lambda grad: store.__setitem__("grads", grad))

    handle = layer.register_forward_hook(keep)
    was_training = model.training
    try:
        model.eval()
        logits = model(images)
        logits[torch.arange(len(targets)), targets].sum().backward()
    finally:
        handle.remove()
        model.train(was_training)
    weights = store["grads"].mean(dim=(2, 3), keepdim=True)
    return F.relu((weights * store["acts"]).sum(dim=1)).detach()


def _with_backward_hook(model, layer, images, targets):
    """Style 2: a forward hook and a full backward hook on the module, einsum for the weighted sum."""
    acts, grads = [], []
    handles = [
        layer.register_forward_hook(lambda m, i, o: acts.append(o.detach())),
        layer.register_full_backward_hook(lambda m, gi, go: grads.append(go[0].detach())),
    ]
    model.eval()
    x = images.clone().requires_grad_(True)  # a full backward hook needs an input that requires grad
    score = model(x).gather(1, targets.view(-1, 1)).sum()
    score.backward()
    for h in handles:
        h.remove()
    model.train()  # it was handed over in training mode
    alpha = grads[0].mean(dim=(2, 3))
    return torch.einsum("bk,bkhw->bhw", alpha, acts[0]).clamp(min=0)


@pytest.mark.parametrize("fn", [_with_tensor_hook, _with_backward_hook])
def test_accepts_two_correct_styles(fn, capsys):
    checks.grad_cam(fn)
    assert capsys.readouterr().out.startswith("✓ grad_cam")


def _core(model, layer, images, targets, *, relu=True, dims=(2, 3), spatial=True, softmax=False, restore=True):
    store = {}
    handle = layer.register_forward_hook(lambda m, i, o: store.__setitem__("acts", o))
    was_training = model.training
    try:
        model.eval()
        logits = model(images)
        scores = logits.softmax(dim=1) if softmax else logits
        (grads,) = torch.autograd.grad(scores.gather(1, targets[:, None]).sum(), store["acts"])
    finally:
        handle.remove()
        if restore:
            model.train(was_training)
    weights = grads.mean(dim=dims, keepdim=True) if spatial else grads
    cam = (weights * store["acts"]).sum(dim=1).detach()
    return F.relu(cam) if relu else cam


@pytest.mark.parametrize(
    ("kwargs", "hint"),
    [
        ({"relu": False}, "no ReLU on the map"),
        ({"dims": 1}, "wrong dimension of the gradient"),
        ({"spatial": False}, "not averaged over the spatial dims"),
        ({"softmax": True}, "not of the softmax probability"),
    ],
)
def test_names_typical_mistakes(kwargs, hint):
    def wrong(model, layer, images, targets):
        return _core(model, layer, images, targets, **kwargs)

    with pytest.raises(AssertionError, match=hint):
        checks.grad_cam(wrong)


def test_leaked_hooks_and_wrong_shapes_and_train_mode():
    def leaky(model, layer, images, targets):
        layer.register_forward_hook(lambda m, i, o: None)  # never removed
        return _core(model, layer, images, targets)

    with pytest.raises(AssertionError, match="hooks are still registered"):
        checks.grad_cam(leaky)

    def upsampled(model, layer, images, targets):
        cam = _core(model, layer, images, targets)
        return F.interpolate(cam[:, None], size=images.shape[-2:], mode="bilinear")[:, 0]

    with pytest.raises(AssertionError, match="before any upsampling"):
        checks.grad_cam(upsampled)

    def in_train_mode(model, layer, images, targets):
        store = {}
        handle = layer.register_forward_hook(lambda m, i, o: store.__setitem__("acts", o))
        logits = model(images)  # BN uses the batch's statistics
        handle.remove()
        (grads,) = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), store["acts"])
        return F.relu((grads.mean(dim=(2, 3), keepdim=True) * store["acts"]).sum(dim=1)).detach()

    with pytest.raises(AssertionError, match="in eval mode"):
        checks.grad_cam(in_train_mode)


def test_the_models_mode_must_be_restored():
    def stays_in_eval(model, layer, images, targets):
        return _core(model, layer, images, targets, restore=False)  # right maps, model left in eval mode

    with pytest.raises(AssertionError, match="left the model in eval mode") as failure:
        checks.grad_cam(stays_in_eval)
    assert "model.train(was_training)" in str(failure.value)


def test_the_success_line_counts_net_layer_pairs(capsys):
    checks.grad_cam(_core)
    assert "3 net/layer pairs match Grad-CAM" in capsys.readouterr().out


def test_unfinished_exercise():
    def stub(model, layer, images, targets):
        raise NotImplementedError("average the gradient")

    with pytest.raises(AssertionError, match="not done yet"):
        checks.grad_cam(stub)


def test_the_lessons_exercise_names_the_idea_without_code_and_its_solution_passes(capsys):
    import ast

    from resnet_lab.checks import exercises

    exercise = exercises.find("grad_cam")
    assert exercise.lesson == "12_looking_inside.ipynb" and exercise.target == "my_grad_cam"
    tier1, *further = exercise.hints
    assert len(further) >= 2
    try:
        tree = ast.parse(tier1)
    except SyntaxError:
        tree = None  # prose is not Python: good
    if tree is not None:
        assert not any(isinstance(n, (ast.Call, ast.Assign, ast.Attribute)) for n in ast.walk(tree)), tier1
    assert "(" not in tier1 and "=" not in tier1 and "." not in tier1.rstrip(".")
    namespace: dict = {}
    exec("import torch\nimport torch.nn.functional as F\n" + exercise.source, namespace)  # noqa: S102
    checks.grad_cam(namespace["my_grad_cam"])
    assert capsys.readouterr().out.startswith("✓ grad_cam")
