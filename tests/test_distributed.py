"""training.train under torchrun: 2 CPU processes (gloo) train exactly as one process accumulating their micro-batches."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from resnet_lab import data, runtime, training

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "distributed_worker.py"
_spec = importlib.util.spec_from_file_location("distributed_worker", WORKER)
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)
WORLD = 2


def launch(out: Path, *extra: str) -> subprocess.CompletedProcess:
    """torchrun with 2 CPU processes; a generous timeout so a hang fails the test instead of the CI job."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
               "--max-restarts=0", str(WORKER), "--out", str(out), *extra]  # fmt: skip
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)


def reference_state() -> dict[str, torch.Tensor]:
    """One process sees what the two ranks see: per step, rank 0's and rank 1's micro-batches, gradients averaged."""
    splits, config, model = worker.tiny_splits(), worker.tiny_config(), worker.tiny_model()
    generator = runtime.seed_everything(config.seed)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    per_rank = len(splits.train) // WORLD
    steps_per_epoch = math.ceil(per_rank / config.batch_size)
    total, step = steps_per_epoch * config.epochs, 0
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(splits.train), generator=generator)  # the same order on every rank
        shards = [order[rank::WORLD][:per_rank] for rank in range(WORLD)]
        for k in range(steps_per_epoch):
            for group in optimizer.param_groups:
                group["lr"] = training.learning_rate(config, step, total)
            optimizer.zero_grad()
            for rank_shard in shards:
                index = rank_shard[k * config.batch_size : (k + 1) * config.batch_size]
                x = data.normalize(splits.train.images[index], splits.mean, splits.std)
                (F.cross_entropy(model(x), splits.train.labels[index]) / WORLD).backward()  # DDP averages gradients
            optimizer.step()
            step += 1
    return {name: p.detach() for name, p in model.named_parameters()}


def test_two_processes_train_as_one_process_accumulating_their_batches(tmp_path):
    result = launch(tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    trained = torch.load(tmp_path / "model.pt", weights_only=True)
    expected = reference_state()
    worst = max((trained[name] - value).abs().max().item() for name, value in expected.items())
    assert worst < 1e-5, f"largest parameter difference {worst:.2e}"  # measured 0.0 here; 1e-5 allows other sum orders
    history = json.loads((tmp_path / "history.json").read_text())
    assert history["processes"] == WORLD and history["epoch"] == [1, 2]
    assert len(history["step_train_error"]) == len(history["step"])
    assert all(0 <= e <= 100 for e in history["val_error"] + history["test_error"])


def test_a_crashing_process_fails_the_launch_instead_of_hanging(tmp_path):
    result = launch(tmp_path, "--fail-at-step", "3")
    assert result.returncode != 0
    assert "this rank fails on purpose" in result.stdout + result.stderr
    assert not (tmp_path / "model.pt").exists()


def test_one_process_is_rank_0_of_1_and_sync_bn_needs_cuda():
    assert runtime.processes() == runtime.Processes(rank=0, world_size=1, local_rank=0)
    with pytest.raises(ValueError, match="sync_bn=True needs CUDA"):
        training.train(worker.tiny_model(), worker.tiny_splits(), worker.tiny_config(), device="cpu", sync_bn=True)
