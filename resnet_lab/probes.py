"""Probes of *why* residual networks train: lesions, loss surfaces and gradient statistics.

    x, y = probes.fixed_images(splits.test, splits, 1000)         # normalized (B, C, H, W), labels (B,)
    probes.single_block_lesions(model, x, y)                        # {block name: error %}
    d1, d2 = (probes.random_direction(model, seed=s) for s in (1, 2))   # filter-normalised (filter_normalize)
    probes.loss_slice_2d(model, d1, d2, alphas, betas, x, y)        # loss on a grid, BN in eval mode
    probes.layer_gradient_norms(model, x, y)                        # {conv name: ||dL/dW||}
    probes.gradient_correlation(model, x)                           # shattered gradients (Balduzzi et al.)

Every probe works on a deep copy: the model you pass is never changed. Images are tensors that are
already normalized (``fixed_images`` does it); everything runs in fp32 on the CPU and returns plain
floats or NumPy arrays; figures live in ``plots``. References: Veit et al. 2016 (lesions), Li et al.
2018 (filter-normalised directions), Balduzzi et al. 2017 (shattered gradients).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .blocks import BasicBlock, Bottleneck, ZeroPadShortcut
from .data import ImageSet, Splits, normalize
from .models import CifarResNet, cifar_resnet
from .runtime import seed_everything

Direction = dict[str, torch.Tensor]  # parameter name -> tensor of the parameter's shape


# ---------------------------------------------------------------------------------------------
# Inputs and plain evaluation


def fixed_images(
    dataset: ImageSet, splits: Splits, n: int | None = None, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images of ``dataset`` chosen at random with ``seed`` (all, in order, if n is None), no augmentation.

    Returns images float32 (n, C, H, W) normalized with ``splits``' statistics and labels int64 (n,).
    """
    if n is None or n >= len(dataset):
        index = torch.arange(len(dataset))
    else:
        if n < 1:
            raise ValueError(f"n must be >= 1; got {n}")
        index = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:n]
    return normalize(dataset.images[index], splits.mean, splits.std), dataset.labels[index]


@torch.no_grad()
def loss_and_error(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500
) -> tuple[float, float]:
    """Mean cross-entropy and error (%) of ``model`` in eval mode (BN uses its running statistics).

    images (B, C, H, W) normalized, labels (B,). The model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    total_loss, wrong = 0.0, 0
    for start in range(0, len(labels), batch_size):
        x, y = images[start : start + batch_size], labels[start : start + batch_size]
        logits = model(x).float()
        total_loss += F.cross_entropy(logits, y, reduction="sum").item()
        wrong += (logits.argmax(dim=1) != y).sum().item()
    model.train(was_training)
    return total_loss / len(labels), 100.0 * wrong / len(labels)


def error(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Error (%) of ``model`` in eval mode on normalized ``images`` (B, C, H, W) with ``labels`` (B,)."""
    return loss_and_error(model, images, labels)[1]


# ---------------------------------------------------------------------------------------------
# Lesions (Veit, Wilber & Belongie 2016)


class Skip(nn.Module):
    """What is left of a block when it is deleted: ReLU(shortcut(x)), a map without parameters.

    For a residual block that is exactly the block with its residual branch removed. For an
    identity shortcut (same shape) it is x itself (x >= 0: it comes out of a ReLU). For a
    downsampling block with an option-A shortcut it keeps every 2nd pixel and fills the new channels
    with zeros: the next stage then sees half its channels empty, so such a lesion hurts more.
    A projection shortcut (option B/C) is kept with its trained weights. A plain block gets the same
    parameter-free map (identity, or option A's zero-pad when the shape changes), so plain and residual
    nets lose the same thing: the block's own computation.
    """

    def __init__(self, block: BasicBlock | Bottleneck) -> None:
        super().__init__()
        if block.residual and block.downsample is not None:
            self.shortcut: nn.Module = copy.deepcopy(block.downsample)
        elif block.stride != 1 or block.in_channels != block.out_channels:
            self.shortcut = ZeroPadShortcut(block.in_channels, block.out_channels, block.stride)
        else:
            self.shortcut = nn.Identity()
        self.changes_shape = block.stride != 1 or block.in_channels != block.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) -> (N, C_out, H/stride, W/stride)."""
        return F.relu(self.shortcut(x))


def block_names(model: nn.Module) -> list[str]:
    """Names of the model's blocks in forward order, e.g. ['layer1.0', ..., 'layer3.8']."""
    return [name for name, module in model.named_modules() if isinstance(module, (BasicBlock, Bottleneck))]


