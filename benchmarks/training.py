"""Training throughput of ResNet-20 on Fashion-MNIST: the engine against a naive loop; and time to accuracy.

    python benchmarks/training.py                   # all variants, 2,560 images each, 5 repeats (3 for compile)
    python benchmarks/training.py --threads 1       # e.g. on a machine busy with other jobs
    python benchmarks/training.py --skip compile    # the in-process variants only
    python benchmarks/training.py --time-to-accuracy --threshold 13 --seeds 0 1 2 \
        --set epochs=10 batch_size=256 lr=0.2 label_smoothing=0.1 ema_decay=0.999 tta_flip=true

Throughput (images/s of training; the engine's per-epoch evaluation is kept to 10 images):
  naive: a torch DataLoader over a Dataset that turns each image into a PIL image and applies
    per-sample torchvision transforms (RandomCrop(28, padding=4), RandomHorizontalFlip, ToTensor,
    Normalize), and an eager fp32 NCHW training step;
  engine: ``resnet_lab.training.train`` -- tensors in memory, augmentation on whole batches -- in fp32
    NCHW, fp32 channels_last, fp32 channels_last at batch 256 (lr 0.2, scaled with the batch), and
    (only on CPUs with native bf16, as ``precision="auto"`` decides) bf16 autocast NCHW and channels_last.
  These run in this process on the same images, round-robin over the repeats (so a slow spell of the
  machine hits every variant), after one untimed warm-up run each on 256 images.
  engine + torch.compile (fp32, the memory format the engine picks): each repeat runs two fresh
    processes sharing a new, empty TORCHINDUCTOR_CACHE_DIR: the first compiles from scratch (cold),
    the second finds the compiled kernels cached (warm). Each trains two epochs; "incl. compile" is
    the first epoch (the first step compiles), "excl. compile" the second epoch of both processes.
    Compile seconds (the steps that compiled, ``History.compile_seconds``) are listed too.
Every repeat is printed as it finishes; the tables give the median, the quartiles and the range.

Efficiency on any CPU: before and after the variants (and between repeats) the script times the machine's own
3x3 convolution (64 -> 64 channels, 28x28, batch 128, forward + backward, channels_last) in each precision, with
the same threads, and counts with ``torch.utils.flop_counter`` what one training image costs ResNet-``depth``
(forward + backward). Each variant's row then shows its **fraction of that convolution rate**: images/s x
FLOP per image / the convolution's FLOP/s, at the variant's precision (fp32 for the naive loop). Seconds differ
from CPU to CPU; this fraction says how close the engine runs to what the CPU does on the net's main operation.

--time-to-accuracy trains ResNet-20 on the shipped subset (9,000 train / 1,000 validation images; or
--data full) with the recipe given as TrainConfig fields (--set key=value ...; the rest as TrainConfig's
defaults, test_every_epoch=False), once per --seeds (the seed of the initial weights and of
TrainConfig.seed), and reports the seconds (training, evaluation and any compile, from History.seconds)
until the validation error first drops below --threshold percent. With eval_every=k the error is only
looked at every k-th epoch. For reference, the default recipe took ResNet-20 on the subset to about 13% in
10 epochs and 10.7% in 20 (data/runs/degradation*.json).

--depth picks another ResNet-(6n+2) for every mode (e.g. 8 for a quick check of this script).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from resnet_lab import cifar_resnet, data, training  # noqa: E402
from resnet_lab.runtime import device_name  # noqa: E402
from resnet_lab.throughput import conv_rate, train_flops_per_image  # noqa: E402

CPU = torch.device("cpu")


class PerSampleDataset(torch.utils.data.Dataset):
    """The naive way: one PIL image and a chain of transforms per sample."""

    def __init__(self, images: data.ImageSet, mean: float, std: float) -> None:
        self.images, self.labels = images.images[:, 0].numpy(), images.labels
        self.transform = transforms.Compose(
            [transforms.RandomCrop(28, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
             transforms.Normalize((mean,), (std,))]
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[i], mode="L")), int(self.labels[i])


def naive_images_per_second(splits: data.Splits, depth: int = 20) -> float:
    """One epoch of the naive loop over splits.train; returns training images per second."""
    torch.manual_seed(0)
    model = cifar_resnet(depth, in_channels=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    loader = torch.utils.data.DataLoader(
        PerSampleDataset(splits.train, splits.mean[0], splits.std[0]), batch_size=128, shuffle=True, num_workers=0
    )
    model.train()
    started = time.perf_counter()
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return len(splits.train) / (time.perf_counter() - started)


def engine_history(splits: data.Splits, depth: int = 20, epochs: int = 1, **config: object) -> training.History:
    """``training.train`` of a fresh ResNet-``depth`` for ``epochs`` on ``splits``; ``config["seed"]`` (default 0)
    seeds the initial weights too."""
    torch.manual_seed(int(config.get("seed", 0)))
    model = cifar_resnet(depth, in_channels=1)
    cfg = training.TrainConfig(epochs=epochs, **config)
    return training.train(model, splits, cfg, progress=False, device=CPU, description=f"ResNet-{depth}")


def engine_images_per_second(splits: data.Splits, depth: int, **config: object) -> float:
    """One epoch of ``training.train``; training images per second."""
    return len(splits.train) / engine_history(splits, depth, **config).seconds[-1]


def variant_precision(name: str) -> str:
    """The precision a variant's row is compared at: bf16 for the bf16 variants, else fp32."""
    return "bf16" if "bf16" in name else "fp32"


