"""What a network costs: parameters and multiply-adds (the paper's "FLOPs").

Multiply-adds are counted with ``torch.utils.flop_counter.FlopCounterMode``, which counts
each multiply-add of a convolution or matrix product as 2 FLOPs; we divide by 2.
Batch norm, ReLU, pooling and the shortcut additions are not counted, as in the paper
and in torchvision's tables.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (BN running statistics are buffers, not parameters)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


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
