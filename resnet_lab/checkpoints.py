"""Saving and loading trained weights safely.

A checkpoint is a plain dict of tensors, numbers and strings, so it loads with
``torch.load(..., weights_only=True)`` (no arbitrary code runs). It is written to a temporary
file in the same folder and renamed into place, so an interrupted save never leaves a broken file.
It records which architecture it came from, and loading it into another one fails with a clear
message (plain-20 and ResNet-20 have identical weight shapes, so shapes alone would not catch that).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .costs import count_parameters, state_dict_mismatch

FORMAT = "resnet_lab.checkpoint/1"


class CheckpointError(RuntimeError):
    """The checkpoint is unreadable or belongs to another architecture."""


def architecture_of(model: nn.Module) -> dict[str, Any]:
    """What identifies a model's architecture: class name, description, parameter count."""
    return {
        "class": type(model).__name__,
        "description": str(getattr(model, "description", type(model).__name__)),
        "num_parameters": count_parameters(model),
    }


def save_checkpoint(path: str | Path, model: nn.Module, **extra: Any) -> Path:
    """Write the model's weights (and ``extra`` plain data, e.g. history=..., epoch=...) to ``path``.

    Atomic: temp file + ``os.replace``. ``extra`` values must be tensors, dicts, lists, numbers,
    strings or None (what ``weights_only=True`` loading accepts). Returns the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "architecture": architecture_of(model), "model": model.state_dict(), **extra}
    handle, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as tmp:
            torch.save(payload, tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(
    path: str | Path, model: nn.Module | None = None, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; if ``model`` is given, load its weights into it.

    Raises ``CheckpointError`` when the file is missing or unreadable, or when it was saved from
    another architecture (the message names both and what to do). Returns the checkpoint dict
    (keys: format, architecture, model, and any extras saved with it).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}; train a model first (training.train(..., checkpoint_path=...))."
        )
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch's message is long (a note on weights_only); the cause stays chained
        why = (
            "it holds Python objects, not just weights"
            if "Unsupported global" in str(err)
            else "torch.load cannot read it"
        )
        raise CheckpointError(
            f"{path} is not a resnet-lab checkpoint ({why}): load one written by save_checkpoint or "
            "train(..., checkpoint_path=...), or delete this file and retrain."
        ) from err
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT or "model" not in checkpoint:
        raise CheckpointError(
            f"{path} is not a resnet-lab checkpoint (no format {FORMAT!r} entry): load one written by "
            "save_checkpoint or train(..., checkpoint_path=...)."
        )
    if model is not None:
        saved, wanted = checkpoint["architecture"], architecture_of(model)
        problems = state_dict_mismatch(model, checkpoint["model"])
        if saved["class"] != wanted["class"] or saved["description"] != wanted["description"] or problems:
            detail = f"\n{problems}" if problems else ""
            raise CheckpointError(
                f"{path} holds weights of {saved['description']} ({saved['num_parameters']:,} parameters), "
                f"but the model is {wanted['description']} ({wanted['num_parameters']:,} parameters). "
                f"Build the matching model (same depth, residual=..., in_channels, num_classes) or "
                f"pick the checkpoint of this one.{detail}"
            )
        model.load_state_dict(checkpoint["model"])
    return checkpoint