def downsampling_blocks(model: nn.Module) -> list[str]:
    """Names of the blocks that change the shape (stride 2 or more channels): their lesion keeps only a zero-pad."""
    modules = dict(model.named_modules())
    return [
        n for n in block_names(model) if modules[n].stride != 1 or modules[n].in_channels != modules[n].out_channels
    ]


def lesion(model: nn.Module, names: Sequence[str]) -> nn.Module:
    """A copy of ``model`` with the blocks ``names`` replaced by ``Skip`` (see there); ``model`` is unchanged."""
    known = block_names(model)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(
            f"no blocks named {unknown}; the model's blocks are {known[0]} ... {known[-1]} (block_names(model))"
        )
    lesioned = copy.deepcopy(model)
    modules = dict(lesioned.named_modules())
    for name in names:
        parent_name, _, child = name.rpartition(".")
        setattr(modules[parent_name] if parent_name else lesioned, child, Skip(modules[name]))
    return lesioned


def _blocks_and_head(model: nn.Module) -> tuple[list[nn.Module], nn.Module] | None:
    """A ``CifarResNet``'s blocks in forward order and its head (avgpool, flatten, fc).

    None for other models (the lesion functions then run every lesioned copy from the input).
    """
    if not isinstance(model, CifarResNet):
        return None
    stages = []
    while hasattr(model, f"layer{len(stages) + 1}"):
        stages.append(getattr(model, f"layer{len(stages) + 1}"))
    if not stages or not hasattr(model, "avgpool") or not hasattr(model, "fc"):
        return None
    blocks = [block for stage in stages for block in stage]
    if not all(isinstance(b, (BasicBlock, Bottleneck)) for b in blocks):
        return None
    return blocks, nn.Sequential(model.avgpool, nn.Flatten(1), model.fc)


@torch.no_grad()
def lesion_errors(
    model: nn.Module,
    lesions: Sequence[Sequence[str]],
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int = 250,
) -> list[float]:
    """Error (%) of ``model`` with each set of blocks in ``lesions`` deleted (``lesion``), BN in eval mode.

    The same numbers as ``error(lesion(model, names), ...)`` for each set, computed faster: the intact
    net's input to every block is kept, and each lesioned net runs only from its first deleted block on.
    """
    names = block_names(model)
    for names_k in lesions:
        unknown = [n for n in names_k if n not in names]
        if unknown:
            raise ValueError(f"no blocks named {unknown}; the model's blocks are {names[0]} ... {names[-1]}")
    parts = _blocks_and_head(model)
    if parts is None:
        return [error(lesion(model, list(names_k)), images, labels) for names_k in lesions]
    was_training = model.training
    model.eval()
    blocks, head = parts
    skips = {name: Skip(block) for name, block in zip(names, blocks)}
    wrong = [0] * len(lesions)
    for start in range(0, len(labels), batch_size):
        x, y = images[start : start + batch_size], labels[start : start + batch_size]
        model.check_input(x)
        inputs = []  # inputs[i]: what block i receives in the intact net
        h = model.relu(model.bn1(model.conv1(x)))
        for block in blocks:
            inputs.append(h)
            h = block(h)
        for j, names_k in enumerate(lesions):
            deleted = {names.index(n) for n in names_k}
            if not deleted:
                h = blocks[-1](inputs[-1])
            else:
                first = min(deleted)
                h = inputs[first]
                for i in range(first, len(blocks)):
                    h = skips[names[i]](h) if i in deleted else blocks[i](h)
            wrong[j] += (head(h).argmax(dim=1) != y).sum().item()
    model.train(was_training)
    return [100.0 * w / len(labels) for w in wrong]


