"""Image data held in memory: Fashion-MNIST (shipped subset or full) and CIFAR-10.

Everything is kept as uint8 tensors of shape (N, C, H, W) with int64 labels (N,).
Training batches are made from whole tensors: augmentation (pad + random crop,
horizontal flip) and normalization act on a batch at once; there is no per-sample
PIL work in the training loop.

Nothing is downloaded unless asked for: ``download=True`` or ``RESNET_LAB_DOWNLOAD=1``.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import pickle
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .runtime import env_flag

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
SUBSET_FILE = "fashion_mnist_subset.npz"
# sha256 over the decompressed arrays (see ``subset_content_sha256``); data/README.md lists it too.
SUBSET_CONTENT_SHA256 = "05eb7fc5b7dabcb08e95638e8e9440cca2ad393e9ae1d08f1961f0f745f418fc"
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
DOWNLOAD_ENV = "RESNET_LAB_DOWNLOAD"
REBUILD_HINT = "Rebuild it with `python scripts/build_fashion_subset.py` (see data/README.md)."

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# Sizes kept with fast=True (the test suite's fast mode): enough to run every code path in seconds.
FAST_SIZES = {"train": 512, "val": 256, "test": 512}


class DataError(RuntimeError):
    """A data file is missing, corrupt or of the wrong shape; the message says how to fix it."""


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images (N, C, H, W) uint8 and labels (N,) int64, held in memory."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"images must be uint8 of shape (N, C, H, W); got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels must have shape ({self.images.shape[0]},); got {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return self.images.shape[0]

    def select(self, indices: torch.Tensor) -> ImageSet:
        """The images at ``indices`` (1-D int64 tensor), in that order."""
        return ImageSet(self.images[indices], self.labels[indices])


@dataclass(frozen=True, eq=False)
class Splits:
    """Train / validation / test sets of one dataset, with its normalization statistics.

    ``val`` is held out of the training data (like the paper's 45k/5k split), so models are
    selected on it and the test set is only for the final figure.
    """

    train: ImageSet
    val: ImageSet
    test: ImageSet
    classes: tuple[str, ...]
    mean: tuple[float, ...]  # per channel, of train images scaled to [0, 1]
    std: tuple[float, ...]
    name: str  # e.g. "fashion-mnist-subset"
    source: str  # where the files came from

    @property
    def in_channels(self) -> int:
        return self.train.images.shape[1]

    def first(self, train: int, val: int, test: int) -> Splits:
        """The first ``train`` / ``val`` / ``test`` images of each set (normalization statistics kept): tiny runs for tests."""
        return replace(
            self,
            train=self.train.select(torch.arange(min(train, len(self.train)))),
            val=self.val.select(torch.arange(min(val, len(self.val)))),
            test=self.test.select(torch.arange(min(test, len(self.test)))),
        )

    def describe(self, source: bool = True) -> str:
        """One line: name, sizes, image shape and (with ``source``) where the files came from."""
        c, h, w = self.train.images.shape[1:]
        line = (
            f"{self.name}: {len(self.train)} train / {len(self.val)} val / {len(self.test)} test images "
            f"of {c}x{h}x{w}, {len(self.classes)} classes"
        )
        return f"{line} (from {self.source})" if source else line


# ---------------------------------------------------------------------------------------------
# Reading files


def read_maybe_gzipped(path: Path) -> bytes:
    """The bytes of ``path``, decompressed if it ends in .gz."""
    if path.suffix != ".gz":
        return path.read_bytes()
    with gzip.open(path) as handle:
        return handle.read()


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (optionally .gz) of unsigned bytes: (N,) labels or (N, H, W) images."""
    path = Path(path)
    try:
        raw = read_maybe_gzipped(path)
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read idx file {path}: {err}") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an idx file of unsigned bytes (magic 0x0000 08 nn); it may be corrupt")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(shape)):
        raise DataError(
            f"{path}: header says shape {shape} but the file has {len(raw) - header} data bytes; it is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def find_idx(directory: Path, stem: str) -> Path | None:
    """``directory/stem`` or ``directory/stem.gz``, whichever exists, else None."""
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def fashion_mnist_candidate_dirs(root: str | Path | None = None) -> list[Path]:
    """Where the full Fashion-MNIST idx files are looked for, in order.

    ``root/FashionMNIST/raw`` (torchvision's layout), ``root/fashion-mnist`` and the Debian
    package's ``/usr/share/datasets/fashion-mnist``.
    """
    root = Path(root) if root is not None else DATA_DIR
    return [root / "FashionMNIST" / "raw", root / "fashion-mnist", DEBIAN_FASHION_MNIST_DIR]


def find_full_fashion_mnist(root: str | Path | None = None) -> Path | None:
    """The first candidate directory holding all four idx files, or None."""
    for directory in fashion_mnist_candidate_dirs(root):
        if all(find_idx(directory, stem) for stem in IDX_FILES.values()):
            return directory
    return None


def download_fashion_mnist(root: str | Path | None = None) -> Path | None:
    """Fetch the four idx files with torchvision into ``root/FashionMNIST/raw`` (needs internet).

    Only called when asked for (``download=True``, ``RESNET_LAB_DOWNLOAD=1`` or the build script's
    ``--download``). Returns ``find_full_fashion_mnist(root)``.
    """
    from torchvision.datasets import FashionMNIST

    root = Path(root) if root is not None else DATA_DIR
    for train in (True, False):
        FashionMNIST(str(root), train=train, download=True)
    return find_full_fashion_mnist(root)


def read_fashion_mnist_dir(directory: str | Path) -> dict[str, np.ndarray]:
    """The four arrays (train/test images (N, 28, 28), labels (N,)) from idx files in ``directory``."""
    directory = Path(directory)
    arrays = {}
    for key, stem in IDX_FILES.items():
        path = find_idx(directory, stem)
        if path is None:
            raise DataError(f"{directory} has no {stem}[.gz]")
        arrays[key] = read_idx(path)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"{directory}: {split} images {images.shape} and labels {labels.shape} do not match")
        if labels.size and labels.max() > 9:
            raise DataError(f"{directory}: {split} labels must be 0..9; found {labels.max()}")
    return arrays


