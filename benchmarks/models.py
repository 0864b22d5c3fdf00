"""Time forward + backward of resnet_lab.resnet50 against torchvision.models.resnet50.

Both models run in the same process, interleaved (ours, theirs, theirs, ours, ...), with the
same weights and the same batch. Each repeat times one step of each back to back and gives one
ratio ours / torchvision; the script prints the median and quartiles of those per-repeat ratios,
so a reader can tell a difference from noise (on a busy machine single ratios swing by 10%), and
the median time of each model.

    python benchmarks/models.py                 # batch 8 at 224x224, 21 repeats
    python benchmarks/models.py --batch 2 --size 128 --repeats 5
    python benchmarks/models.py --threads 1    # on a machine other programs keep busy
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
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (default: torch's, = cores); 1 suits a busy machine"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)  # a script of its own: the setting ends with the process

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
        print(
            f"repeat {i + 1:>2}: ours {ours_times[-1] * 1000:8.1f} ms, torchvision {theirs_times[-1] * 1000:8.1f} ms, "
            f"ratio {ours_times[-1] / theirs_times[-1]:.3f}",
            flush=True,
        )
    ratios = [a / b for a, b in zip(ours_times, theirs_times)]  # one per repeat: both timed back to back
    q1, median, q3 = spread(ratios)
    print(
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"batch {args.batch} x 3 x {args.size} x {args.size}, {args.repeats} repeats"
    )
    print(f"resnet_lab.resnet50   forward+backward median {statistics.median(ours_times) * 1000:8.1f} ms")
    print(f"torchvision resnet50  forward+backward median {statistics.median(theirs_times) * 1000:8.1f} ms")
    print(
        f"ratio ours / torchvision per repeat: median {median:.3f}, quartiles {q1:.3f} .. {q3:.3f}, "
        f"range {min(ratios):.3f} .. {max(ratios):.3f}"
    )
    return median


def spread(values: list[float]) -> tuple[float, float, float]:
    """First quartile, median and third quartile of ``values`` (at least 2 of them)."""
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


if __name__ == "__main__":
    main()
