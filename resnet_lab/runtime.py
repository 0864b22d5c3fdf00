"""Where and how code runs: the device, fast mode, CPU threads, seeding and what to record about them.

Settings are decided once, where a run starts (the experiments CLI, a notebook's first cell, the test
suite's conftest.py), and passed down as arguments: only ``fast_mode()`` reads ``RESNET_LAB_FAST``, and
library code calls it nowhere else. Nothing here changes torch's global state for good:
``torch_threads`` restores the thread count it changed.
"""

from __future__ import annotations

import os
import platform
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

FAST_ENV = "RESNET_LAB_FAST"


def fast_mode() -> bool:
    """True when ``RESNET_LAB_FAST=1`` (set by the test suite). Read it where a run starts and pass the answer on."""
    return os.environ.get(FAST_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def pick_device() -> torch.device:
    """CUDA when a GPU is present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch.Generator seeded the same, for data order."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run the ``with`` block on ``threads`` torch CPU threads (None: as they are); restore the count after.

    Yields the number of threads in use. One thread is often faster for tiny batches, and when other
    programs keep the cores busy.
    """
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive integer or None (torch's current setting); got {threads!r}")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: torch.device, threads: int | None = None) -> dict[str, Any]:
    """Versions and hardware, for run records: torch, torchvision, python, device, its name, cores, torch threads.

    ``threads``: the torch CPU threads the run used (default: the current setting).
    """
    import torchvision  # only here: importing it costs time and nothing else in this module needs it

    return {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "device": device.type,
        "device_name": device_name(device),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads() if threads is None else threads,
    }