def precisions_here() -> list[str]:
    """fp32, and bf16 where the CPU does it natively (where precision="auto" picks it)."""
    return ["fp32", "bf16"] if training.use_bf16("auto", CPU) else ["fp32"]


def in_process_variants(depth: int) -> dict[str, Callable[[data.Splits], float]]:
    """The variants timed in this process; bf16 only where the CPU does it natively (as precision="auto")."""
    layouts = {"NCHW": False, "channels_last": True}
    precisions = precisions_here()
    variants = {"naive: DataLoader + per-sample PIL transforms, fp32 NCHW": lambda s: naive_images_per_second(s, depth)}
    for precision, (layout, channels_last) in itertools.product(precisions, layouts.items()):
        name = f"engine {precision}{' autocast' if precision == 'bf16' else ''} {layout}"
        variants[name] = lambda s, p=precision, c=channels_last: engine_images_per_second(
            s, depth, precision=p, channels_last=c
        )
        if precision == "fp32" and channels_last:
            variants[f"{name}, batch 256 (lr 0.2)"] = lambda s: engine_images_per_second(
                s, depth, precision="fp32", channels_last=True, batch_size=256, lr=0.2
            )
    return variants


def benchmark_splits(images: int) -> data.Splits:
    """The first ``images`` training images of the shipped subset; 10 validation and 10 test images."""
    full = data.load_fashion_mnist("subset", fast=False)
    if not 1 <= images <= len(full.train):
        raise SystemExit(f"--images must be in 1..{len(full.train)} (the subset's training images); got {images}")
    return full.first(train=images, val=10, test=10)


def compile_worker(images: int, depth: int, precision: str) -> None:
    """Run in a fresh process: two compiled epochs; prints one JSON line with what the parent needs."""
    history = engine_history(benchmark_splits(images), depth, epochs=2, precision=precision, compile=True)
    if not history.compiled:
        raise SystemExit("torch.compile did not run (see the warning above)")
    result = {"epoch_seconds": history.seconds, "compile_seconds": history.compile_seconds,
              "channels_last": history.channels_last}  # fmt: skip
    print("RESULT " + json.dumps(result), flush=True)


