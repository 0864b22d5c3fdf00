"""Loaders: the shipped subset and its checksum, full-data paths with synthetic files, batches."""

from __future__ import annotations

import gzip
import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from resnet_lab import cifar_resnet, data

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def no_system_data(monkeypatch, tmp_path):
    """Never read /usr/share/datasets or download in tests."""
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "no-debian-here")
    monkeypatch.delenv(data.DOWNLOAD_ENV, raising=False)


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> None:
    """Write a uint8 array as an idx file (big-endian dims after the 0x0000 08 nd magic)."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    raw = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as handle:
            handle.write(raw)
    else:
        path.write_bytes(raw)


def write_fake_fashion(directory: Path, n_train: int = 200, n_test: int = 50, compress: bool = True) -> None:
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(directory / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), compress)
        write_idx(directory / f"{split}-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8), compress)


def test_shipped_subset_loads_with_checksum_and_balanced_validation_split():
    splits = data.load_fashion_mnist("subset", fast=False)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (9000, 1000, 2000)
    assert splits.train.images.shape[1:] == (1, 28, 28) and splits.train.images.dtype == torch.uint8
    assert splits.train.labels.dtype == torch.int64
    assert torch.bincount(splits.val.labels).tolist() == [100] * 10
    assert torch.bincount(splits.test.labels).tolist() == [200] * 10
    assert splits.classes == data.FASHION_MNIST_CLASSES and splits.in_channels == 1
    assert 0.25 < splits.mean[0] < 0.32 and 0.3 < splits.std[0] < 0.4
    arrays = data.read_subset_file(data.DATA_DIR / data.SUBSET_FILE)
    assert data.subset_content_sha256(arrays) == data.SUBSET_CONTENT_SHA256
    assert len(set(arrays["train_indices"].tolist())) == 10000  # distinct original images


def test_fast_mode_shrinks_the_data():
    splits = data.load_fashion_mnist("subset", fast=True)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (512, 256, 512)
    assert torch.bincount(splits.train.labels).min() >= 50  # still balanced
    assert "fast" in splits.name


def test_first_keeps_the_first_images_and_the_statistics():
    splits = data.load_fashion_mnist("subset", fast=True)
    small = splits.first(train=10, val=5, test=100_000)
    assert (len(small.train), len(small.val), len(small.test)) == (10, 5, len(splits.test))
    assert torch.equal(small.train.images, splits.train.images[:10]) and torch.equal(
        small.val.labels, splits.val.labels[:5]
    )
    assert (small.mean, small.std, small.name) == (splits.mean, splits.std, splits.name)


def test_loaders_do_not_read_the_fast_mode_variable(monkeypatch):
    monkeypatch.setenv("RESNET_LAB_FAST", "1")  # decided where a run starts, passed down as fast=...
    splits = data.load_fashion_mnist("subset")
    assert (len(splits.train), len(splits.val), len(splits.test)) == (9000, 1000, 2000)
    assert splits.name == "fashion-mnist-subset"


def test_missing_subset_says_how_to_rebuild(tmp_path):
    with pytest.raises(data.DataError, match="build_fashion_subset.py"):
        data.load_fashion_mnist("subset", root=tmp_path)


def test_corrupt_subset_says_how_to_rebuild(tmp_path):
    good = (data.DATA_DIR / data.SUBSET_FILE).read_bytes()
    (tmp_path / data.SUBSET_FILE).write_bytes(good[: len(good) // 2])
    with pytest.raises(data.DataError, match=r"corrupt.*build_fashion_subset.py"):
        data.load_fashion_mnist("subset", root=tmp_path)


def test_altered_subset_fails_the_checksum(tmp_path):
    arrays = data.read_subset_file(data.DATA_DIR / data.SUBSET_FILE)
    arrays["train_labels"] = arrays["train_labels"].copy()
    arrays["train_labels"][0] = (arrays["train_labels"][0] + 1) % 10  # one wrong label
    data.write_subset_file(tmp_path / data.SUBSET_FILE, arrays)
    with pytest.raises(data.DataError, match=r"checksum.*build_fashion_subset.py"):
        data.load_fashion_mnist("subset", root=tmp_path)


def test_build_script_is_reproducible(tmp_path):
    spec = importlib.util.spec_from_file_location("build_fashion_subset", REPO / "scripts" / "build_fashion_subset.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    write_fake_fashion(tmp_path / "src", n_train=100, n_test=50)
    first = script.build(tmp_path / "src", tmp_path / "a.npz", train_per_class=3, test_per_class=2, seed=0)
    second = script.build(tmp_path / "src", tmp_path / "b.npz", train_per_class=3, test_per_class=2, seed=0)
    assert first == second
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    arrays = data.read_subset_file(tmp_path / "a.npz", expected_sha256=first)
    assert arrays["train_images"].shape == (30, 28, 28)
    assert np.bincount(arrays["test_labels"]).tolist() == [2] * 10


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trip(tmp_path, compress):
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    write_idx(tmp_path / "x-idx3-ubyte", images, compress)
    path = tmp_path / ("x-idx3-ubyte.gz" if compress else "x-idx3-ubyte")
    np.testing.assert_array_equal(data.read_idx(path), images)


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00")
    with pytest.raises(data.DataError, match="not an idx file"):
        data.read_idx(tmp_path / "bad")
    write_idx(tmp_path / "short", np.zeros((4, 2, 2), np.uint8), compress=False)
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-3])
    with pytest.raises(data.DataError, match="truncated"):
        data.read_idx(tmp_path / "short")


def test_full_fashion_mnist_from_torchvision_layout(tmp_path):
    write_fake_fashion(tmp_path / "FashionMNIST" / "raw")
    splits = data.load_fashion_mnist("full", root=tmp_path, val_size=20, fast=False)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (180, 20, 50)
    assert splits.train.images.shape[1:] == (1, 28, 28)
    assert torch.bincount(splits.val.labels).tolist() == [2] * 10
    assert splits.name == "fashion-mnist"


def test_full_fashion_mnist_from_the_debian_path(tmp_path, monkeypatch):
    debian = tmp_path / "usr-share-datasets-fashion-mnist"
    write_fake_fashion(debian, compress=True)
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST_DIR", debian)
    splits = data.load_fashion_mnist("full", root=tmp_path / "empty", val_size=10, fast=False)
    assert splits.source == str(debian)
    assert len(splits.train) + len(splits.val) == 200


def test_missing_full_data_explains_and_never_downloads_silently(tmp_path, monkeypatch):
    import torchvision.datasets

    def no_download(*args, **kwargs):
        raise AssertionError("downloaded without being asked")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", no_download)
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", no_download)
    with pytest.raises(data.DataError, match=r"dataset-fashion-mnist.*download=True"):
        data.load_fashion_mnist("full", root=tmp_path)
    with pytest.raises(data.DataError, match=r"download=True"):
        data.load_cifar10(root=tmp_path)


def test_download_only_when_asked_by_environment(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    def fake_fashion_mnist(root, train=True, download=False):
        calls.append((root, train, download))
        write_fake_fashion(Path(root) / "FashionMNIST" / "raw")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", fake_fashion_mnist)
    monkeypatch.setenv(data.DOWNLOAD_ENV, "1")
    splits = data.load_fashion_mnist("full", root=tmp_path, val_size=10, fast=False)
    assert calls and all(download for _, _, download in calls)
    assert len(splits.test) == 50


def write_fake_cifar(folder: Path, per_batch: int = 20) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, (per_batch, 3 * 32 * 32), dtype=np.uint8),
            b"labels": [i % 10 for i in range(per_batch)],
        }
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle)


def test_cifar10_from_synthetic_batches_feeds_the_cifar_nets(tmp_path):
    write_fake_cifar(tmp_path / "cifar-10-batches-py")
    splits = data.load_cifar10(root=tmp_path, val_size=10, fast=False)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (90, 10, 20)
    assert splits.train.images.shape[1:] == (3, 32, 32) and len(splits.mean) == 3
    x, y = next(data.batches(splits.train, splits.mean, splits.std, batch_size=8, augment=True))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32
    assert cifar_resnet(20)(x).shape == (8, 10)


def test_corrupt_cifar_batch_is_reported(tmp_path):
    write_fake_cifar(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(data.DataError, match="data_batch_3"):
        data.load_cifar10(root=tmp_path, fast=False)


def test_random_crop_flip_is_a_shifted_or_mirrored_crop():
    images = torch.randint(1, 256, (16, 2, 6, 7), dtype=torch.uint8)
    out = data.random_crop_flip(images, pad=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == images.dtype
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for i in range(16):
        candidates = [
            view
            for dy in range(5)
            for dx in range(5)
            for view in (padded[i, :, dy : dy + 6, dx : dx + 7], padded[i, :, dy : dy + 6, dx : dx + 7].flip(-1))
        ]
        assert any(torch.equal(out[i], c) for c in candidates)
    assert not torch.equal(out, images)  # something moved


def erased_masks(out: torch.Tensor, background: float) -> torch.Tensor:
    """(B, C, H, W) images that were all ``background`` -> bool (B, H, W): where noise was written."""
    return (out != background).any(dim=1)


def test_random_erase_writes_one_rectangle_of_the_drawn_size():
    images = torch.full((400, 2, 28, 28), -1.0)  # float noise is in [0, 1), so erased pixels are != -1
    out = data.random_erase(images, p=1.0, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == images.dtype
    masks = erased_masks(out, -1.0)
    erased = 0
    for mask in masks:
        if not mask.any():
            continue  # ten draws that did not fit: left as it is (rare)
        erased += 1
        rows, cols = mask.any(dim=1).nonzero().flatten(), mask.any(dim=0).nonzero().flatten()
        top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        assert mask[top:bottom, left:right].all() and mask.sum() == (bottom - top) * (right - left)  # a solid rectangle
        area = mask.sum().item() / (28 * 28)
        assert 0.015 <= area <= 0.45  # 2% to 40% of the image, up to rounding of the sides
        aspect = (bottom - top).item() / (right - left).item()
        assert 0.2 <= aspect <= 5.0
    assert erased >= 390
    assert torch.equal(out[:, 0] != -1, out[:, 1] != -1)  # every channel of the rectangle


def test_random_erase_probability_deterministic_and_uint8():
    images = torch.zeros(2000, 1, 28, 28, dtype=torch.uint8)
    out = data.random_erase(images, p=0.5, generator=torch.Generator().manual_seed(1))
    again = data.random_erase(images, p=0.5, generator=torch.Generator().manual_seed(1))
    assert out.dtype == torch.uint8 and torch.equal(out, again)
    share = erased_masks(out, 0).flatten(1).any(dim=1).float().mean().item()
    assert 0.45 <= share <= 0.55
    assert torch.equal(data.random_erase(images, p=0.0), images)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        data.random_erase(images, p=1.5)


def test_batches_apply_random_erasing_only_when_augmenting():
    splits = data.load_fashion_mnist("subset", fast=True)
    subset = splits.train.select(torch.arange(256))
    plain = [
        x
        for x, _ in data.batches(
            subset, splits.mean, splits.std, augment=True, generator=torch.Generator().manual_seed(0)
        )
    ]
    erased = [x for x, _ in data.batches(subset, splits.mean, splits.std, augment=True, random_erasing=1.0,
                                         generator=torch.Generator().manual_seed(0))]  # fmt: skip
    assert [x.shape for x in plain] == [x.shape for x in erased]
    assert not torch.equal(torch.cat(plain), torch.cat(erased))
    clean = [x for x, _ in data.batches(subset, splits.mean, splits.std, random_erasing=1.0)]
    reference = [x for x, _ in data.batches(subset, splits.mean, splits.std)]
    assert torch.equal(torch.cat(clean), torch.cat(reference))  # evaluation batches are never erased


def test_batches_cover_every_image_once_normalized():
    splits = data.load_fashion_mnist("subset", fast=True)
    seen = []
    for x, y in data.batches(splits.train, splits.mean, splits.std, batch_size=100, shuffle=True,
                             generator=torch.Generator().manual_seed(1)):  # fmt: skip
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 28, 28)
        seen.append(y)
    assert sum(len(y) for y in seen) == len(splits.train)
    assert torch.equal(torch.cat(seen).sort().values, splits.train.labels.sort().values)
    x = data.normalize(splits.train.images, splits.mean, splits.std)
    assert abs(x.mean().item()) < 1e-3 and abs(x.std().item() - 1) < 1e-3


def test_describe_names_sizes_shape_and_optionally_the_source():
    splits = data.load_fashion_mnist("subset", fast=True)
    line = "fashion-mnist-subset-fast: 512 train / 256 val / 512 test images of 1x28x28, 10 classes"
    assert splits.describe(source=False) == line
    assert splits.describe() == f"{line} (from {data.DATA_DIR / data.SUBSET_FILE})"
