"""Run by tests/test_distributed.py under torchrun: train a tiny net with ``training.train``, rank 0 saves it.

    torchrun --standalone --nproc_per_node=2 tests/distributed_worker.py --out DIR [--fail-at-step K]

The data, recipe and initial weights are defined here once, and the test builds its single-process
reference from the same functions.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn

from resnet_lab import cifar_resnet, data, runtime, training


def tiny_splits() -> data.Splits:
    """Fast-mode Fashion-MNIST cut to 64 train / 30 val / 30 test images: every code path, in seconds."""
    return data.load_fashion_mnist("subset", fast=True).first(train=64, val=30, test=30)


def tiny_config() -> training.TrainConfig:
    """Two epochs of batch 8 per process, no augmentation, fp32 NCHW: the same arithmetic as the reference."""
    return training.TrainConfig(epochs=2, batch_size=8, augment=False, precision="fp32", channels_last=False)


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return cifar_resnet(8, in_channels=1)


class FailAt(nn.Module):
    """Wraps a model; raises RuntimeError at its ``step``-th training forward (a crashing process)."""

    def __init__(self, model: nn.Module, step: int) -> None:
        super().__init__()
        self.model, self.calls_left = model, step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls_left -= 1
            if self.calls_left == 0:
                raise RuntimeError("this rank fails on purpose (test of a crashing process)")
        return self.model(x)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--fail-at-step", type=int, help="rank 1 raises at this training step")
    args = parser.parse_args()
    group = runtime.processes(timeout_seconds=60)
    model = tiny_model()
    net = FailAt(model, args.fail_at_step) if args.fail_at_step and group.rank == 1 else model
    history = training.train(net, tiny_splits(), tiny_config(), progress=False, device="cpu", threads=1)
    if group.is_main:
        torch.save(model.state_dict(), args.out / "model.pt")
        (args.out / "history.json").write_text(json.dumps(history.to_dict()))


if __name__ == "__main__":
    main()
