"""Looking inside a trained net: layer responses (the paper's Figure 7), effective receptive fields,
feature maps and Grad-CAM.

    inside.layer_response_stds(model, x)              # {BN name: std of its output}, each 3x3 layer in order
    inside.theoretical_receptive_field(model)         # side (pixels) of the last map's receptive field
    erf = inside.effective_receptive_field(model, x)  # (H, W) mean |d centre unit / d input|
    inside.effective_receptive_fields(model, x, {"layer1": model.layer1, "layer3": model.layer3})
    inside.mass_side(erf, 0.95)                       # side of the centred square holding 95 % of it
    inside.feature_maps(model, x[:1], {"stem": model.relu, "layer1": model.layer1})
    inside.grad_cam(model, model.layer3, x, targets)  # (B, h, w) at the layer's resolution

Every function here leaves the model as it found it: its train/eval mode, its weights and its hooks
(each hook it registers is removed in a ``finally``, also when the forward pass raises). Images are
normalized tensors (``probes.fixed_images``). References: He et al. 2015 (Figure 7), Luo et al. 2016
(effective receptive field), Selvaraju et al. 2017 (Grad-CAM).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .blocks import is_block


@contextlib.contextmanager
def _mode(model: nn.Module, training: bool) -> Iterator[nn.Module]:
    """Put ``model`` in train/eval mode for the block and restore its mode afterwards."""
    was_training = model.training
    model.train(training)
    try:
        yield model
    finally:
        model.train(was_training)


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a (B, C, H, W) tensor; got {shape}")


# ---------------------------------------------------------------------------------------------
# Layer responses (He et al. 2015, Figure 7)


def response_layers(model: nn.Module) -> dict[str, nn.BatchNorm2d]:
    """The BN right after each 3x3 conv, in registration (= forward) order: {BN name: module}.

    The paper's "responses" are these BNs' outputs: after BN, before the ReLU or the addition.
    A BN counts when the module registered just before it is a 3x3 ``nn.Conv2d`` (as in the course's
    blocks: conv1, bn1, ..., conv2, bn2); 1x1 projections and their BNs are left out.
    """
    found: dict[str, nn.BatchNorm2d] = {}
    previous: nn.Module | None = None
    for name, module in model.named_modules():
        if isinstance(module, nn.BatchNorm2d) and isinstance(previous, nn.Conv2d):
            if tuple(previous.kernel_size) == (3, 3):
                found[name] = module
        if not list(module.children()):  # leaves only: containers do not break a conv -> BN pair
            previous = module
    if not found:
        raise ValueError("the model has no 3x3 conv followed by a BatchNorm2d: no layer responses to measure")
    return found


@torch.no_grad()
def layer_response_stds(model: nn.Module, images: torch.Tensor, batch_size: int = 250) -> dict[str, float]:
    """Standard deviation of each 3x3 layer's response, BN in eval mode: {BN name: std}, in forward order.

    The response of a layer is its BN's output (``response_layers``) on ``images`` (B, C, H, W); its std
    is taken over all B x C x H x W values at once (``torch.std``, unbiased). The hook copies the output
    before the block's in-place ReLU or ``+=`` can change it.
    """
    _check_images(images)
    layers = response_layers(model)
    sums = {name: torch.zeros((), dtype=torch.float64) for name in layers}
    squares = {name: torch.zeros((), dtype=torch.float64) for name in layers}
    counts = dict.fromkeys(layers, 0)

    def hook_for(name: str):  # noqa: ANN202
        def hook(_m: nn.Module, _inp: object, out: torch.Tensor) -> None:
            values = out.detach().double()
            sums[name] += values.sum()
            squares[name] += (values**2).sum()
            counts[name] += values.numel()

        return hook

    handles = [module.register_forward_hook(hook_for(name)) for name, module in layers.items()]
    try:
        with _mode(model, False):
            for start in range(0, len(images), batch_size):
                model(images[start : start + batch_size])
    finally:
        for handle in handles:
            handle.remove()
    stds = {}
    for name in layers:
        n = counts[name]
        mean = sums[name] / n
        variance = (squares[name] - n * mean**2) / (n - 1)
        stds[name] = float(variance.clamp_min(0).sqrt())
    return stds


# ---------------------------------------------------------------------------------------------
# Receptive fields (Luo et al. 2016)


def _main_path(model: nn.Module) -> list[nn.Module]:
    """Convs and pools on the longest path (stem, then each block's branch), in forward order."""
    skip: set[int] = set()
    for module in model.modules():
        if is_block(module) and getattr(module, "downsample", None) is not None:
            skip.update(id(m) for m in module.downsample.modules())
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)) and id(m) not in skip]