def single_block_lesions(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Error (%) after deleting each block on its own: {block name: error}, in forward order."""
    names = block_names(model)
    return dict(zip(names, lesion_errors(model, [[name] for name in names], images, labels)))


def random_lesions(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    ks: Sequence[int],
    draws: int = 10,
    seed: int = 0,
    include_downsampling: bool = False,
) -> dict[int, np.ndarray]:
    """Error (%) after deleting ``k`` blocks drawn at random, ``draws`` times per k: {k: errors (draws,)}.

    Draws come from a generator seeded with ``seed`` (the same blocks for every model with the same
    block names). Downsampling blocks are left in unless ``include_downsampling``.
    """
    candidates = block_names(model)
    if not include_downsampling:
        candidates = [n for n in candidates if n not in downsampling_blocks(model)]
    generator = torch.Generator().manual_seed(seed)
    sets: list[list[str]] = []
    for k in ks:
        if not 0 <= k <= len(candidates):
            raise ValueError(f"k must be between 0 and {len(candidates)} (the blocks that may be deleted); got {k}")
        for _ in range(draws):
            chosen = torch.randperm(len(candidates), generator=generator)[:k].tolist()
            sets.append([candidates[i] for i in sorted(chosen)])
    errors = np.array(lesion_errors(model, sets, images, labels)).reshape(len(ks), draws)
    return {k: errors[i] for i, k in enumerate(ks)}


# ---------------------------------------------------------------------------------------------
# Loss surfaces (Li et al. 2018)


def random_direction(model: nn.Module, seed: int = 0, filter_normalized: bool = True) -> Direction:
    """A Gaussian random direction in weight space, one tensor per parameter.

    filter_normalized (Li et al. 2018): each filter of the direction (a slice along dim 0 of a conv or
    linear weight) is rescaled to the norm of the same filter of the model, so a step of 1 moves
    every filter by its own size and scale-invariant (BN-followed) layers are compared fairly
    (``filter_normalize``). Biases and BN weights (1-D parameters) get 0: the slices leave them where
    they are, as in the paper.
    """
    generator = torch.Generator().manual_seed(seed)
    direction: Direction = {}
    for name, p in model.named_parameters():
        if p.dim() <= 1:
            direction[name] = torch.zeros_like(p, dtype=torch.float32)
        else:
            direction[name] = torch.randn(p.shape, generator=generator)
    return filter_normalize(direction, model) if filter_normalized else direction


def filter_normalize(direction: Mapping[str, torch.Tensor], model: nn.Module) -> Direction:
    """Li et al. 2018's filter normalisation of a direction: a new direction, ``direction`` is not changed.

    For every parameter of ``model`` with 2 or more dimensions (conv weights (out, in, kh, kw), linear
    weights (out, in)), each filter ``d[i]`` (a slice along dim 0) is rescaled to the norm of the model's
    filter ``w[i]``: ``d[i] * ||w[i]|| / ||d[i]||``. Parameters with one dimension (biases, BN's weight and
    bias) get zeros. Returns {parameter name: float32 tensor of the parameter's shape}.
    """
    _check_direction(model, direction)
    normalized: Direction = {}
    for name, p in model.named_parameters():
        d = direction[name].float()
        if p.dim() <= 1:
            normalized[name] = torch.zeros_like(d)
            continue
        w = p.detach().float().flatten(1).norm(dim=1)
        normalized[name] = d * (w / d.flatten(1).norm(dim=1).clamp_min(1e-12)).view(-1, *([1] * (p.dim() - 1)))
    return normalized


def _check_direction(model: nn.Module, direction: Mapping[str, torch.Tensor]) -> None:
    for name, p in model.named_parameters():
        if name not in direction or tuple(direction[name].shape) != tuple(p.shape):
            raise ValueError(f"the direction does not fit this model at {name!r}: make it with random_direction(model)")


@torch.no_grad()
def _move(model: nn.Module, base: Mapping[str, torch.Tensor], steps: Sequence[tuple[float, Direction]]) -> None:
    for name, p in model.named_parameters():
        p.copy_(base[name] + sum((coef * d[name] for coef, d in steps), torch.zeros_like(p)))


def loss_slice_1d(
    model: nn.Module, direction: Direction, alphas: Sequence[float], images: torch.Tensor, labels: torch.Tensor
) -> dict[str, np.ndarray]:
    """Loss and error along theta + alpha * direction, BN in eval mode (its running statistics stay fixed).

    Returns {"alpha": (A,), "loss": (A,), "error": (A,)}; at alpha = 0 the loss is the model's own.
    """
    _check_direction(model, direction)
    probe = copy.deepcopy(model).eval()
    base = {name: p.detach().clone() for name, p in probe.named_parameters()}
    losses, errors = [], []
    for alpha in alphas:
        _move(probe, base, [(float(alpha), direction)])
        loss, err = loss_and_error(probe, images, labels)
        losses.append(loss)
        errors.append(err)
    return {"alpha": np.asarray(alphas, dtype=float), "loss": np.array(losses), "error": np.array(errors)}


def loss_slice_2d(
    model: nn.Module,
    direction_x: Direction,
    direction_y: Direction,
    alphas: Sequence[float],
    betas: Sequence[float],
    images: torch.Tensor,
    labels: torch.Tensor,
) -> dict[str, np.ndarray]:
    """Loss on the plane theta + alpha * direction_x + beta * direction_y, BN in eval mode.

    Returns {"alpha": (A,), "beta": (B,), "loss": (B, A), "error": (B, A)} (rows: beta, as contourf wants).
    """
    _check_direction(model, direction_x)
    _check_direction(model, direction_y)
    probe = copy.deepcopy(model).eval()
    base = {name: p.detach().clone() for name, p in probe.named_parameters()}
    loss = np.zeros((len(betas), len(alphas)))
    err = np.zeros_like(loss)
    for i, beta in enumerate(betas):
        for j, alpha in enumerate(alphas):
            _move(probe, base, [(float(alpha), direction_x), (float(beta), direction_y)])
            loss[i, j], err[i, j] = loss_and_error(probe, images, labels)
    return {
        "alpha": np.asarray(alphas, dtype=float),
        "beta": np.asarray(betas, dtype=float),
        "loss": loss,
        "error": err,
    }


@torch.no_grad()
def interpolate(
    model_a: nn.Module, model_b: nn.Module, alphas: Sequence[float], images: torch.Tensor, labels: torch.Tensor
) -> dict[str, np.ndarray]:
    """Loss and error of (1 - alpha) * A + alpha * B (Goodfellow et al. 2015), BN in eval mode.

    Every floating entry of the state dict is interpolated, the BN running statistics included, so
    alpha = 0 is exactly model A and alpha = 1 exactly model B (both of one architecture).
    Returns {"alpha": (A,), "loss": (A,), "error": (A,)}.
    """
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    if state_a.keys() != state_b.keys() or any(state_a[k].shape != state_b[k].shape for k in state_a):
        raise ValueError("interpolate needs two models of the same architecture (same state-dict keys and shapes)")
    probe = copy.deepcopy(model_a).eval()
    losses, errors = [], []
    for alpha in alphas:
        mixed = {
            k: torch.lerp(a.float(), state_b[k].float(), float(alpha)) if a.is_floating_point() else a
            for k, a in state_a.items()
        }
        probe.load_state_dict(mixed)
        loss, err = loss_and_error(probe, images, labels)
        losses.append(loss)
        errors.append(err)
    return {"alpha": np.asarray(alphas, dtype=float), "loss": np.array(losses), "error": np.array(errors)}


# ---------------------------------------------------------------------------------------------
# Gradient statistics


def layer_gradient_norms(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, train_mode: bool = True, relative: bool = False
) -> dict[str, float]:
    """||dL/dW|| of every conv and linear weight for one batch, in forward order: {parameter name: norm}.

    L is the mean cross-entropy of ``images`` (B, C, H, W) / ``labels`` (B,). train_mode: BN uses the
    batch's statistics, as during training (default); False: its running statistics. relative: divide by
    ||W||. Runs on a copy, so the model's BN statistics are not updated.
    """
    probe = copy.deepcopy(model).train(train_mode)
    probe.zero_grad(set_to_none=True)
    F.cross_entropy(probe(images), labels).backward()
    norms = {}
    for name, p in probe.named_parameters():
        if p.dim() > 1 and p.grad is not None:
            norm = p.grad.norm().item()
            norms[name] = norm / p.detach().norm().item() if relative else norm
    return norms


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, images: torch.Tensor) -> nn.Module:
    """A copy of ``model`` in eval mode whose BN running statistics are those of ``images`` (B, C, H, W).

    At initialization the running statistics are 0/1 and mean nothing; after this, eval-mode BN
    normalizes as train mode would on this batch, but every output depends only on its own input.
    """
    probe = copy.deepcopy(model)
    for m in probe.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: after one batch, exactly its statistics
    probe.train()
    probe(images)
    return probe.eval()


def input_gradients(model: nn.Module, inputs: torch.Tensor, readout: torch.Tensor) -> torch.Tensor:
    """d(logits . readout)/d(input) for each input, model in its current mode: (B, C, H, W) -> (B, C*H*W).

    readout (num_classes,): a fixed vector that turns the logits into one number per input.
    """
    x = inputs.detach().clone().requires_grad_(True)
    (model(x) @ readout).sum().backward()
    return x.grad.flatten(1)


def gradient_correlation(
    model: nn.Module, images: torch.Tensor, scales: Sequence[float] = (0.01, 0.1), seed: int = 0
) -> np.ndarray:
    """Shattered gradients (Balduzzi et al. 2017): how alike the input gradients of nearby inputs are.

    For each image x and each scale s, x' = x + s * noise (noise ~ N(0, 1) per pixel; images are
    normalized, so s is in units of the data's standard deviation). Returns, per scale, the mean over
    images of the Pearson correlation between the input gradients at x and at x' (``input_gradients``
    with a fixed random readout, BN calibrated on ``images`` and then in eval mode): 1 = the same
    gradient, 0 = unrelated, as white noise would be. Shape (len(scales),).
    """
    generator = torch.Generator().manual_seed(seed)
    probe = calibrate_batchnorm(model, images)
    num_classes = probe(images[:1]).shape[1]
    readout = torch.randn(num_classes, generator=generator)
    readout /= readout.norm()
    base = input_gradients(probe, images, readout)
    result = []
    for scale in scales:
        noise = torch.randn(images.shape, generator=generator)
        moved = input_gradients(probe, images + scale * noise, readout)
        a = base - base.mean(dim=1, keepdim=True)
        b = moved - moved.mean(dim=1, keepdim=True)
        corr = (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-30)
        result.append(corr.mean().item())
    return np.array(result)


def shattering_vs_depth(
    depths: Sequence[int],
    images: torch.Tensor,
    scales: Sequence[float] = (0.01, 0.1),
    seed: int = 0,
    num_classes: int = 10,
) -> dict[str, np.ndarray]:
    """``gradient_correlation`` of freshly initialized plain and residual CIFAR nets of each depth.

    Each net is built after ``seed_everything(seed)``, takes ``images``' channels and is probed on
    ``images``. Returns {"depth": (D,), "scale": (S,), "plain": (D, S), "residual": (D, S)}.
    """
    out = {"depth": np.array(depths), "scale": np.array(scales, dtype=float)}
    for kind, residual in (("plain", False), ("residual", True)):
        rows = []
        for depth in depths:
            seed_everything(seed)
            net = cifar_resnet(depth, in_channels=images.shape[1], num_classes=num_classes, residual=residual)
            rows.append(gradient_correlation(net, images, scales, seed))
        out[kind] = np.stack(rows)
    return out
