"""Levers for fewer epochs (issue 25) that ``training.train`` applies when a ``TrainConfig`` field asks for them.

Each is off by default, and with every field at its default ``train`` does exactly what it did before they
existed (the same optimizer, batches and evaluation, bit for bit; tests/test_levers.py compares a seeded
history with one saved before this module was written).

- ``nesterov``: SGD with Nesterov momentum (torch's ``SGD(nesterov=True)``; needs momentum > 0).
- ``bn_weight_decay=False``: no weight decay on the *norm and bias* parameters (``norm_and_bias_names``: every
  parameter of a BatchNorm / GroupNorm / LayerNorm layer, and every other parameter named ``*.bias`` or
  ``bias``, e.g. the classifier's), as in Bag of Tricks (He et al. 2019, "no bias decay"). Conv and fc weights
  keep ``weight_decay``.
- ``bn_lr_scale``: those same parameters train at ``bn_lr_scale`` x the scheduled learning rate, with their
  weight decay divided by it, so that the decay per step (lr x wd) is unchanged and only the gradient step
  grows (airbench's ``bias_scaler`` does the same for its BN biases).
- ``tta_translate=k`` (with ``tta_flip``): evaluation averages the logits of six views (``tta_views``).
- ``first_conv_init``: ``train`` re-initialises the net's first conv before the first step: "dirac" (identity)
  or "whiten" (the training patches' whitening, airbench); see ``dirac_first_conv_`` and ``whiten_first_conv_``.
- ``progressive_resize=(k, s)``: the training batches of epochs 1..k are resized to s x s (``resized_batches``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from .data import Splits, normalize
from .runtime import is_positive_int

FIRST_CONV_INITS = ("dirac", "whiten")
NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
MAX_TTA_TRANSLATE = 4  # training translates by at most 4 pixels (pad-4 random crops)
MIN_RESIZE = 8  # smaller than 8x8 leaves the last stage of a CIFAR ResNet (H/4) at 1 pixel or less
WHITEN_IMAGES = 2000  # training images whose 3x3 patches (26 x 26 = 676 per 28x28 image) give the covariance
WHITEN_EPS = 5e-4  # added to each eigenvalue before the square root (airbench's value)


class LeverConfig(Protocol):
    """The fields of a ``training.TrainConfig`` that this module reads."""

    epochs: int
    lr: float
    momentum: float
    weight_decay: float
    tta_flip: bool
    nesterov: bool
    bn_weight_decay: bool
    bn_lr_scale: float
    tta_translate: int
    first_conv_init: str | None
    progressive_resize: tuple[int, int] | None


def check_lever_fields(config: LeverConfig) -> None:
    """Raise ``ValueError`` naming the field, what was expected and what was given (``TrainConfig.__post_init__``)."""
    for name in ("nesterov", "bn_weight_decay"):
        if not isinstance(getattr(config, name), bool):
            raise ValueError(f"{name} must be True or False; got {getattr(config, name)!r}")
    if config.nesterov and config.momentum == 0:
        raise ValueError("nesterov=True needs momentum > 0 (Nesterov momentum with no momentum is plain SGD)")
    scale = config.bn_lr_scale
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < math.inf:
        raise ValueError(f"bn_lr_scale must be a positive number (1.0 = the same lr as the weights); got {scale!r}")
    k = config.tta_translate
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= MAX_TTA_TRANSLATE:
        raise ValueError(f"tta_translate must be an integer from 0 (off) to {MAX_TTA_TRANSLATE} pixels; got {k!r}")
    if k and not config.tta_flip:
        raise ValueError("tta_translate > 0 averages flipped and translated views: set tta_flip=True as well")
    if config.first_conv_init not in (None, *FIRST_CONV_INITS):
        raise ValueError(f"first_conv_init must be None, 'dirac' or 'whiten'; got {config.first_conv_init!r}")
    resize = config.progressive_resize
    if resize is None:
        return
    if isinstance(resize, list):  # a config read back from JSON
        resize = config.progressive_resize = tuple(resize)
    if not (isinstance(resize, tuple) and len(resize) == 2 and all(is_positive_int(v) for v in resize)):
        raise ValueError(f"progressive_resize must be None or (low_res_epochs, size), e.g. (3, 20); got {resize!r}")
    if not 1 <= resize[0] < config.epochs:
        raise ValueError(
            f"progressive_resize=({resize[0]}, {resize[1]}): the low-resolution epochs must be 1 to epochs - 1 = "
            f"{config.epochs - 1}, so that the last epoch trains at full size"
        )
    if resize[1] < MIN_RESIZE:
        raise ValueError(f"progressive_resize size must be at least {MIN_RESIZE} pixels; got {resize[1]}")


# ---------------------------------------------------------------------------------------------------------------
# The optimizer: Nesterov, and the norm and bias parameters' weight decay and learning rate


def norm_and_bias_names(model: nn.Module) -> list[str]:
    """Names of the parameters of normalisation layers (BatchNorm, GroupNorm, LayerNorm) and of every other bias.

    For the course's ResNet-20: ``bn1.weight``, ``bn1.bias``, each block's ``bn1`` / ``bn2`` weight and bias,
    and ``fc.bias`` (its convs have no bias): 39 tensors, 1,386 numbers (with 10 classes).
    """
    names = []
    for module_name, module in model.named_modules():
        for name, _ in module.named_parameters(recurse=False):
            if isinstance(module, NORM_TYPES) or name == "bias":
                names.append(f"{module_name}.{name}" if module_name else name)
    return names


def parameter_groups(model: nn.Module, config: LeverConfig) -> list[dict[str, Any]]:
    """SGD's parameter groups: [the rest, the norm and bias parameters], or one group when the levers are off.

    Each group carries ``lr_scale`` (the factor on the scheduled learning rate, applied by ``ScaledSGD``)
    and its ``weight_decay``: the rest ``config.weight_decay``; norm and bias ``config.weight_decay /
    bn_lr_scale`` (0 with ``bn_weight_decay=False``).
    """
    if config.bn_weight_decay and config.bn_lr_scale == 1.0:
        return [{"params": list(model.parameters()), "weight_decay": config.weight_decay, "lr_scale": 1.0}]
    special = set(norm_and_bias_names(model))
    named = list(model.named_parameters())
    decay = config.weight_decay / config.bn_lr_scale if config.bn_weight_decay else 0.0
    return [
        {"params": [p for n, p in named if n not in special], "weight_decay": config.weight_decay, "lr_scale": 1.0},
        {"params": [p for n, p in named if n in special], "weight_decay": decay, "lr_scale": config.bn_lr_scale},
    ]


class ScaledSGD(torch.optim.SGD):
    """SGD whose step uses each group's ``lr`` times its ``lr_scale``: the engine sets every group's ``lr`` to the
    scheduled rate (``training._train_one_epoch``), and the groups of ``parameter_groups`` scale it here."""

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        scheduled = [group["lr"] for group in self.param_groups]
        for group in self.param_groups:
            group["lr"] = group["lr"] * group["lr_scale"]
        try:
            return super().step(closure)
        finally:
            for group, lr in zip(self.param_groups, scheduled):
                group["lr"] = lr


def make_optimizer(model: nn.Module, config: LeverConfig) -> torch.optim.SGD:
    """The engine's SGD: momentum, weight decay, Nesterov and parameter groups as ``config`` says.

    With the levers off this is ``SGD(model.parameters(), lr, momentum, weight_decay)``, as it always was;
    with ``bn_weight_decay=False`` or ``bn_lr_scale`` a ``ScaledSGD`` over ``parameter_groups``.
    """
    if config.bn_weight_decay and config.bn_lr_scale == 1.0:
        return torch.optim.SGD(
            model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
            nesterov=config.nesterov,
        )  # fmt: skip
    return ScaledSGD(parameter_groups(model, config), lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)


# ---------------------------------------------------------------------------------------------------------------
# Test-time augmentation: flips and translations


def translate(x: torch.Tensor, shift: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H, W): the content moved ``shift`` pixels down and right (up and left if negative),
    the uncovered border filled by reflection (``F.pad(mode="reflect")``, as airbench's TTA)."""
    if shift == 0:
        return x
    k = abs(shift)
    h, w = x.shape[-2:]
    padded = F.pad(x, (k, k, k, k), mode="reflect")
    start = 0 if shift > 0 else 2 * k
    return padded[..., start : start + h, start : start + w]


