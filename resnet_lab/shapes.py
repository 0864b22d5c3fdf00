"""Feature-map sizes: the formula, and tables measured with hooks or predicted from it.

The output size of a convolution or pooling layer along one dimension is

    M = floor((N + 2p - d(k - 1) - 1) / s) + 1,

which for dilation d = 1 is the familiar M = floor((N + 2p - k) / s) + 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .blocks import is_block
from .costs import count_parameters


def conv_output_size(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a conv/pool layer along one dimension of length ``n``.

    >>> conv_output_size(224, kernel=7, stride=2, padding=3)
    112
    """
    for name, value, low in (
        ("n", n, 1),
        ("kernel", kernel, 1),
        ("stride", stride, 1),
        ("padding", padding, 0),
        ("dilation", dilation, 1),
    ):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
    m = (n + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    if m < 1:
        raise ValueError(
            f"a {kernel}x{kernel} window (dilation {dilation}, padding {padding}) does not fit in {n} pixels: "
            "the input is too small for this layer"
        )
    return m


@dataclass(frozen=True)
class FeatureMapRow:
    """One row of a feature-map table: a layer, its output shape (no batch dim) and its parameters."""

    name: str
    layer: str
    shape: tuple[int, ...]
    params: int


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[-1]))


def _table_modules(model: nn.Module, blocks: bool) -> list[tuple[str, nn.Module]]:
    """Top-level layers of the model; with ``blocks=True`` stages are opened into their blocks."""
    rows: list[tuple[str, nn.Module]] = []
    for name, child in model.named_children():
        if blocks and isinstance(child, nn.Sequential):
            rows += [(f"{name}.{i}", b) for i, b in child.named_children()]
        else:
            rows.append((name, child))
    return rows


def _describe(module: nn.Module) -> str:
    if isinstance(module, nn.Sequential):
        kinds = {type(m).__name__ for m in module}
        return f"{len(module)} x {kinds.pop()}" if len(kinds) == 1 else "Sequential"
    return type(module).__name__


def feature_map_table(model: nn.Module, input_size: tuple[int, ...], blocks: bool = False) -> list[FeatureMapRow]:
    """Run one zero batch through ``model`` and record each layer's output shape with forward hooks.

    ``input_size`` is (N, C, H, W); shapes in the table drop the batch dimension. The batch is
    made on the model's device.
    """
    device = next(model.parameters()).device
    measured: dict[str, tuple[int, ...]] = {}
    handles = []
    layers = _table_modules(model, blocks)
    for name, module in layers:

        def hook(_m: nn.Module, _inp: object, out: torch.Tensor, name: str = name) -> None:
            measured[name] = tuple(out.shape[1:])

        handles.append(module.register_forward_hook(hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(input_size, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return [
        FeatureMapRow(name, _describe(m), measured[name], count_parameters(m)) for name, m in layers if name in measured
    ]


def _predict_module(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape after ``module`` from the formula alone; ``shape`` is (C, H, W) or (features,)."""
    if isinstance(module, nn.Conv2d):
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (
            _pair(module.kernel_size),
            _pair(module.stride),
            _pair(module.padding),
            _pair(module.dilation),
        )
        return (
            module.out_channels,
            conv_output_size(shape[1], kh, sh, ph, dh),
            conv_output_size(shape[2], kw, sw, pw, dw),
        )
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        (kh, kw), (sh, sw), (ph, pw) = (
            _pair(module.kernel_size),
            _pair(module.stride or module.kernel_size),
            _pair(module.padding),
        )
        dh, dw = _pair(getattr(module, "dilation", 1))
        return (shape[0], conv_output_size(shape[1], kh, sh, ph, dh), conv_output_size(shape[2], kw, sw, pw, dw))
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return (shape[0], *_pair(module.output_size))
    if isinstance(module, nn.Linear):
        return (module.out_features,)
    if is_block(module):
        # The residual branch decides the shape; the shortcut is built to match it.
        for name in module.branch_convs:
            shape = _predict_module(getattr(module, name), shape)
        return shape
    if isinstance(module, nn.Sequential):
        for child in module:
            shape = _predict_module(child, shape)
        return shape
    if isinstance(module, (nn.BatchNorm2d, nn.ReLU, nn.Identity)):
        return shape
    raise TypeError(f"no size rule for {type(module).__name__}; add one to resnet_lab.shapes._predict_module")


def predicted_feature_map_table(
    model: nn.Module, input_size: tuple[int, ...], blocks: bool = False
) -> list[FeatureMapRow]:
    """The same table as ``feature_map_table``, computed from the conv formula without running the model."""
    shape: tuple[int, ...] = tuple(input_size[1:])
    rows = []
    for name, module in _table_modules(model, blocks):
        shape = _predict_module(module, shape)
        rows.append(FeatureMapRow(name, _describe(module), shape, count_parameters(module)))
    return rows


def _fmt_shape(shape: tuple[int, ...]) -> str:
    return " x ".join(str(s) for s in shape)


def format_feature_map_table(rows: list[FeatureMapRow]) -> str:
    """Aligned text: layer name, type, output shape (C x H x W) and parameters."""
    header = f"{'layer':<10}{'type':<16}{'output (C x H x W)':>20}{'params':>13}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r.name:<10}{r.layer:<16}{_fmt_shape(r.shape):>20}{r.params:>13,}")
    lines.append(f"{'total':<46}{sum(r.params for r in rows):>13,}")
    return "\n".join(lines)


def format_side_by_side(predicted: list[FeatureMapRow], measured: list[FeatureMapRow]) -> str:
    """Formula vs hooks, one layer per line, with a check mark where they agree."""
    header = f"{'layer':<10}{'type':<16}{'formula':>18}{'measured':>18}  agree"
    lines = [header, "-" * len(header)]
    for p, m in zip(predicted, measured, strict=True):
        mark = "yes" if p.shape == m.shape else "MISMATCH"
        lines.append(f"{p.name:<10}{p.layer:<16}{_fmt_shape(p.shape):>18}{_fmt_shape(m.shape):>18}  {mark}")
    return "\n".join(lines)