def theoretical_receptive_field(model: nn.Module) -> int:
    """Side (pixels) of the receptive field of one unit of the model's last feature map, longest path.

    r = 1 + sum over the path's layers of (k - 1) * j, where j is the product of the strides before the
    layer (the distance in input pixels between neighbouring units). The path is the stem and every
    block's residual branch (shortcuts are shorter). CIFAR plain-20/ResNet-20: 81; 56: 249. Not clipped
    to the image: a field larger than the image just covers all of it (plus padding).
    """
    r, j = 1, 1
    for m in _main_path(model):
        k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
        s = m.stride if isinstance(m.stride, int) else m.stride[0]
        d = getattr(m, "dilation", 1)
        d = d if isinstance(d, int) else d[0]
        r += (k - 1) * d * j
        j *= s
    return r


def last_feature_map(model: nn.Module) -> nn.Module:
    """The module whose output is the last feature map of a course CIFAR/ImageNet ResNet: its last stage."""
    for name in ("layer4", "layer3"):
        if hasattr(model, name):
            return getattr(model, name)
    raise ValueError("give the layer whose output is the last feature map (no layer3/layer4 on this model)")


def effective_receptive_field(
    model: nn.Module, images: torch.Tensor, layer: nn.Module | None = None, batch_size: int = 64
) -> np.ndarray:
    """Mean over images of |d(centre unit of ``layer``'s output) / d(input)|, summed over input channels: (H, W).

    The centre unit is position (h // 2, w // 2) of the layer's (B, C, h, w) output, summed over its C
    channels (Luo et al.'s one-hot gradient at the centre of the output map). ``layer`` defaults to the
    last stage (``last_feature_map``). BN in eval mode: give a net at initialization calibrated BN
    statistics first (``probes.calibrate_batchnorm``). Magnitudes are averaged, so signs cannot cancel.
    """
    layer = layer if layer is not None else last_feature_map(model)
    return effective_receptive_fields(model, images, {"layer": layer}, batch_size)["layer"]


def effective_receptive_fields(
    model: nn.Module, images: torch.Tensor, layers: Mapping[str, nn.Module], batch_size: int = 64
) -> dict[str, np.ndarray]:
    """``effective_receptive_field`` of several layers ({label: module}) from one forward pass per batch."""
    _check_images(images)
    captured: dict[str, torch.Tensor] = {}
    handles = []
    for label, module in layers.items():

        def hook(_m: nn.Module, _i: object, out: torch.Tensor, label: str = label) -> None:
            captured[label] = out

        handles.append(module.register_forward_hook(hook))
    totals = {label: torch.zeros(images.shape[2:], dtype=torch.float64) for label in layers}
    try:
        with _mode(model, False):
            for start in range(0, len(images), batch_size):
                captured.clear()
                x = images[start : start + batch_size].detach().clone().requires_grad_(True)
                model(x)
                missing = [label for label in layers if label not in captured]
                if missing:
                    raise ValueError(f"layers {missing} were not used in the forward pass")
                for i, label in enumerate(layers):
                    out = captured[label]
                    h, w = out.shape[2] // 2, out.shape[3] // 2
                    (grad,) = torch.autograd.grad(out[:, :, h, w].sum(), x, retain_graph=i < len(layers) - 1)
                    totals[label] += grad.abs().sum(dim=1).sum(dim=0).double()
    finally:
        for handle in handles:
            handle.remove()
    return {label: (total / len(images)).numpy() for label, total in totals.items()}


