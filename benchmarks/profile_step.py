"""Where a ResNet-20 training step spends its time on the CPU: convolutions against everything else.

    python benchmarks/profile_step.py               # fp32, batch 128, 1x28x28, channels_last, 2 threads
    python benchmarks/profile_step.py --threads 1 --steps 20
    python benchmarks/profile_step.py --precision bf16   # bf16 autocast, as precision="auto" on a CPU with native bf16

It profiles eager training steps (forward, loss, backward, SGD step) with ``torch.profiler`` after a few
warm-up steps, prints the share of the CPU time spent in convolution forward and backward, and torch's
table of the most expensive operations. The share tells how much ``torch.compile`` could save at most: on
the CPU it leaves the convolutions to the same oneDNN kernels and fuses the rest (batch norm, ReLU, the
additions of the shortcuts). It also groups the self CPU time into convolutions, casts between dtypes (bf16
autocast's conversions), batch norm, the optimizer step and the rest, so the bf16 step's time can be compared
with the fp32 step's.
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
# the groups of the summary: the first group whose test matches an op's name takes its self CPU time
GROUPS = {
    "convolution forward + backward": lambda key: key in CONVOLUTION_OPS,
    "casts (dtype conversions)": lambda key: key in ("aten::copy_", "aten::_to_copy", "aten::to"),
    "batch norm forward + backward": lambda key: "batch_norm" in key,
    "optimizer step (SGD)": lambda key: key.startswith("aten::_foreach") or key.startswith("Optimizer.step"),
    "ReLU, additions, loss and the rest": lambda key: True,
}


def grouped(events: object) -> dict[str, float]:
    """Self CPU time (microseconds) of the profiled ops per group of ``GROUPS``."""
    totals = dict.fromkeys(GROUPS, 0.0)
    for event in events:
        group = next(name for name, test in GROUPS.items() if test(event.key))
        totals[group] += event.self_cpu_time_total
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--steps", type=int, default=10, help="profiled training steps (after 3 warm-up steps)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="bf16: autocast forward + loss")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = cifar_resnet(20, in_channels=1).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    images = torch.randn(args.batch_size, 1, 28, 28).to(memory_format=torch.channels_last)  # (B, 1, 28, 28)
    labels = torch.randint(0, 10, (args.batch_size,))  # (B,)

    def step() -> None:
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(args.steps):
            step()
    events = profiler.key_averages()
    total = sum(event.self_cpu_time_total for event in events)
    convolutions = sum(event.self_cpu_time_total for event in events if event.key in CONVOLUTION_OPS)
    print(f"torch {torch.__version__}, {args.threads} threads, ResNet-20 {args.precision} channels_last, batch "
          f"{args.batch_size}, {args.steps} steps: convolution forward + backward {convolutions / total:.0%} of the "
          f"CPU time; {total / args.steps / 1e3:.1f} ms of self CPU time per step")  # fmt: skip
    for name, micros in grouped(events).items():
        print(f"  {name:<36} {micros / total:6.1%}  ({micros / args.steps / 1e3:6.1f} ms per step)")
    print(events.table(sort_by="self_cpu_time_total", row_limit=10))


if __name__ == "__main__":
    main()
