"""Checkers for notebook 11 (why residual networks train): a lesion and a filter-normalised direction.

* ``lesion_block(fn)``: ``fn(model, name)`` returns a copy of ``model`` with block ``name`` deleted,
  i.e. replaced by what is left of it without its residual branch (Veit et al. 2016). Compared with
  ``resnet_lab.probes.lesion`` on small CIFAR nets, plain and residual, with random weights and BN
  statistics. Any replacement that computes the same outputs is accepted (``nn.Identity``, ``probes.Skip``;
  in a residual block also zeroing the weight and bias of its branch's last BN, which leaves ReLU(x) = x).
  Zeroing the last BN does not delete a *plain* block: it has no shortcut, so it then outputs zeros, and
  the default configurations include a plain net, which rejects it. The hints name the usual mistakes:
  the model passed in changed, nothing deleted, the wrong block deleted, a block that outputs zeros, the
  shortcut removed instead of the branch.
* ``filter_normalize(fn)``: ``fn(direction, model)`` returns Li et al. 2018's filter-normalised
  direction. Compared with ``resnet_lab.probes.filter_normalize``; the hints name normalising a whole
  layer, normalising filters to norm 1, normalising along the wrong dimension, and leaving biases and
  BN parameters in the direction.

Each checker takes the student's function and ``configs=None`` (hidden configurations for a grader),
runs them through ``engine.run_configs`` and prints one ``✓`` line, or raises ``AssertionError``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .. import probes
from ..blocks import BasicBlock, Bottleneck
from ..models import cifar_resnet
from .engine import SEED, call_student, close, fail, n_match, passed, run_configs

__all__ = ["lesion_block", "filter_normalize"]

INPUT_SIZE = 8  # the CIFAR nets downsample by 4: 8x8 maps are small and fast

HINT_CHANGED_MODEL = (
    "the model you were given has changed: a lesion works on a copy (a deep copy of the whole net), so the "
    "intact net stays available for the next lesion and for comparison"
)
HINT_NOTHING_DELETED = "your network computes exactly what the intact one does: no block was deleted"
HINT_ZEROS = (
    "the deleted block outputs zeros: deleting a block removes its own computation, but its input still "
    "flows on through the shortcut (for a block whose shape does not change, the block becomes the identity)"
)
HINT_BRANCH_KEPT = (
    "the block keeps its residual branch and loses its shortcut: a lesion does the opposite, the branch goes "
    "and the shortcut stays"
)


def _net(depth: int, residual: bool) -> nn.Module:
    """A CIFAR net (1 input channel) with seeded random weights and non-trivial BN statistics, in eval mode."""
    torch.manual_seed(SEED + depth + int(residual))
    net = cifar_resnet(depth, in_channels=1, residual=residual)
    generator = torch.Generator().manual_seed(SEED + 7)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                m.bias.copy_(torch.randn(n, generator=generator) * 0.2)
                m.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
    return net.eval()


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)


def _with_block(model: nn.Module, name: str, replacement: nn.Module) -> nn.Module:
    out = copy.deepcopy(model)
    parent, _, child = name.rpartition(".")
    setattr(out.get_submodule(parent) if parent else out, child, replacement)
    return out.eval()


class _Zeros(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


class _BranchOnly(nn.Module):
    """A block without its shortcut: ReLU(F(x)) for a residual basic block."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = copy.deepcopy(block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.block
        out = b.relu(b.bn1(b.conv1(x)))
        return b.relu(b.bn2(b.conv2(out)))


def _lesion_hints(model: nn.Module, name: str, x: torch.Tensor, y: torch.Tensor) -> list[str]:
    with torch.no_grad():
        if close(y, model(x)):
            return [HINT_NOTHING_DELETED]
        if close(y, _with_block(model, name, _Zeros())(x)):
            return [HINT_ZEROS]
        block = model.get_submodule(name)
        if getattr(block, "residual", False) and close(y, _with_block(model, name, _BranchOnly(block))(x)):
            return [HINT_BRANCH_KEPT]
        for other in probes.block_names(model):
            if other != name and close(y, probes.lesion(model, [other])(x)):
                return [
                    f"your network is the one with block `{other}` deleted, not `{name}`: check which block you replace"
                ]
    return [
        f"deleting `{name}` should leave every other block as it was and put, in place of `{name}`, what is left "
        "of it without its residual branch: for a block whose shape does not change, its input, unchanged"
    ]


