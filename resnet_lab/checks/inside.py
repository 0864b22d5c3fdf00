"""Checker for the exercise of notebook 12 (looking inside a trained ResNet).

* :func:`grad_cam`: Grad-CAM by hand with hooks, ``fn(model, layer, images, targets) -> (B, h, w) maps``.

The checker runs the student's function on small random nets (a CIFAR ResNet-8 with one input channel at
two layers, and a plain conv net), compares the maps with :func:`resnet_lab.inside.grad_cam`, checks that
no hook is left on any module afterwards and that the model is back in the mode it was handed over in
(training), and names the mistake
when the maps equal those of a typical wrong version (no ReLU, the gradient averaged over the wrong
dimension, no spatial average, the softmax probability instead of the class score).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import inside
from ..models import cifar_resnet
from .engine import SEED, call_student, fail, fmt_shape, n_match, passed, run_configs

__all__ = ["grad_cam"]

GradCamConfig = tuple[str, str]  # (net: "resnet8" or "plain", layer name)


class _PlainNet(nn.Module):
    """conv 3x3 (1 -> 6) - ReLU - conv 3x3 stride 2 (6 -> 8) - ReLU - pool - linear: (N, 1, 12, 12) -> (N, 5)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        return self.fc(x.mean(dim=(2, 3)))


def resnet8_with_bn_statistics() -> nn.Module:
    """A CIFAR ResNet-8 (1 input channel, 10 classes) from the current seed, its BN running statistics and biases
    drawn away from 0 / 1 (seed ``SEED + 1``), so that eval mode is not a no-op. Input (N, 1, H, W)."""
    model = cifar_resnet(8, in_channels=1, num_classes=10)
    generator = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2, generator=generator)
                m.running_var.uniform_(0.5, 2.0, generator=generator)
                m.bias.normal_(0, 0.3, generator=generator)
    return model


def _setup(config: GradCamConfig) -> tuple[nn.Module, nn.Module, torch.Tensor, torch.Tensor]:
    net, layer_name = config
    torch.manual_seed(SEED)
    if net == "resnet8":
        model: nn.Module = resnet8_with_bn_statistics()
        size, classes = 16, 10
    else:
        model = _PlainNet()
        size, classes = 12, 5
    model.train()  # the student's function has to put it in eval mode
    generator = torch.Generator().manual_seed(SEED + 2)
    images = torch.randn(4, 1, size, size, generator=generator)
    targets = torch.randint(0, classes, (4,), generator=generator)
    return model, dict(model.named_modules())[layer_name], images, targets


def _maps(model: nn.Module, layer: nn.Module, images: torch.Tensor, targets: torch.Tensor, how: str) -> torch.Tensor:
    """Reference maps, or those of a typical mistake ``how``."""
    if how == "reference":
        return inside.grad_cam(model, layer, images, targets)
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
    was_training = model.training
    try:
        model.eval()
        logits = model(images)
        scores = logits.softmax(dim=1) if how == "softmax" else logits
        (grads,) = torch.autograd.grad(scores.gather(1, targets[:, None]).sum(), captured[-1])
    finally:
        handle.remove()
        model.train(was_training)
    acts = captured[-1].detach()
    if how == "no_relu":
        return (grads.mean(dim=(2, 3), keepdim=True) * acts).sum(dim=1)
    if how == "channel_mean":
        return F.relu((grads.mean(dim=1, keepdim=True) * acts).sum(dim=1))
    if how == "no_spatial_mean":
        return F.relu((grads * acts).sum(dim=1))
    return F.relu((grads.mean(dim=(2, 3), keepdim=True) * acts).sum(dim=1))  # softmax


