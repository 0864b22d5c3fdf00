"""What a network holds and costs: its parameters (and whether a state dict fits them) and its
multiply-adds (the paper's "FLOPs").

Multiply-adds are counted with ``torch.utils.flop_counter.FlopCounterMode``, which counts
each multiply-add of a convolution or matrix product as 2 FLOPs; we divide by 2.
Batch norm, ReLU, pooling and the shortcut additions are not counted, as in the paper
and in torchvision's tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (BN running statistics are buffers, not parameters)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def state_dict_mismatch(model: nn.Module, state_dict: Mapping[str, Any], show: int = 5) -> str:
    """Describe missing keys, unexpected keys and shape mismatches; ``""`` when ``state_dict`` fits."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong_shape = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and hasattr(state_dict[k], "shape") and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]

    def listing(title: str, items: list[str]) -> str:
        more = f", ... ({len(items) - show} more)" if len(items) > show else ""
        return f"  {len(items)} {title}: {', '.join(items[:show])}{more}"

    parts = [
        listing(title, items)
        for title, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", wrong_shape),
        )
        if items
    ]
    return "\n".join(parts)


def _flop_counter(model: nn.Module, input_size: tuple[int, ...]) -> FlopCounterMode:
    """Count one forward pass of a zero batch of ``input_size`` in eval mode.

    The pass runs on the ``meta`` device (shapes only, no arithmetic) with the model's
    parameters and buffers swapped for meta copies, so counting ResNet-152 takes a blink
    and the model itself is not touched.
    """
    meta_state = {name: t.to("meta") for name, t in (*model.named_parameters(), *model.named_buffers())}
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            functional_call(model, meta_state, (torch.zeros(input_size, device="meta"),))
    finally:
        model.train(was_training)
    return counter


def count_macs(model: nn.Module, input_size: tuple[int, ...] = (1, 3, 224, 224)) -> int:
    """Multiply-adds of one forward pass on a batch of ``input_size`` (N, C, H, W), in eval mode."""
    return _flop_counter(model, input_size).get_total_flops() // 2


def count_macs_by_layer(model: nn.Module, input_size: tuple[int, ...] = (1, 3, 224, 224)) -> dict[str, int]:
    """Multiply-adds per top-level child of ``model`` (stem layers, stages, head)."""
    per_module = _flop_counter(model, input_size).get_flop_counts()
    root = type(model).__name__
    return {name: sum(per_module.get(f"{root}.{name}", {}).values()) // 2 for name, _ in model.named_children()}