def tta_views(x: torch.Tensor, shift: int) -> list[tuple[float, torch.Tensor]]:
    """The six weighted views of ``x`` (B, C, H, W) that ``tta_translate=shift`` averages (airbench's ``tta_level=2``).

    weight 1/4: x and its horizontal mirror; weight 1/8 each: x translated by (+shift, +shift) and by
    (-shift, -shift) pixels (down-right and up-left, ``translate``), and the mirror of each. Weights sum to 1.
    """
    views = [(0.25, x), (0.25, x.flip(-1))]
    for moved in (translate(x, shift), translate(x, -shift)):
        views += [(0.125, moved), (0.125, moved.flip(-1))]
    return views


def predict_views(model: nn.Module, x: torch.Tensor, shift: int) -> torch.Tensor:
    """(B, num_classes): the weighted mean of ``model``'s logits over ``tta_views(x, shift)``."""
    logits = None
    for weight, view in tta_views(x, shift):
        out = weight * model(view)
        logits = out if logits is None else logits + out
    return logits


# ---------------------------------------------------------------------------------------------------------------
# The first conv: identity (Dirac) or whitening initialisation


def first_conv(model: nn.Module) -> nn.Conv2d:
    """The first ``nn.Conv2d`` of ``model`` in registration order (the stem of the course's ResNets)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module
    raise ValueError(f"first_conv_init needs a model with an nn.Conv2d; {type(model).__name__} has none")


@torch.no_grad()
def dirac_first_conv_(model: nn.Module) -> nn.Conv2d:
    """Identity initialisation of the first conv (out, in, k, k): filter i < in passes input channel i through
    unchanged (1 at the centre tap, 0 elsewhere, ``nn.init.dirac_``); filters in..out-1 keep the weights they had.

    For the 1-channel stem of 16 filters: filter 0 is the image itself, filters 1-15 stay He-initialised.
    """
    conv = first_conv(model)
    if conv.groups != 1:
        raise ValueError(f"first_conv_init='dirac' needs an ungrouped first conv; it has groups={conv.groups}")
    identity = min(conv.out_channels, conv.in_channels)
    nn.init.dirac_(conv.weight[:identity])
    return conv


def image_patches(images: torch.Tensor, kernel_size: tuple[int, int]) -> torch.Tensor:
    """(N, C, H, W) float -> (N * L, C * kh * kw): every kh x kw patch (stride 1, no padding, L = (H-kh+1)(W-kw+1)),
    flattened in the order of a conv weight's (C, kh, kw)."""
    cols = F.unfold(images, kernel_size)  # (N, C*kh*kw, L)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def whitening_filters(
    patches: torch.Tensor, out_channels: int, eps: float = WHITEN_EPS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Filters (out_channels, d) that whiten ``patches`` (M, d), and the covariance's eigenvalues (d,), largest first.

    With Sigma = the patches' covariance (centred) = V diag(lambda) V^T and eigenvalues in decreasing order,
    filter j is s_j v_{j mod d} / sqrt(lambda_{j mod d} + eps), s_j = +1 for the first d filters, -1 for the
    next d, +1 again after 2d, ... So the first min(d, out) filters' outputs on the patches are uncorrelated
    with variance lambda / (lambda + eps) (about 1), and the sign-flipped copies let the ReLU after BN pass
    both halves of the strongest directions. A 1-channel 3x3 stem has d = 9 directions for 16 filters:
    filters 0-8 are the 9 directions, filters 9-15 minus the 7 strongest.
    """
    if patches.dim() != 2:
        raise ValueError(f"patches must be (M, d); got shape {tuple(patches.shape)}")
    flat = patches.double()
    centred = flat - flat.mean(dim=0)
    covariance = centred.T @ centred / max(1, len(flat) - 1)  # (d, d)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending
    eigenvalues, eigenvectors = eigenvalues.flip(0).clamp(min=0), eigenvectors.flip(1)
    d = len(eigenvalues)
    scaled = (eigenvectors / torch.sqrt(eigenvalues + eps)).T  # (d, d): row j = v_j / sqrt(lambda_j + eps)
    index = torch.arange(out_channels)
    sign = 1.0 - 2.0 * ((index // d) % 2).double()
    return (sign[:, None] * scaled[index % d]).float(), eigenvalues.float()


@torch.no_grad()
def whiten_first_conv_(model: nn.Module, images: torch.Tensor, eps: float = WHITEN_EPS) -> dict[str, Any]:
    """Set the first conv (out, C, kh, kw) to ``whitening_filters`` of the kh x kw patches of ``images``
    (N, C, H, W), normalised as the training batches are. Returns the eigenvalues (largest first) and the
    patch count. The conv stays trainable; in the course's nets BN follows it, so each filter's scale only sets
    how fast it moves, and its direction is what the init chooses (airbench also freezes the filters; we do not).
    """
    conv = first_conv(model)
    if conv.groups != 1 or conv.in_channels != images.shape[1]:
        raise ValueError(
            f"first_conv_init='whiten' needs an ungrouped first conv reading the images' {images.shape[1]} "
            f"channels; it has groups={conv.groups}, in_channels={conv.in_channels}"
        )
    patches = image_patches(images.float(), conv.kernel_size)
    filters, eigenvalues = whitening_filters(patches, conv.out_channels, eps)
    conv.weight.copy_(filters.view_as(conv.weight))
    return {"eigenvalues": eigenvalues.tolist(), "patches": len(patches), "eps": eps}


def init_first_conv(model: nn.Module, kind: str, splits: Splits) -> dict[str, Any]:
    """``train``'s hook for ``first_conv_init``: "dirac", or "whiten" on the first ``WHITEN_IMAGES`` training
    images of ``splits`` (normalised with its statistics; the split's order is already random). Uses no random
    numbers, so the rest of the run draws what it would have drawn."""
    if kind == "dirac":
        dirac_first_conv_(model)
        return {"kind": kind}
    if kind != "whiten":
        raise ValueError(f"first_conv_init must be 'dirac' or 'whiten'; got {kind!r}")
    images = splits.train.images[:WHITEN_IMAGES]
    device = first_conv(model).weight.device
    return {"kind": kind, **whiten_first_conv_(model, normalize(images, splits.mean, splits.std).to(device))}


# ---------------------------------------------------------------------------------------------------------------
# Progressive resizing


def training_size(progressive_resize: tuple[int, int] | None, epoch: int) -> int | None:
    """The side the training images of ``epoch`` (1-based) are resized to, or None (their own size)."""
    if progressive_resize is None:
        return None
    low_res_epochs, size = progressive_resize
    return size if epoch <= low_res_epochs else None


def resized_batches(
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    size: int | None,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``batches`` with each image batch (B, C, H, W), already augmented and normalised, resized to (B, C, size,
    size) by bilinear interpolation with antialiasing (``F.interpolate(..., antialias=True)``); ``size`` None
    returns ``batches`` itself. The net is unchanged: it ends in global average pooling, so any size >= 8 fits."""
    if size is None:
        return batches

    def resize(x: torch.Tensor) -> torch.Tensor:
        small = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        return small.contiguous(memory_format=memory_format)

    return ((resize(x), y) for x, y in batches)