_MISTAKES: list[tuple[str, str]] = [
    (
        "no_relu",
        "no ReLU on the map: Grad-CAM keeps only what speaks *for* the class, so apply a ReLU to the weighted sum",
    ),
    (
        "channel_mean",
        "the weights come from the wrong dimension of the gradient: average it over the spatial dims (2, 3), "
        "one weight per channel, not over the channels (dim 1)",
    ),
    (
        "no_spatial_mean",
        "the gradient was not averaged over the spatial dims: each channel's weight is the mean of its gradient "
        "over h and w, one number per channel",
    ),
    ("softmax", "take the gradient of the class score (the logit), not of the softmax probability"),
]


def _hooks_left(model: nn.Module) -> list[str]:
    names = []
    for name, m in model.named_modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            if getattr(m, attr, None):
                names.append(f"{name or 'the model'}.{attr.lstrip('_')}")
    return names


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def grad_cam(fn: Callable[..., Any], configs: Sequence[GradCamConfig] | None = None) -> None:
    """Check ``fn(model, layer, images, targets) -> maps``: Grad-CAM at ``layer``'s resolution, (B, h, w).

    ``configs``: (net, layer name) pairs, net "resnet8" (a CIFAR ResNet-8, 1 input channel, 16x16 images) or
    "plain" (a two-conv net, 12x12 images); by default ("resnet8", "layer3"), ("resnet8", "layer2") and
    ("plain", "conv2"). The net is handed over in training mode; the maps must be computed in eval mode (BN with
    its running statistics), no hook may be left on any module, and the model must be back in training mode.
    """
    checker = "grad_cam"
    name = getattr(fn, "__name__", "your function")

    def check_one(config: GradCamConfig) -> None:
        net, layer_name = config
        where = f"{checker}, {'CIFAR ResNet-8' if net == 'resnet8' else 'a plain two-conv net'} at {layer_name}"
        with torch.random.fork_rng(devices=[]):
            model, layer, images, targets = _setup(config)
            call = f"{name}(model, model.{layer_name}, images, targets)"
            got = call_student(checker, where, call, fn, model, layer, images.clone(), targets.clone())
            left = _hooks_left(model)
            if left:
                raise fail(
                    where,
                    f"hooks are still registered after {call}: {', '.join(left)}",
                    "keep the handle each register_*_hook returns and call handle.remove() when done "
                    "(in a finally: block, so an error does not leave them behind)",
                )
            if not model.training:
                raise fail(
                    where,
                    f"{call} left the model in eval mode; it was handed over in training mode",
                    "note model.training before calling model.eval() and restore it with model.train(was_training) "
                    "in the finally: block, so the caller gets the model back as it was",
                )
            model.train()  # the reference and the mistakes start from the same mode as the student's call
            expected = _maps(model, layer, images, targets, "reference")
            if not isinstance(got, torch.Tensor):
                raise fail(where, f"{call} returned {type(got).__name__}, expected a tensor", "return the maps")
            got = got.detach().float()
            if got.shape != expected.shape:
                hint = "one map per image at the layer's resolution, (B, h, w): sum the weighted maps over channels"
                if got.dim() == 4 and got.shape[1] == 1:
                    hint = "drop the channel dimension of size 1: return (B, h, w)"
                elif got.shape[-2:] == images.shape[-2:]:
                    hint = "return the map at the layer's resolution, before any upsampling to the image's size"
                raise fail(where, f"maps of shape {fmt_shape(got.shape)}, expected {fmt_shape(expected.shape)}", hint)
            if _close(got, expected):
                return
            hints = [hint for how, hint in _MISTAKES if _close(got, _maps(model, layer, images, targets, how))]
            problem = f"the maps differ from Grad-CAM's by up to {(got - expected).abs().max().item():.3g}"
        raise fail(
            where,
            problem,
            hints[:1]
            or [
                "weights = the class score's gradient at the layer, averaged over h and w; map = ReLU(sum over "
                "channels of weight x activation), in eval mode"
            ],
        )

    n = run_configs(list(configs or [("resnet8", "layer3"), ("resnet8", "layer2"), ("plain", "conv2")]), check_one)
    passed(checker, f"{n_match(n, 'net/layer pairs')} Grad-CAM (maps in eval mode, no hooks left, mode restored)")
