"""Where and how code runs: the device, fast mode and seeding."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

FAST_ENV = "RESNET_LAB_FAST"


def fast_mode() -> bool:
    """True when ``RESNET_LAB_FAST=1`` (set by the test suite): shrink data and epochs."""
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
