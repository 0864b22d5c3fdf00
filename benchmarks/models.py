"""Time forward + backward of resnet_lab.resnet50 against torchvision.models.resnet50.

Both models run in the same process, interleaved (ours, theirs, ours, theirs, ...), with the
same weights and the same batch; the script prints the median time of each and their ratio.

    python benchmarks/models.py                 # batch 8 at 224x224, 9 repeats
    python benchmarks/models.py --batch 2 --size 128 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision

import resnet_lab


def time_step(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor) -> float:
    """Seconds for one forward + backward pass (gradients zeroed first)."""
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    loss = torch.nn.functional.cross_entropy(model(x), target)
    loss.backward()
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)

    device = resnet_lab.pick_device()
    torch.manual_seed(0)
    theirs = torchvision.models.resnet50().to(device).train()
    ours = resnet_lab.resnet50().to(device).train()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    target = torch.randint(0, 1000, (args.batch,), device=device)

    for _ in range(args.warmup):
        time_step(ours, x, target)
        time_step(theirs, x, target)
    ours_times, theirs_times = [], []
    for i in range(args.repeats):
        pair = [(ours, ours_times), (theirs, theirs_times)]
        for model, times in pair if i % 2 == 0 else pair[::-1]:  # alternate who goes first
            times.append(time_step(model, x, target))
    ours_median, theirs_median = statistics.median(ours_times), statistics.median(theirs_times)
    ratio = ours_median / theirs_median
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"batch {args.batch} x 3 x {args.size} x {args.size}, {args.repeats} repeats")
    print(f"resnet_lab.resnet50   forward+backward median {ours_median * 1000:8.1f} ms")
    print(f"torchvision resnet50  forward+backward median {theirs_median * 1000:8.1f} ms")
    print(f"ratio ours / torchvision: {ratio:.3f}")
    return ratio


if __name__ == "__main__":
    main()