def lesion_block(fn: Callable[..., Any], configs: Sequence[tuple[int, bool, str]] | None = None) -> None:
    """Check ``fn(model, name) -> nn.Module``: a copy of ``model`` with the block ``name`` deleted.

    Compared with ``probes.lesion(model, [name])`` (outputs in eval mode on a fixed batch); ``model`` must
    come back unchanged. ``configs``: (depth, residual, block name) of a CIFAR net with one input channel;
    blocks whose shape does not change (the lesson's lesions). By default four, one of them plain.
    """
    checker = "lesion_block"
    fn_name = getattr(fn, "__name__", "your function")
    cases = [
        tuple(c)
        for c in (
            configs or [(8, True, "layer1.0"), (14, True, "layer2.1"), (14, False, "layer3.1"), (20, True, "layer3.2")]
        )
    ]

    def check_one(case: tuple[int, bool, str]) -> None:
        depth, residual, name = case
        kind = "ResNet" if residual else "plain"
        call_text = f"{fn_name}(model, {name!r})"
        where = f"{checker}, {kind}-{depth}, {call_text}"
        model = _net(depth, residual)
        if name not in probes.block_names(model):
            raise ValueError(
                f"{checker}: {kind}-{depth} has no block {name!r}; its blocks: {probes.block_names(model)}"
            )
        before = _state(model)
        x = torch.randn(2, 1, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(SEED + 3)).abs()
        with torch.no_grad():
            expected = probes.lesion(model, [name])(x)
        result = call_student(checker, where, call_text, fn, model, name)
        if not isinstance(result, nn.Module):
            raise fail(
                where, f"{call_text} returned {type(result).__name__}, expected an nn.Module (the lesioned copy)"
            )
        changed = not _same_state(before, _state(model)) or not isinstance(
            model.get_submodule(name), (BasicBlock, Bottleneck)
        )
        if result is model or changed:
            raise fail(where, "the model passed in was changed", HINT_CHANGED_MODEL)
        result.eval()
        y = call_student(checker, where, f"the network {call_text} returned, on a batch", result, x.clone())
        if tuple(y.shape) != tuple(expected.shape):
            raise fail(where, f"output shape {tuple(y.shape)}, expected {tuple(expected.shape)}")
        if not close(y, expected):
            raise fail(
                where,
                "the outputs differ from resnet_lab.probes.lesion's (same weights)",
                _lesion_hints(model, name, x, y),
            )

    with torch.random.fork_rng(devices=[]):
        n = run_configs(cases, check_one)
    passed(
        checker,
        f"{n_match(n)} resnet_lab.probes.lesion (outputs with the block deleted; the model passed in unchanged)",
    )


# --------------------------------------------------------------------------------------
# Filter-normalised direction
# --------------------------------------------------------------------------------------


class _Tiny(nn.Module):
    """A conv with a bias, a BN, a linear layer: every kind of parameter a direction must handle."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 5, 3, bias=True)
        self.bn = nn.BatchNorm2d(5)
        self.fc = nn.Linear(5, 3)


def _direction_model(kind: str) -> nn.Module:
    torch.manual_seed(SEED + len(kind))
    if kind == "tiny":
        model = _Tiny()
        with torch.no_grad():
            model.bn.weight.uniform_(0.5, 1.5)
        return model
    depth = int(kind.split("-")[1])
    return cifar_resnet(depth, in_channels=1, residual=kind.startswith("ResNet"))


def _raw_direction(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {n: torch.randn(p.shape, generator=generator) for n, p in model.named_parameters()}


def _scaled(d: torch.Tensor, target: torch.Tensor, dims: tuple[int, ...] | None) -> torch.Tensor:
    """d rescaled so that its norm over ``dims`` (None: the whole tensor) equals ``target``'s."""
    if dims is None:
        return d * target.norm() / d.norm()
    norm = torch.linalg.vector_norm
    return d * norm(target, dim=dims, keepdim=True) / norm(d, dim=dims, keepdim=True)