def run_compile_worker(images: int, depth: int, precision: str, threads: int | None, cache: str) -> dict:
    """One fresh process of ``compile_worker`` with the inductor cache in ``cache``."""
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, __file__, "--compile-worker", precision, "--images", str(images), "--depth", str(depth)]
    if threads:
        command += ["--threads", str(threads)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"the compile worker failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def spread(values: list[float]) -> tuple[float, float, float, float, float]:
    """(median, lower quartile, upper quartile, min, max)."""
    if len(values) == 1:
        return (values[0],) * 5
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return median, q1, q3, min(values), max(values)


def print_table(results: dict[str, list[float]], baseline: str | None = None) -> None:
    """One row per variant: median, quartiles, range and count of its values (speed-up over ``baseline``)."""
    width = max(len(name) for name in results)
    head = f"{'variant':<{width}} {'median':>8} {'quartiles':>15} {'range':>15} {'n':>3}"
    print(head + ("  speed-up (medians)" if baseline else ""))
    base = statistics.median(results[baseline]) if baseline in results else None
    for name, values in results.items():
        median, q1, q3, low, high = spread(values)
        row = f"{name:<{width}} {median:8.1f} {q1:7.1f}-{q3:<7.1f} {low:7.1f}-{high:<7.1f} {len(values):3}"
        if base:
            row += f"  {median / base:5.2f}x"
        print(row)


def throughput(args: argparse.Namespace) -> None:
    splits = benchmark_splits(args.images)
    warmup = splits.first(train=min(256, args.images), val=10, test=10)
    variants = {n: run for n, run in in_process_variants(args.depth).items() if not any(s in n for s in args.skip)}
    precisions = [p for p in precisions_here() if not any(s in f"engine {p} + torch.compile" for s in args.skip)]
    print(f"torch {torch.__version__}, {device_name(CPU)} ({torch.backends.cpu.get_cpu_capability()}, native bf16: "
          f"{training.use_bf16('auto', CPU)}), {torch.get_num_threads()} threads, ResNet-{args.depth} on 1x28x28, batch 128 "
          f"unless named; {args.images} images per timed epoch, {args.repeats} repeats"
          + (f" ({args.compile_repeats} with torch.compile)" if precisions else ""), flush=True)  # fmt: skip
    speeds: dict[str, list[float]] = {name: [] for name in variants}
    rates: dict[str, list[float]] = {p: [] for p in precisions_here()}

    def time_convolutions() -> None:
        for precision in rates:
            rates[precision].append(conv_rate(precision))
        print("  3x3 conv rate (GFLOP/s): " + ", ".join(f"{p} {r[-1]:.1f}" for p, r in rates.items()), flush=True)

    for run in variants.values():
        run(warmup)
    time_convolutions()
    for repeat in range(1, args.repeats + 1):
        for name, run in variants.items():
            speeds[name].append(run(splits))
            print(f"  repeat {repeat}/{args.repeats}  {name:<58} {speeds[name][-1]:7.1f} images/s", flush=True)
        time_convolutions()
    compile_seconds: dict[str, list[float]] = {}
    for precision in precisions:
        label = f"engine {precision} + torch.compile"
        rows = {f"{label}, incl. compile, cold cache": [], f"{label}, incl. compile, warm cache": [],
                f"{label}, excl. compile (2nd epoch)": []}  # fmt: skip
        cold_s, warm_s = (
            compile_seconds.setdefault(f"{label}, cold", []),
            compile_seconds.setdefault(f"{label}, warm", []),
        )
        for repeat in range(1, args.compile_repeats + 1):
            cache = tempfile.mkdtemp(prefix="inductor-cache-")
            try:
                cold = run_compile_worker(args.images, args.depth, precision, args.threads, cache)
                warm = run_compile_worker(args.images, args.depth, precision, args.threads, cache)
            finally:
                shutil.rmtree(cache, ignore_errors=True)
            names = list(rows)
            rows[names[0]].append(args.images / cold["epoch_seconds"][0])
            rows[names[1]].append(args.images / warm["epoch_seconds"][0])
            rows[names[2]] += [args.images / cold["epoch_seconds"][1], args.images / warm["epoch_seconds"][1]]
            cold_s.append(cold["compile_seconds"])
            warm_s.append(warm["compile_seconds"])
            layout = "channels_last" if cold["channels_last"] else "NCHW"
            print(f"  repeat {repeat}/{args.compile_repeats}  {label} ({layout}): epoch 1 "
                  f"{cold['epoch_seconds'][0]:.1f} s cold / {warm['epoch_seconds'][0]:.1f} s warm "
                  f"(compiling {cold['compile_seconds']:.1f} s / {warm['compile_seconds']:.1f} s), epoch 2 "
                  f"{cold['epoch_seconds'][1]:.1f} s / {warm['epoch_seconds'][1]:.1f} s", flush=True)  # fmt: skip
        speeds.update(rows)
    if not speeds:
        return
    print("\ntraining images per second:")
    naive = next((n for n in speeds if n.startswith("naive")), None)
    print_table(speeds, baseline=naive)
    flops = train_flops_per_image(args.depth)
    conv = {p: statistics.median(r) for p, r in rates.items()}
    print(f"\nefficiency: ResNet-{args.depth} costs {flops / 1e6:.1f} MFLOP per training image (forward + backward); "
          "the 3x3 conv ran at " + ", ".join(f"{p} {v:.1f} GFLOP/s (median of {len(rates[p])}, range "
          f"{min(rates[p]):.1f}-{max(rates[p]):.1f})" for p, v in conv.items()))  # fmt: skip
    width = max(len(name) for name in speeds)
    print(f"{'variant':<{width}} {'GFLOP/s':>8} {'fraction of the conv rate':>26}")
    for name, values in speeds.items():
        precision = variant_precision(name)
        if precision not in conv:
            continue
        achieved = statistics.median(values) * flops / 1e9
        print(f"{name:<{width}} {achieved:8.1f} {achieved / conv[precision]:>21.0%} ({precision})")
    if compile_seconds:
        print("\nseconds of the steps that compiled (History.compile_seconds):")
        print_table(compile_seconds)


def accuracy_check(epochs: int) -> None:
    """Does bf16 autocast hurt? ResNet-20 on the 9,000-image subset, same seed, fp32 vs bf16: validation error."""
    splits = data.load_fashion_mnist("subset", fast=False)
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = cifar_resnet(20, in_channels=1)
        config = training.TrainConfig(epochs=epochs, precision=precision, channels_last=False, test_every_epoch=False)
        history = training.train(model, splits, config, progress=False, device="cpu")
        print(f"{precision}: {epochs} epochs on {len(splits.train)} images: final train error "
              f"{history.train_error[-1]:.2f}%, validation error {history.val_error[-1]:.2f}%, "
              f"{sum(history.seconds):.0f} s", flush=True)  # fmt: skip


def parse_value(text: str) -> object:
    """A --set value: true/false, none, an int, a float, else the text."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def recipe(settings: list[str]) -> training.TrainConfig:
    """TrainConfig from ``key=value`` strings (test_every_epoch=False unless set)."""
    names = [f.name for f in dataclasses.fields(training.TrainConfig)]
    values: dict[str, object] = {"test_every_epoch": False}
    for setting in settings:
        key, sep, text = setting.partition("=")
        if not sep or key not in names:
            raise SystemExit(
                f"--set takes key=value with a TrainConfig field as key ({', '.join(names)}); got {setting!r}"
            )
        values[key] = parse_value(text)
    try:
        return training.TrainConfig(**values)
    except (TypeError, ValueError) as err:
        raise SystemExit(f"--set: {err}") from err


def time_to_accuracy(args: argparse.Namespace) -> None:
    config = recipe(args.set)
    splits = data.load_fashion_mnist(args.data)
    print(f"torch {torch.__version__}, {device_name(CPU)}, {torch.get_num_threads()} threads; ResNet-{args.depth} on "
          f"{splits.describe()}; target: validation error < {args.threshold}%", flush=True)  # fmt: skip
    print(f"recipe: {config}", flush=True)
    reached: list[float] = []
    for seed in args.seeds:
        history = engine_history(splits, args.depth, **{**dataclasses.asdict(config), "seed": seed})
        print(f"\nseed {seed}:\n{history.summary()}")
        if history.compiled:
            print(f"(compiled: {history.compile_seconds:.1f} s in the steps that compiled)")
        elapsed = itertools.accumulate(history.seconds)
        first = next(((epoch, seconds, error) for epoch, seconds, error in zip(history.epoch, elapsed, history.val_error)
                      if error is not None and error < args.threshold), None)  # fmt: skip
        total = sum(history.seconds)
        if first is None:
            print(f"seed {seed}: validation error never below {args.threshold}% ({total:.1f} s in all)", flush=True)
        else:
            epoch, seconds, error = first
            reached.append(seconds)
            print(f"seed {seed}: validation error {error:.2f}% < {args.threshold}% after epoch {epoch}: "
                  f"{seconds:.1f} s ({total:.1f} s for all {len(history.epoch)} epochs)", flush=True)  # fmt: skip
    print(f"\nreached by {len(reached)} of {len(args.seeds)} seeds", end="")
    if reached:
        median, q1, q3, low, high = spread(reached)
        print(f"; seconds to < {args.threshold}%: median {median:.1f}, quartiles {q1:.1f}-{q3:.1f}, "
              f"range {low:.1f}-{high:.1f}", end="")  # fmt: skip
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2560, help="training images per timed epoch")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each in-process variant")
    parser.add_argument("--compile-repeats", type=int, default=3, help="cold + warm process pairs per compiled variant")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--skip", nargs="*", default=[], help="substrings of variant names to skip (e.g. compile)")
    parser.add_argument("--accuracy-epochs", type=int, default=0, help="also compare fp32 and bf16 accuracy (epochs)")
    parser.add_argument("--time-to-accuracy", action="store_true", help="time a recipe to a validation error instead")
    parser.add_argument("--threshold", type=float, default=13.0, help="validation error in percent to reach")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="the recipe: TrainConfig fields")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed")
    parser.add_argument("--data", choices=("subset", "full"), default="subset", help="Fashion-MNIST to train on")
    parser.add_argument("--depth", type=int, default=20, help="ResNet depth (6n+2: 8, 20, 32, 56, ...)")
    parser.add_argument("--compile-worker", choices=("fp32", "bf16"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.compile_worker:
        compile_worker(args.images, args.depth, args.compile_worker)
    elif args.time_to_accuracy:
        time_to_accuracy(args)
    else:
        if args.accuracy_epochs:
            accuracy_check(args.accuracy_epochs)
        throughput(args)


if __name__ == "__main__":
    main()
