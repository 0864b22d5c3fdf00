"""Where and how code runs: the device, fast mode, CPU threads, processes, seeding and what to record about them.

Settings are decided once, where a run starts (the experiments CLI, a notebook's first cell, the test
suite's conftest.py), and passed down as arguments: only ``fast_mode()`` reads ``RESNET_LAB_FAST``, and
library code calls it nowhere else. Nothing here changes torch's global state for good:
``torch_threads`` restores the thread count it changed.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import random
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

FAST_ENV = "RESNET_LAB_FAST"


def env_flag(name: str) -> bool:
    """Whether the environment variable ``name`` is set to 1, true, yes or on (any case); unset or else: False."""
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def fast_mode() -> bool:
    """True when ``RESNET_LAB_FAST=1`` (set by the test suite). Read it where a run starts and pass the answer on."""
    return env_flag(FAST_ENV)


def is_positive_int(value: Any) -> bool:
    """Whether ``value`` is an int >= 1 (and not a bool, which Python counts as an int)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def pick_device() -> torch.device:
    """CUDA when a GPU is present (under torchrun: this process's GPU, ``LOCAL_RANK``), else the CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    if "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return torch.device("cuda")


@dataclass(frozen=True)
class Processes:
    """Which of the training processes this one is: rank ``rank`` of ``world_size`` (1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0  # the GPU index on its machine

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that prints progress and writes checkpoints and records."""
        return self.rank == 0


DEFAULT_TIMEOUT_SECONDS = 300.0  # a collective waiting longer than this fails instead of hanging


def processes(timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> Processes:
    """The process group this process trains in, joined on the first call.

    Under ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address) the
    default process group is initialised from that environment: NCCL when there is a GPU, gloo on the
    CPU, with a timeout so a lost peer ends the run with an error rather than a hang. Without torchrun
    (or with one process): rank 0 of 1, and nothing is initialised.
    """
    if not dist.is_available():
        return Processes()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return Processes()
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend, timeout=dt.timedelta(seconds=timeout_seconds))
    return Processes(dist.get_rank(), dist.get_world_size(), local_rank)


def sum_over_processes(values: list[float], group: Processes, device: torch.device) -> list[float]:
    """``values`` summed over all processes (all-reduce); unchanged in a single process."""
    if not group.distributed:
        return values
    totals = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(totals)
    return totals.tolist()


def same_buffers_everywhere(model: nn.Module, group: Processes) -> None:
    """Copy rank 0's BN running statistics to every rank, so all processes evaluate and return the same model."""
    if group.distributed:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


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
    if threads is not None and not is_positive_int(threads):
        raise ValueError(f"threads must be a positive integer or None (torch's current setting); got {threads!r}")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether to autocast to bfloat16: ``precision`` is "bf16", or "auto" and the hardware has native bf16."""
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast(device: torch.device, bf16: bool) -> torch.autocast:
    """Autocast to bfloat16 on ``device`` when ``bf16``, else a no-op context."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def compile_unsupported(device: torch.device) -> str | None:
    """Why torch.compile cannot train here, or None when it can (on the CPU it needs a C++ compiler)."""
    try:
        import torch._dynamo
    except ImportError:
        return f"torch {torch.__version__} has no torch.compile"
    if not torch._dynamo.is_dynamo_supported():
        return f"torch {torch.__version__} cannot compile on this Python or platform"
    if device.type == "cpu" and not (os.environ.get("CXX") or any(shutil.which(c) for c in ("g++", "clang++", "c++"))):
        return "torch.compile on the CPU needs a C++ compiler (g++ or clang++) and none was found"
    return None


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
        "processes": processes().world_size,
    }
