"""Initialisations and per-layer learning rates for the "shortcut or scale?" experiment (issue 21).

    init_schemes.orthogonal_(model)                       # every conv / linear weight orthogonal
    init_schemes.lsuv_(model, images)                     # Mishkin & Matas 2016: orthogonal, then unit output variance
    scales = init_schemes.layer_lr_scales(model, x, y)    # smaller lr where the relative gradient is larger
    handles = init_schemes.scale_layer_learning_rates(model, scales, weight_decay=1e-4)

LSUV ("layer-sequential unit variance"): orthonormal weights, then, layer after layer in forward order,
the weight (and bias) is divided by the standard deviation of that layer's output on one batch, which
makes that variance exactly 1 (the paper iterates to within a tolerance; one step is exact here). In a net with BatchNorm after every conv the rescaling does not change
the forward pass (BN divides it out); it changes the weights' scale, and so the size of their gradients
and of each SGD step relative to them.

``scale_layer_learning_rates`` gives each weight its own learning rate ``lr * scale`` in an unchanged
``torch.optim.SGD`` (momentum and weight decay included, exactly: see its docstring), through a gradient
hook, so ``training.train`` needs no change.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

WEIGHTED = (nn.Conv2d, nn.Linear)


def weighted_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The conv and linear layers of ``model`` in registration (= forward, for the course's nets) order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, WEIGHTED)}


@torch.no_grad()
def orthogonal_(model: nn.Module, gain: float = 1.0) -> nn.Module:
    """Every conv / linear weight (C_out, C_in, k, k) set orthogonal as a (C_out, C_in*k*k) matrix; biases 0.

    Returns ``model`` (changed in place). Uses torch's global random generator (seed it first).
    """
    layers = weighted_layers(model)
    if not layers:
        raise ValueError("orthogonal_ found no nn.Conv2d or nn.Linear in the model")
    for m in layers.values():
        nn.init.orthogonal_(m.weight, gain=gain)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    return model


def _reset_batchnorm(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()


@torch.no_grad()
def layer_output_variances(model: nn.Module, images: torch.Tensor) -> dict[str, float]:
    """Variance of each conv / linear layer's output (before any BN) on ``images`` (B, C, H, W), model in train mode.

    BN running statistics are left as they were. Returns {layer name: variance}, in forward order.
    """
    variances: dict[str, float] = {}
    handles = [
        m.register_forward_hook(lambda _m, _i, out, name=name: variances.__setitem__(name, out.float().var().item()))
        for name, m in weighted_layers(model).items()
    ]
    buffers = copy.deepcopy({k: v for k, v in model.state_dict().items() if "running" in k or "num_batches" in k})
    was_training = model.training
    try:
        model.train()
        model(images)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
        model.load_state_dict(buffers, strict=False)
    return variances


class _Stop(Exception):
    """Raised by a forward hook to end a forward pass once the layer of interest has run."""


def _output_variance(model: nn.Module, layer: nn.Module, images: torch.Tensor) -> float:
    """The variance of ``layer``'s output on ``images``, the forward pass stopped right after ``layer``."""
    captured: list[float] = []  # taken in the hook: an in-place ReLU may follow

    def hook(_m: nn.Module, _i: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        captured.append(out.float().var().item())
        raise _Stop

    handle = layer.register_forward_hook(hook)
    try:
        model(images)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not captured:
        raise ValueError("the layer did not run in the model's forward pass")
    return captured[0]


@torch.no_grad()
def lsuv_(model: nn.Module, images: torch.Tensor, *, tol: float = 0.01, orthogonal: bool = True) -> dict[str, float]:
    """LSUV (Mishkin & Matas 2016) in place: orthogonal init, then each conv / linear layer, in forward order,
    divided (weight and bias) by the std of its output on ``images`` (B, C, H, W) unless that variance is
    already within ``tol`` of 1.

    Dividing weight and bias by s divides the layer's output exactly by s, so one rescaling per layer reaches
    variance 1 (the paper iterates; here the returned variances, measured afresh, show it). Each measurement
    stops the forward pass right after the layer. BN layers are used in train mode (batch statistics);
    their running statistics are reset afterwards. Returns {layer name: output variance after LSUV}.
    Raises ValueError if a layer's output is constant on ``images``.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (B, C, H, W); got shape {tuple(images.shape)}")
    if orthogonal:
        orthogonal_(model)
    was_training = model.training
    model.train()
    for name, layer in weighted_layers(model).items():
        var = _output_variance(model, layer, images)
        if var <= 0:
            raise ValueError(f"LSUV: the output of {name} is constant on these images; cannot rescale it")
        if abs(var - 1.0) >= tol:
            layer.weight.div_(var**0.5)
            if layer.bias is not None:
                layer.bias.div_(var**0.5)
    _reset_batchnorm(model)
    model.train(was_training)
    return layer_output_variances(model, images)


def relative_gradient_norms(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """||dL/dW|| / ||W|| of every conv / linear weight on one batch (BN in train mode), on a copy of ``model``."""
    probe = copy.deepcopy(model).train()
    probe.zero_grad(set_to_none=True)
    F.cross_entropy(probe(images), labels).backward()
    return {
        name + ".weight": (m.weight.grad.norm() / m.weight.detach().norm()).item()
        for name, m in weighted_layers(probe).items()
    }


def layer_lr_scales(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, reference: str | None = None
) -> dict[str, float]:
    """Per-weight learning-rate factors from the relative gradient norms r = ||dL/dW|| / ||W|| on one batch:
    ``min(1, r_reference / r)``, so that at initialisation no weight moves faster, relative to its size, than
    the reference (default: the last conv). {parameter name: factor in (0, 1]}."""
    rel = relative_gradient_norms(model, images, labels)
    convs = [k for k, m in zip(rel, weighted_layers(model).values()) if isinstance(m, nn.Conv2d)]
    reference = reference or convs[-1]
    if reference not in rel:
        raise ValueError(f"reference {reference!r} is not a conv / linear weight; choose from {list(rel)}")
    return {k: min(1.0, rel[reference] / r) if r > 0 else 1.0 for k, r in rel.items()}


def scale_layer_learning_rates(
    model: nn.Module, scales: Mapping[str, float], weight_decay: float
) -> list[torch.utils.hooks.RemovableHandle]:
    """Make plain SGD (momentum m, weight decay ``weight_decay``, learning rate lr) train parameter p with
    learning rate ``lr * scales[name]``, exactly.

    A gradient hook replaces g by s*g + (s-1)*wd*p, so SGD's d = g' + wd*p = s*(g + wd*p) and its momentum
    buffer is s times that of a per-parameter learning rate: the step is lr*s*buffer. Exact while s and wd are
    constant. Returns the hook handles (``handle.remove()`` undoes it). Raises KeyError for unknown names and
    ValueError for a factor outside (0, 1].
    """
    params = dict(model.named_parameters())
    handles = []
    for name, s in scales.items():
        if name not in params:
            raise KeyError(f"{name!r} is not a parameter of the model")
        if not 0 < s <= 1:
            raise ValueError(f"learning-rate factor of {name} must be in (0, 1]; got {s}")
        p = params[name]
        handles.append(p.register_hook(lambda g, p=p, s=s: s * g + (s - 1.0) * weight_decay * p.detach()))
    return handles
