"""Shipped trained weights: the degradation experiment's four nets, stored in half precision.

    model = weights.load_degradation_net("ResNet-56")        # fp32 CifarResNet in eval mode

Each file is a ``resnet_lab.checkpoint/1`` (see ``checkpoints``) whose float tensors are fp16: half
the bytes of fp32, and fp16's 10-bit mantissa keeps trained weights closer than bf16's 7 bits (all
values of these nets lie far inside fp16's range). Loading goes through ``torch.load(...,
weights_only=True)`` and copies the values into an fp32 model. ``data/weights/SHA256SUMS`` lists
every file's sha256 (check by hand with ``cd data/weights && sha256sum -c SHA256SUMS``); a missing
file, a checksum mismatch or weights of another net raise ``WeightsError`` saying what to do.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from .data import DATA_DIR
from .models import CifarResNet, cifar_resnet

WEIGHTS_DIR = DATA_DIR / "weights"
CHECKSUMS = "SHA256SUMS"
# (name, depth, residual) of the degradation experiment's nets (as experiments.DEGRADATION_NETS)
NETS = {"plain-20": (20, False), "plain-56": (56, False), "ResNet-20": (20, True), "ResNet-56": (56, True)}
REDO = "python -m resnet_lab.experiments degradation --save-weights data/weights  # seed 0, about 25 min on 2 cores"


class WeightsError(CheckpointError):
    """Shipped weights are missing, corrupt, or belong to another net."""


def degradation_net(name: str) -> CifarResNet:
    """A fresh fp32 net of the degradation experiment (1 input channel, 10 classes) by name."""
    if name not in NETS:
        raise ValueError(f"unknown net {name!r}; choose from {list(NETS)}")
    depth, residual = NETS[name]
    return cifar_resnet(depth, in_channels=1, residual=residual)


def weights_path(name: str, seed: int = 0, root: str | Path | None = None) -> Path:
    """Where the weights of net ``name`` trained with ``seed`` live: <root>/degradation-seed<seed>/<name>.pt."""
    return Path(root or WEIGHTS_DIR) / f"degradation-seed{seed}" / f"{name}.pt"


def sha256_of(path: str | Path) -> str:
    """The sha256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_half(model: nn.Module, path: str | Path, *, dtype: torch.dtype = torch.float16, **provenance: Any) -> Path:
    """Save ``model``'s weights with float tensors cast to ``dtype`` (fp16 or bf16), atomically.

    Integer buffers (BN's ``num_batches_tracked``) keep their type. ``provenance`` (plain data:
    net name, seed, record, errors...) is stored next to the weights. Returns the path.
    """
    if dtype not in (torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be torch.float16 or torch.bfloat16; got {dtype}")
    half = copy.deepcopy(model).cpu().to(dtype)
    biggest = max(float(t.abs().max()) for t in model.state_dict().values() if t.is_floating_point())
    if dtype == torch.float16 and biggest > torch.finfo(torch.float16).max:
        raise ValueError(f"a weight of magnitude {biggest:.3g} overflows fp16; save with dtype=torch.bfloat16")
    return save_checkpoint(path, half, dtype=str(dtype).removeprefix("torch."), **provenance)


def read_checksums(root: str | Path | None = None) -> dict[str, str]:
    """The ``SHA256SUMS`` file under ``root`` as {relative path: sha256}; empty if there is none."""
    path = Path(root or WEIGHTS_DIR) / CHECKSUMS
    if not path.is_file():
        return {}
    sums = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.strip().lstrip("*")] = digest
    return sums


def write_checksums(root: str | Path | None = None) -> Path:
    """(Re)write ``SHA256SUMS`` under ``root`` for every ``*.pt`` below it, in ``sha256sum`` format."""
    root = Path(root or WEIGHTS_DIR)
    lines = [f"{sha256_of(p)}  {p.relative_to(root).as_posix()}" for p in sorted(root.rglob("*.pt"))]
    path = root / CHECKSUMS
    path.write_text("\n".join(lines) + "\n")
    return path


def load_degradation_net(name: str, seed: int = 0, *, root: str | Path | None = None,
                         model: nn.Module | None = None) -> nn.Module:  # fmt: skip
    """The trained net ``name`` (plain-20, plain-56, ResNet-20, ResNet-56) of seed ``seed``, fp32, eval mode.

    ``model``: load into this model instead of a fresh one (it must be the same architecture).
    Raises ``WeightsError`` if the file is missing, its sha256 differs from ``SHA256SUMS`` (corrupt
    or altered), it is not a checkpoint, or it holds another net's weights.
    """
    root = Path(root or WEIGHTS_DIR)
    path = weights_path(name, seed, root) if name in NETS else None
    if path is None:
        raise WeightsError(f"no shipped weights for {name!r}; the degradation nets are {list(NETS)}")
    if not path.is_file():
        raise WeightsError(
            f"no weights file {path}. Restore it from git (git checkout -- {path.name}) or retrain: {REDO}"
        )
    relative = path.relative_to(root).as_posix()
    expected = read_checksums(root).get(relative)
    if expected is None:
        raise WeightsError(f"{path} is not listed in {root / CHECKSUMS}; refusing weights of unknown origin.")
    actual = sha256_of(path)
    if actual != expected:
        raise WeightsError(
            f"{path} is corrupt or altered: sha256 {actual[:16]}... but {CHECKSUMS} lists {expected[:16]}.... "
            f"Restore it from git or retrain: {REDO}"
        )
    model = degradation_net(name) if model is None else model
    try:
        checkpoint = load_checkpoint(path, model)
    except CheckpointError as err:
        if "is not a resnet-lab checkpoint" in str(err):  # unreadable, not a mismatch: say what to do with weights
            raise WeightsError(f"{path} is not a readable checkpoint. Restore it from git or retrain: {REDO}") from err
        raise WeightsError(str(err)) from err
    if checkpoint.get("net", name) != name:
        raise WeightsError(f"{path} holds the weights of {checkpoint['net']}, not {name}.")
    return model.float().eval()


def provenance(name: str, seed: int = 0, root: str | Path | None = None) -> dict[str, Any]:
    """What was saved next to the weights of ``name`` (seed, record, errors, dtype...), without the tensors."""
    path = weights_path(name, seed, root)
    if not path.is_file():
        raise WeightsError(f"no weights file {path}; retrain: {REDO}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    return {key: value for key, value in checkpoint.items() if key != "model"}