def _direction_hints(
    model: nn.Module, raw: dict[str, torch.Tensor], got: dict[str, torch.Tensor], name: str
) -> list[str]:
    p = dict(model.named_parameters())[name].detach()
    d, y = raw[name], got[name].float()
    if p.dim() <= 1:
        if close(y, d):
            return [
                f"`{name}` (a bias or a BN parameter) is left as it was: give 1-D parameters zeros, so the slice "
                "leaves them where they are"
            ]
        return [f"`{name}` has one dimension (a bias or a BN parameter): its entry should be all zeros"]
    rest = tuple(range(1, p.dim()))
    if close(y, _scaled(d, p, None)):
        return [
            f"`{name}` is normalised as a whole (one norm for the layer): Li et al. normalise each *filter*, "
            "the slice along dim 0, to the norm of the same filter of the model"
        ]
    if close(y, d / torch.linalg.vector_norm(d, dim=rest, keepdim=True)):
        return [
            f"the filters of `{name}` have norm 1: each should get the norm of the model's same filter, "
            "so a step of 1 moves every filter by its own size"
        ]
    if close(y, _scaled(d, p, tuple(i for i in range(p.dim()) if i != 1))):
        return [f"`{name}` is normalised along dim 1 (input channels): a filter is a slice along dim 0, one output"]
    return [f"each filter i of `{name}` should be d[i] * ||w[i]|| / ||d[i]||, with w the model's weight"]


def filter_normalize(fn: Callable[..., Any], configs: Sequence[tuple[str, int]] | None = None) -> None:
    """Check ``fn(direction, model) -> dict``: Li et al. 2018's filter-normalised direction.

    Compared with ``probes.filter_normalize(direction, model)`` on a random direction: every weight with
    2 or more dimensions rescaled filter by filter (slices along dim 0) to the model's filter norms, every
    1-D parameter zero. Values may be float32 tensors of any layout of the parameter's shape.
    ``configs``: (model, seed) with model "tiny" (a conv with bias, a BN, a linear), "ResNet-8" or "plain-14".
    """
    checker = "filter_normalize"
    fn_name = getattr(fn, "__name__", "your function")
    cases = [tuple(c) for c in (configs or [("tiny", 1), ("ResNet-8", 2), ("plain-14", 3)])]

    def check_one(case: tuple[str, int]) -> None:
        kind, seed = case
        call_text = f"{fn_name}(direction, model)"
        where = f"{checker}, {kind} (direction seed {seed}), {call_text}"
        model = _direction_model(kind)
        raw = _raw_direction(model, seed)
        given = {k: v.clone() for k, v in raw.items()}
        expected = probes.filter_normalize(raw, model)
        got = call_student(checker, where, call_text, fn, given, model)
        if not isinstance(got, dict):
            raise fail(where, f"{call_text} returned {type(got).__name__}, expected a dict {{parameter name: tensor}}")
        names = [n for n, _ in model.named_parameters()]
        missing = [n for n in names if n not in got]
        if missing:
            raise fail(
                where,
                f"no entry for {', '.join(missing[:3])}" + (" ..." if len(missing) > 3 else ""),
                "the direction has one tensor per parameter of the model (model.named_parameters()), biases and "
                "BN parameters included (as zeros)",
            )
        for name in names:
            y = got[name]
            if not isinstance(y, torch.Tensor) or tuple(y.shape) != tuple(expected[name].shape):
                shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
                raise fail(where, f"`{name}`: got {shape}, expected a tensor of shape {tuple(expected[name].shape)}")
            if not close(y.float(), expected[name]):
                raise fail(
                    where,
                    f"`{name}` differs from resnet_lab.probes.filter_normalize's",
                    _direction_hints(model, raw, got, name),
                )

    with torch.random.fork_rng(devices=[]):
        n = run_configs(cases, check_one)
    passed(checker, f"{n_match(n)} resnet_lab.probes.filter_normalize (every parameter's entry)")
