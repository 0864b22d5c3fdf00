"""Where a ResNet-20 training step spends its time on the CPU: convolutions against everything else.

    python benchmarks/profile_step.py               # fp32, batch 128, 1x28x28, channels_last, 2 threads
    python benchmarks/profile_step.py --threads 1 --steps 20

It profiles eager training steps (forward, loss, backward, SGD step) with ``torch.profiler`` after a few
warm-up steps, prints the share of the CPU time spent in convolution forward and backward, and torch's
table of the most expensive operations. The share tells how much ``torch.compile`` could save at most: on
the CPU it leaves the convolutions to the same oneDNN kernels and fuses the rest (batch norm, ReLU, the
additions of the shortcuts).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from resnet_lab import cifar_resnet  # noqa: E402

CONVOLUTION_OPS = ("aten::mkldnn_convolution", "aten::convolution_backward")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--steps", type=int, default=10, help="profiled training steps (after 3 warm-up steps)")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = cifar_resnet(20, in_channels=1).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    images = torch.randn(args.batch_size, 1, 28, 28).to(memory_format=torch.channels_last)  # (B, 1, 28, 28)
    labels = torch.randint(0, 10, (args.batch_size,))  # (B,)

    def step() -> None:
        optimizer.zero_grad()
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()

    for _ in range(3):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(args.steps):
            step()
    events = profiler.key_averages()
    total = sum(event.self_cpu_time_total for event in events)
    convolutions = sum(event.self_cpu_time_total for event in events if event.key in CONVOLUTION_OPS)
    print(f"torch {torch.__version__}, {args.threads} threads, ResNet-20 fp32 channels_last, batch {args.batch_size}, "
          f"{args.steps} steps: convolution forward + backward {convolutions / total:.0%} of the CPU time")  # fmt: skip
    print(events.table(sort_by="self_cpu_time_total", row_limit=10))


if __name__ == "__main__":
    main()
