"""Training throughput of ResNet-20 on Fashion-MNIST: the engine against a naive loop.

    python benchmarks/training.py                # all variants, 2,560 images each, median of 3
    python benchmarks/training.py --threads 1    # e.g. on a machine busy with other jobs

Naive baseline (what many tutorials do): a torch DataLoader over a Dataset that turns each image
into a PIL image and applies per-sample torchvision transforms (RandomCrop(28, padding=4),
RandomHorizontalFlip, ToTensor, Normalize), and an eager fp32 NCHW training step.
Engine: ``resnet_lab.training.train`` -- tensors in memory, augmentation on whole batches --
in fp32 NCHW, fp32 channels_last, bf16 autocast, and bf16 autocast + torch.compile.
All variants run in the same process on the same images with the same recipe; images/s counts
training images only (the engine's per-epoch evaluation is kept to 10 images).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from resnet_lab import cifar_resnet, data, training  # noqa: E402
from resnet_lab.runtime import device_name  # noqa: E402


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


def naive_images_per_second(splits: data.Splits) -> float:
    """One epoch of the naive loop over splits.train; returns training images per second."""
    torch.manual_seed(0)
    model = cifar_resnet(20, in_channels=1)
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


def engine_images_per_second(splits: data.Splits, compile_model: bool = False, **config: object) -> float:
    """One epoch of ``training.train`` (two with torch.compile: the second, compiled, is timed)."""
    torch.manual_seed(0)
    model = cifar_resnet(20, in_channels=1)
    epochs = 2 if compile_model else 1
    if compile_model:
        model = torch.compile(model)
    cfg = training.TrainConfig(epochs=epochs, **config)
    history = training.train(model, splits, cfg, progress=False, device="cpu", description="ResNet-20")
    return len(splits.train) / history.seconds[-1]


VARIANTS = {
    "naive: DataLoader + per-sample PIL transforms, fp32 NCHW": lambda s: naive_images_per_second(s),
    "engine fp32 NCHW": lambda s: engine_images_per_second(s, precision="fp32", channels_last=False),
    "engine fp32 channels_last": lambda s: engine_images_per_second(s, precision="fp32", channels_last=True),
    "engine bf16 autocast NCHW": lambda s: engine_images_per_second(s, precision="bf16", channels_last=False),
    "engine bf16 autocast channels_last": lambda s: engine_images_per_second(s, precision="bf16", channels_last=True),
    "engine bf16 autocast NCHW + torch.compile": lambda s: engine_images_per_second(s, compile_model=True, precision="bf16", channels_last=False),
}  # fmt: skip


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2560, help="training images per timed epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--skip", nargs="*", default=[], help="substrings of variant names to skip (e.g. compile)")
    parser.add_argument("--accuracy-epochs", type=int, default=0, help="also compare fp32 and bf16 accuracy (epochs)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.accuracy_epochs:
        accuracy_check(args.accuracy_epochs)
    full = data.load_fashion_mnist("subset", fast=False)
    splits = dataclasses.replace(
        full, train=full.train.select(torch.arange(args.images)), val=full.val.select(torch.arange(10)),
        test=full.test.select(torch.arange(10)),
    )  # fmt: skip
    print(f"torch {torch.__version__}, {device_name(torch.device('cpu'))}, {torch.get_num_threads()} threads, "
          f"{args.images} images x {args.repeats} repeats (median), batch 128, ResNet-20 on 1x28x28")  # fmt: skip
    results = {}
    for name, run in VARIANTS.items():
        if any(s in name for s in args.skip):
            continue
        speeds = [run(splits) for _ in range(args.repeats)]
        results[name] = statistics.median(speeds)
        print(f"{name:<58} {results[name]:7.0f} images/s  (runs: {', '.join(f'{v:.0f}' for v in speeds)})", flush=True)
    if not results:
        return
    naive = next(iter(results.values()))
    print("\nspeed-up over the naive loop:")
    for name, speed in results.items():
        print(f"  {name:<58} {speed / naive:5.2f}x")


if __name__ == "__main__":
    main()
