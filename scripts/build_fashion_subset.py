"""Build data/fashion_mnist_subset.npz: a class-balanced Fashion-MNIST subset, reproducibly.

    python scripts/build_fashion_subset.py                 # from the Debian package or data/
    python scripts/build_fashion_subset.py --source DIR    # from a folder of the four idx files
    python scripts/build_fashion_subset.py --download      # fetch the originals with torchvision first

Picks, with a fixed seed, 1,000 images per class from the 60,000 training images and 200 per
class from the 10,000 test images, keeps them in their original order, stores their original
indices, and writes the arrays with fixed zip timestamps. The source files are checked against
the sha256 of the original (decompressed) idx files first.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from resnet_lab import data  # noqa: E402

# sha256 of the decompressed original idx files (identical in the Debian package and upstream).
SOURCE_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}


def verify_source(directory: Path) -> None:
    """Raise SystemExit if a source idx file's decompressed content is not the original."""
    for stem, expected in SOURCE_SHA256.items():
        path = data.find_idx(directory, stem)
        raw = data.read_maybe_gzipped(path)
        actual = hashlib.sha256(raw).hexdigest()
        if actual != expected:
            raise SystemExit(f"{path}: sha256 {actual} is not the original Fashion-MNIST's {expected}")


def balanced_indices(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """``per_class`` random indices of each class, sorted (original order kept)."""
    chosen = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)]
    return np.sort(np.concatenate(chosen))


def build(source: Path, out: Path, train_per_class: int, test_per_class: int, seed: int) -> str:
    arrays = data.read_fashion_mnist_dir(source)
    rng = np.random.default_rng(seed)
    subset = {}
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        index = balanced_indices(arrays[f"{split}_labels"], per_class, rng)
        subset[f"{split}_images"] = arrays[f"{split}_images"][index]
        subset[f"{split}_labels"] = arrays[f"{split}_labels"][index]
        subset[f"{split}_indices"] = index.astype(np.int32)
    return data.write_subset_file(out, subset)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, help="folder with the four idx files (.gz or not)")
    parser.add_argument("--out", type=Path, default=data.DATA_DIR / data.SUBSET_FILE)
    parser.add_argument("--train-per-class", type=int, default=1000)
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--download", action="store_true", help="download the originals with torchvision if absent")
    parser.add_argument("--no-verify", action="store_true", help="skip the source checksum (e.g. for test files)")
    args = parser.parse_args()

    source = args.source or data.find_full_fashion_mnist()
    if source is None and args.download:
        source = data.download_fashion_mnist()
    if source is None:
        raise SystemExit(
            "Fashion-MNIST idx files not found. Install the Debian package dataset-fashion-mnist, "
            "pass --source DIR, or run with --download (needs internet)."
        )
    if not args.no_verify:
        verify_source(source)
    content = build(source, args.out, args.train_per_class, args.test_per_class, args.seed)
    file_sha = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"wrote {args.out} from {source}")
    print(f"content sha256 (checked on load): {content}")
    print(f"file sha256: {file_sha}")
    if content != data.SUBSET_CONTENT_SHA256:
        print("note: differs from resnet_lab.data.SUBSET_CONTENT_SHA256 (other seed or sizes?)")


if __name__ == "__main__":
    main()
