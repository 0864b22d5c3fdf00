"""How close training runs to what the CPU can do: the machine's own convolution rate, and a net's FLOPs per image.

    flops = train_flops_per_image(20)           # ResNet-20 on 1x28x28, forward + backward: 184.7 MFLOP
    rate = conv_rate("fp32")                    # GFLOP/s of a 3x3 conv (64 -> 64, 28x28, batch 128) right now
    efficiency(images_per_second, flops, rate)  # fraction of that rate a training loop reaches

Seconds differ from CPU to CPU (and from minute to minute on a shared machine); the *fraction* of the machine's
own convolution rate, measured in the same process, with the same threads and precision, is comparable across
machines. Used by ``benchmarks/training.py`` and notebook 13.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from .models import cifar_resnet

CONV_SHAPE = (128, 64, 28, 28)  # (N, C, H, W) of the reference convolution: a ResNet-20 layer1 conv at batch 128
PRECISIONS = ("fp32", "bf16")


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}")


def conv_step(x: torch.Tensor, w: torch.Tensor, precision: str = "fp32") -> None:
    """One forward + backward of a 3x3 convolution (stride 1, padding 1), in bf16 autocast if ``precision`` is
    "bf16". ``x``: (N, C, H, W) with ``requires_grad``; ``w``: (C_out, C, 3, 3). Leaves the gradients in ``.grad``."""
    _check_precision(precision)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        out = F.conv2d(x, w, padding=1)
    out.float().sum().backward()


def conv_flops(precision: str = "fp32") -> int:
    """FLOPs of one ``conv_step`` on ``CONV_SHAPE``, counted by ``torch.utils.flop_counter`` (forward + the two
    backward convolutions: 3 x 2 x N x C_out x H x W x C_in x 9 = 22,196,256,768)."""
    x = torch.randn(CONV_SHAPE, requires_grad=True)
    w = torch.randn(CONV_SHAPE[1], CONV_SHAPE[1], 3, 3, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        conv_step(x, w, precision)
    return counter.get_total_flops()


def conv_rate(precision: str = "fp32", steps: int = 10) -> float:
    """GFLOP/s of the reference 3x3 convolution (forward + backward, channels_last): the median of ``steps`` timed
    steps after two untimed ones, in this process with its current torch threads."""
    _check_precision(precision)
    if steps < 1:
        raise ValueError(f"steps must be at least 1; got {steps}")
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(CONV_SHAPE, generator=generator).to(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(CONV_SHAPE[1], CONV_SHAPE[1], 3, 3, generator=generator).mul_(0.05)
    w = w.to(memory_format=torch.channels_last).requires_grad_()
    times = []
    for step in range(steps + 2):
        x.grad = w.grad = None
        started = time.perf_counter()
        conv_step(x, w, precision)
        if step >= 2:
            times.append(time.perf_counter() - started)
    return conv_flops(precision) / statistics.median(times) / 1e9


def train_flops_per_image(depth: int = 20, size: int = 28) -> float:
    """FLOPs of one training image for the CIFAR-style ResNet-``depth`` on 1 x ``size`` x ``size`` (forward +
    backward, counted by ``torch.utils.flop_counter`` on a batch of 8; the optimizer step and the elementwise work
    of BN and ReLU are not counted)."""
    model = cifar_resnet(depth, in_channels=1)
    x = torch.randn(8, 1, size, size)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), torch.zeros(8, dtype=torch.long)).backward()
    return counter.get_total_flops() / 8


def efficiency(images_per_second: float, flops_per_image: float, conv_gflops: float) -> float:
    """The fraction of the convolution's rate a training loop reaches: images/s x FLOP per image / (conv GFLOP/s
    x 1e9). 1.0 would mean the whole net ran as fast as the reference convolution."""
    if conv_gflops <= 0:
        raise ValueError(f"conv_gflops must be positive; got {conv_gflops}")
    return images_per_second * flops_per_image / (conv_gflops * 1e9)