def mass_side(field: np.ndarray, fraction: float = 0.95, centre: tuple[int, int] | None = None) -> int:
    """Side of the smallest odd square around ``centre`` holding ``fraction`` of ``field``'s total, clipped.

    field (H, W), non-negative. centre: (row, col); by default the field's centre of mass, rounded. The
    square is clipped to the image, so the side returned is at most max(H, W).
    """
    field = np.asarray(field, dtype=float)
    if field.ndim != 2 or (field < 0).any():
        raise ValueError("field must be a non-negative (H, W) array")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1]; got {fraction}")
    total = field.sum()
    if total <= 0:
        raise ValueError("field is zero everywhere: there is no mass to enclose")
    height, width = field.shape
    if centre is None:
        rows, cols = np.indices(field.shape)
        centre = (int(round((rows * field).sum() / total)), int(round((cols * field).sum() / total)))
    cy, cx = centre
    for half in range(max(height, width) + 1):
        inside = field[max(cy - half, 0) : cy + half + 1, max(cx - half, 0) : cx + half + 1].sum()
        if inside >= fraction * total * (1 - 1e-12):
            return min(2 * half + 1, max(height, width))
    return max(height, width)


# ---------------------------------------------------------------------------------------------
# Feature maps


@torch.no_grad()
def feature_maps(model: nn.Module, images: torch.Tensor, layers: Mapping[str, nn.Module]) -> dict[str, torch.Tensor]:
    """The outputs of ``layers`` ({label: module}) for ``images`` (B, C, H, W), eval mode: {label: (B, C', h, w)}."""
    _check_images(images)
    maps: dict[str, torch.Tensor] = {}
    handles = []
    for label, module in layers.items():

        def hook(_m: nn.Module, _i: object, out: torch.Tensor, label: str = label) -> None:
            maps[label] = out.detach().clone()

        handles.append(module.register_forward_hook(hook))
    try:
        with _mode(model, False):
            model(images)
    finally:
        for handle in handles:
            handle.remove()
    return maps


# ---------------------------------------------------------------------------------------------
# Grad-CAM (Selvaraju et al. 2017)


def grad_cam(
    model: nn.Module, layer: nn.Module, images: torch.Tensor, targets: torch.Tensor | int | None = None
) -> torch.Tensor:
    """Grad-CAM of ``layer`` for classes ``targets``: (B, C, H, W) images -> (B, h, w) maps, eval mode.

    A = the layer's output (B, K, h, w); y = the logit (the score before the softmax) of each image's
    target class; alpha_k = mean over h, w of dy/dA_k (one weight per channel); map = ReLU(sum_k alpha_k A_k).
    targets: (B,) class indices, one int for all images, or None for each image's predicted class.
    The map stays at the layer's resolution (``upsample`` brings it to the image's) and is not normalized,
    so it can be compared with Captum's ``LayerGradCam(...).attribute(..., relu_attributions=True)``.
    """
    _check_images(images)
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        with _mode(model, False), torch.enable_grad():
            logits = model(images.detach())
            if not captured:
                raise ValueError("the layer given to grad_cam was not used in the forward pass")
            activations = captured[-1]  # (B, K, h, w)
            if targets is None:
                targets = logits.argmax(dim=1)
            targets = torch.as_tensor(targets, dtype=torch.long).expand(len(images))
            score = logits.gather(1, targets[:, None]).sum()
            (gradients,) = torch.autograd.grad(score, activations)  # (B, K, h, w)
    finally:
        handle.remove()
    weights = gradients.mean(dim=(2, 3), keepdim=True)  # (B, K, 1, 1): global average of the gradient
    return F.relu((weights * activations.detach()).sum(dim=1))


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, h, w) maps to (B, H, W) by bilinear interpolation (as Captum's ``LayerAttribution.interpolate``)."""
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def randomize_weights(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with every conv and linear weight redrawn (Kaiming-normal, seeded), BN statistics kept.

    Adebayo et al.'s model-randomisation test (all layers at once): a saliency method whose maps do not
    change explains the image, not the model.
    """
    probe = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in probe.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
    return probe


def map_correlation(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Pearson correlation of two batches of maps (B, H, W), image by image: (B,); 0 where a map is constant."""
    if a.shape != b.shape:
        raise ValueError(f"maps must have the same shape; got {tuple(a.shape)} and {tuple(b.shape)}")
    fa, fb = a.flatten(1).double(), b.flatten(1).double()
    fa = fa - fa.mean(dim=1, keepdim=True)
    fb = fb - fb.mean(dim=1, keepdim=True)
    return ((fa * fb).sum(1) / (fa.norm(dim=1) * fb.norm(dim=1)).clamp_min(1e-30)).numpy()