# ---------------------------------------------------------------------------------------------
# The shipped subset


def subset_content_sha256(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over the arrays' names, dtypes, shapes and bytes, in sorted name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def write_subset_file(path: str | Path, arrays: dict[str, np.ndarray]) -> str:
    """Write ``arrays`` as a deflated .npz with fixed timestamps (same input -> same bytes).

    Written to a temporary file and renamed, so a crash never leaves half a file.
    Returns the content sha256.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w") as handle:
                np.lib.format.write_array(handle, np.ascontiguousarray(arrays[name]), allow_pickle=False)
    os.replace(tmp, path)
    return subset_content_sha256(arrays)


def read_subset_file(path: str | Path, expected_sha256: str | None = None) -> dict[str, np.ndarray]:
    """Arrays of the shipped subset (train/test images (N, 28, 28) uint8, labels, indices).

    Verifies the content checksum (``SUBSET_CONTENT_SHA256`` unless given); a missing,
    corrupt or altered file raises ``DataError`` saying how to rebuild it.
    """
    path = Path(path)
    expected = SUBSET_CONTENT_SHA256 if expected_sha256 is None else expected_sha256
    if not path.is_file():
        raise DataError(f"the Fashion-MNIST subset {path} is missing. {REBUILD_HINT}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except Exception as err:  # zip, zlib, CRC and npy header errors all mean the same here
        raise DataError(
            f"the Fashion-MNIST subset {path} is corrupt ({type(err).__name__}: {err}). {REBUILD_HINT}"
        ) from err
    actual = subset_content_sha256(arrays)
    if actual != expected:
        raise DataError(
            f"the Fashion-MNIST subset {path} fails its checksum: expected sha256 {expected}, got {actual}. "
            f"The file was altered or is corrupt. {REBUILD_HINT}"
        )
    return arrays


# ---------------------------------------------------------------------------------------------
# Splits


def balanced_order(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A permutation of range(N) that interleaves classes, so any prefix is near class-balanced."""
    order = torch.randperm(len(labels), generator=generator)
    shuffled = labels[order]
    rank = torch.zeros(len(labels), dtype=torch.int64)  # position of each sample within its class
    for c in shuffled.unique():
        members = (shuffled == c).nonzero().flatten()
        rank[members] = torch.arange(len(members))
    return order[torch.argsort(rank * (int(labels.max()) + 1) + shuffled, stable=True)]


def make_splits(
    train: ImageSet,
    test: ImageSet,
    *,
    val_size: int,
    classes: Sequence[str],
    name: str,
    source: str,
    seed: int = 0,
    fast: bool = False,
) -> Splits:
    """Hold ``val_size`` class-balanced images out of ``train``; with ``fast`` keep only ``FAST_SIZES`` images of each set."""
    if not 0 < val_size < len(train):
        raise ValueError(
            f"val_size must be between 1 and {len(train) - 1} (the training set's size - 1); got {val_size}"
        )
    generator = torch.Generator().manual_seed(seed)
    order = balanced_order(train.labels, generator)
    val, train = train.select(order[:val_size]), train.select(order[val_size:])
    if fast:
        train = train.select(balanced_order(train.labels, generator)[: FAST_SIZES["train"]])
        val = val.select(torch.arange(min(len(val), FAST_SIZES["val"])))
        test = test.select(balanced_order(test.labels, generator)[: FAST_SIZES["test"]])
        name += "-fast"
    scaled = train.images.float().div_(255)
    mean = tuple(scaled.mean(dim=(0, 2, 3)).tolist())
    std = tuple(scaled.std(dim=(0, 2, 3)).tolist())
    return Splits(train, val, test, tuple(classes), mean, std, name, source)


def _imageset(images: np.ndarray, labels: np.ndarray) -> ImageSet:
    images_t = torch.from_numpy(np.array(images, dtype=np.uint8))  # a writable copy
    if images_t.dim() == 3:  # (N, H, W) -> (N, 1, H, W)
        images_t = images_t.unsqueeze(1)
    return ImageSet(images_t, torch.from_numpy(labels.astype(np.int64)))


def _download_wanted(download: bool | None) -> bool:
    if download is not None:
        return download
    return env_flag(DOWNLOAD_ENV)


def load_fashion_mnist(
    kind: str = "subset",
    *,
    root: str | Path | None = None,
    val_size: int | None = None,
    seed: int = 0,
    download: bool | None = None,
    fast: bool = False,
) -> Splits:
    """Fashion-MNIST as in-memory ``Splits`` of (N, 1, 28, 28) uint8 images.

    kind="subset": the shipped, checksummed, class-balanced 10,000 train / 2,000 test images
    (``data/fashion_mnist_subset.npz``); val_size defaults to 1,000.
    kind="full": the original 60,000 / 10,000 from ``root/FashionMNIST/raw`` (torchvision's
    layout), ``root/fashion-mnist`` or the Debian package's ``/usr/share/datasets/fashion-mnist``;
    val_size defaults to 5,000. Downloads (torchvision) only with ``download=True`` or
    ``RESNET_LAB_DOWNLOAD=1``.
    fast=True keeps 512 train / 256 val / 512 test images (``FAST_SIZES``), for the test suite; the
    environment is not consulted (pass ``fast=resnet_lab.fast_mode()`` where a run starts).
    """
    root = Path(root) if root is not None else DATA_DIR
    if kind == "subset":
        path = root / SUBSET_FILE
        return _fashion_splits(read_subset_file(path), val_size or 1000, "fashion-mnist-subset", path, seed, fast)
    if kind != "full":
        raise ValueError(f"kind must be 'subset' (shipped) or 'full' (60k/10k); got {kind!r}")
    directory = find_full_fashion_mnist(root)
    if directory is None and _download_wanted(download):
        directory = download_fashion_mnist(root)
    if directory is None:
        searched = ", ".join(str(d) for d in fashion_mnist_candidate_dirs(root))
        raise DataError(
            f"the full Fashion-MNIST was not found (looked in {searched}). Install the Debian package "
            f"`dataset-fashion-mnist`, copy the four idx files into {root / 'fashion-mnist'}, or download "
            f"them with load_fashion_mnist('full', download=True) or {DOWNLOAD_ENV}=1. "
            f"The shipped subset needs none of this: load_fashion_mnist('subset')."
        )
    return _fashion_splits(read_fashion_mnist_dir(directory), val_size or 5000, "fashion-mnist", directory, seed, fast)


def _fashion_splits(
    arrays: dict[str, np.ndarray], val_size: int, name: str, source: Path, seed: int, fast: bool
) -> Splits:
    """Train/val/test splits from Fashion-MNIST arrays (train_images/labels, test_images/labels)."""
    train = _imageset(arrays["train_images"], arrays["train_labels"])
    test = _imageset(arrays["test_images"], arrays["test_labels"])
    return make_splits(
        train,
        test,
        val_size=val_size,
        classes=FASHION_MNIST_CLASSES,
        name=name,
        source=str(source),
        seed=seed,
        fast=fast,
    )


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
        images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except Exception as err:
        raise DataError(f"{path} is not a readable CIFAR-10 python batch ({type(err).__name__}: {err})") from err
    if len(images) != len(labels):
        raise DataError(f"{path}: {len(images)} images but {len(labels)} labels")
    return images, labels


def load_cifar10(
    *,
    root: str | Path | None = None,
    val_size: int = 5000,
    seed: int = 0,
    download: bool | None = None,
    fast: bool = False,
) -> Splits:
    """CIFAR-10 (the paper's dataset) as in-memory ``Splits`` of (N, 3, 32, 32) uint8 images.

    Reads the python batches in ``root/cifar-10-batches-py`` (torchvision's layout; root defaults
    to ``data/``); the paper's 45k/5k train/val split by default. Downloads only with
    ``download=True`` or ``RESNET_LAB_DOWNLOAD=1``. fast=True keeps ``FAST_SIZES`` images.
    """
    root = Path(root) if root is not None else DATA_DIR
    folder = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    if not all((folder / n).is_file() for n in names) and _download_wanted(download):
        from torchvision.datasets import CIFAR10

        CIFAR10(str(root), train=True, download=True)
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataError(
            f"CIFAR-10 not found: {folder} lacks {', '.join(missing)}. Download it (170 MB) with "
            f"load_cifar10(download=True) or {DOWNLOAD_ENV}=1, or unpack cifar-10-python.tar.gz into {root}."
        )
    parts = [_read_cifar_batch(folder / n) for n in names[:5]]
    train = _imageset(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    test = _imageset(*_read_cifar_batch(folder / "test_batch"))
    return make_splits(
        train,
        test,
        val_size=val_size,
        classes=CIFAR10_CLASSES,
        name="cifar10",
        source=str(folder),
        seed=seed,
        fast=fast,
    )


# ---------------------------------------------------------------------------------------------
# Batches: augmentation and normalization on whole tensors


def random_crop_flip(images: torch.Tensor, pad: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pad by ``pad`` (zeros), crop back to H x W at a random offset, flip half horizontally.

    (B, C, H, W) -> (B, C, H, W), any dtype; one random crop and flip per image, done on the
    whole batch at once with index arithmetic (no per-image Python loop).
    """
    b, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b, 1), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b, 1), generator=generator)
    flip = torch.rand(b, 1, generator=generator) < 0.5
    rows = dy + torch.arange(h)  # (B, H)
    cols = dx + torch.where(flip, torch.arange(w - 1, -1, -1), torch.arange(w))  # (B, W), reversed if flipped
    batch_index = torch.arange(b)[:, None, None]
    cropped = padded.permute(0, 2, 3, 1)[batch_index, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return cropped.permute(0, 3, 1, 2).contiguous()


def random_erase(
    images: torch.Tensor,
    p: float = 0.5,
    *,
    area: tuple[float, float] = (0.02, 0.4),
    aspect: tuple[float, float] = (0.3, 1 / 0.3),
    generator: torch.Generator | None = None,
    tries: int = 10,
) -> torch.Tensor:
    """Random erasing (Zhong et al., 2017): with probability ``p`` per image, fill one rectangle with noise.

    (B, C, H, W) -> (B, C, H, W), same dtype. The rectangle covers a fraction of the image drawn
    uniformly from ``area``, with height/width ratio drawn log-uniformly from ``aspect``; a draw that
    does not fit is redrawn up to ``tries`` times, then that image is left as it is. The noise is
    uniform over 0..255 for uint8 images and over [0, 1) for float images. Done on the whole batch
    at once with masks (no per-image Python loop).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"random erasing probability must be in [0, 1]; got {p}")
    b, c, h, w = images.shape
    erase = torch.rand(b, generator=generator) < p
    height = torch.zeros(b, dtype=torch.long)
    width = torch.zeros(b, dtype=torch.long)
    pending = erase.clone()
    for _ in range(tries):
        target = h * w * torch.empty(b).uniform_(*area, generator=generator)
        ratio = torch.exp(torch.empty(b).uniform_(math.log(aspect[0]), math.log(aspect[1]), generator=generator))
        rect_h = torch.sqrt(target * ratio).round().long()
        rect_w = torch.sqrt(target / ratio).round().long()
        fits = pending & (rect_h >= 1) & (rect_w >= 1) & (rect_h <= h) & (rect_w <= w)
        height, width = torch.where(fits, rect_h, height), torch.where(fits, rect_w, width)
        pending &= ~fits
    erase &= ~pending  # images whose draws never fitted stay as they are
    top = (torch.rand(b, generator=generator) * (h - height + 1)).long()
    left = (torch.rand(b, generator=generator) * (w - width + 1)).long()
    rows = torch.arange(h)[None, :]  # (1, H)
    cols = torch.arange(w)[None, :]  # (1, W)
    in_rows = (rows >= top[:, None]) & (rows < (top + height)[:, None])  # (B, H)
    in_cols = (cols >= left[:, None]) & (cols < (left + width)[:, None])  # (B, W)
    mask = (erase[:, None, None] & in_rows[:, :, None] & in_cols[:, None, :])[:, None]  # (B, 1, H, W)
    if images.dtype == torch.uint8:
        noise = torch.randint(0, 256, images.shape, generator=generator, dtype=torch.uint8)
    else:
        noise = torch.rand(images.shape, generator=generator).to(images.dtype)
    return torch.where(mask.to(images.device), noise.to(images.device), images)


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float32 (B, C, H, W): scale to [0, 1], subtract mean, divide by std."""
    mean_t = torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=images.device).view(1, -1, 1, 1)
    return (images.float().div_(255) - mean_t) / std_t


def batches(
    dataset: ImageSet,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    batch_size: int = 128,
    shuffle: bool = False,
    augment: bool = False,
    random_erasing: float = 0.0,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    memory_format: torch.memory_format = torch.contiguous_format,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (images float32 (B, C, H, W) normalized, labels int64 (B,)) on ``device``.

    shuffle: a new random order each call (from ``generator``); augment: ``random_crop_flip``, then
    ``random_erase`` with probability ``random_erasing`` (0 = off).
    The last batch may be smaller.
    """
    n = len(dataset)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        index = order[start : start + batch_size]
        images = dataset.images[index]
        if augment:
            images = random_crop_flip(images, generator=generator)
            if random_erasing > 0:
                images = random_erase(images, random_erasing, generator=generator)
        x = normalize(images.to(device, non_blocking=True), mean, std).contiguous(memory_format=memory_format)
        yield x, dataset.labels[index].to(device, non_blocking=True)
