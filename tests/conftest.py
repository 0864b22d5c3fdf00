"""Shared by the tests of run records (test_records.py, committed records) and of the experiments CLI."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch

from resnet_lab import data, experiments

HISTORY_KEYS = {
    "epoch",
    "train_loss",
    "train_error",
    "val_error",
    "test_error",
    "lr",
    "seconds",
    "step",
    "step_train_error",
}


def check_record_schema(record: dict, nets: list[str]) -> None:
    """Assert that ``record`` is a complete run record of the nets ``nets``, in that order."""
    assert record["schema"] == experiments.SCHEMA
    for key in (
        "experiment",
        "mode",
        "created",
        "dataset",
        "seed",
        "config",
        "environment",
        "nets",
        "total_seconds",
        "notes",
    ):
        assert key in record, key
    for key in ("torch", "torchvision", "device", "device_name", "torch_threads", "precision"):
        assert record["environment"][key] not in (None, ""), key
    assert {"name", "train", "val", "test"} <= set(record["dataset"])
    assert list(record["nets"]) == nets
    epochs = record["config"]["epochs"]
    for name, net in record["nets"].items():
        assert net["name"] == name and net["seconds"] > 0 and net["parameters"] > 0
        assert HISTORY_KEYS <= set(net["history"])
        assert len(net["history"]["train_error"]) == epochs and not net["history"]["interrupted"]
        assert {"train_error", "val_error", "test_error"} <= set(net["final"])
        assert all(0 <= e <= 100 for e in net["history"]["train_error"])


@pytest.fixture
def check_schema() -> Callable[[dict, list[str]], None]:
    return check_record_schema


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny nets train as fast on one thread, and far faster when other jobs share the cores; the caller's
    thread count is restored after the module. Opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_splits() -> data.Splits:
    """96 training, 40 validation and 40 test images of the shipped subset (fast mode)."""
    return data.load_fashion_mnist("subset", fast=True).first(train=96, val=40, test=40)
