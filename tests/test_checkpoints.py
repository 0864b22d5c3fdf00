"""Checkpoints: round trip with weights_only loading, atomic writes, refusal of other architectures."""

from __future__ import annotations

import pytest
import torch

from resnet_lab import checkpoints, cifar_resnet


def test_round_trip_restores_weights_and_extras(tmp_path):
    torch.manual_seed(0)
    model = cifar_resnet(8, in_channels=1)
    path = checkpoints.save_checkpoint(
        tmp_path / "sub" / "net.pt", model, history={"train_error": [50.0, 40.0]}, epoch=2
    )
    raw = torch.load(path, weights_only=True)  # plain data only: safe loading works
    assert raw["architecture"]["description"] == model.description

    torch.manual_seed(1)
    fresh = cifar_resnet(8, in_channels=1)
    assert not torch.equal(fresh.conv1.weight, model.conv1.weight)
    checkpoint = checkpoints.load_checkpoint(path, fresh)
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    assert checkpoint["epoch"] == 2 and checkpoint["history"]["train_error"] == [50.0, 40.0]


def test_plain_checkpoint_refused_by_the_residual_twin(tmp_path):
    path = checkpoints.save_checkpoint(tmp_path / "plain.pt", cifar_resnet(20, in_channels=1, residual=False))
    with pytest.raises(checkpoints.CheckpointError, match=r"plain-20.*ResNet-20"):
        checkpoints.load_checkpoint(path, cifar_resnet(20, in_channels=1))


def test_other_depth_refused_naming_the_keys(tmp_path):
    path = checkpoints.save_checkpoint(tmp_path / "r20.pt", cifar_resnet(20, in_channels=1))
    with pytest.raises(checkpoints.CheckpointError, match=r"ResNet-20.*ResNet-32(.|\n)*missing keys"):
        checkpoints.load_checkpoint(path, cifar_resnet(32, in_channels=1))


def test_write_is_atomic(tmp_path, monkeypatch):
    model = cifar_resnet(8, in_channels=1)
    path = checkpoints.save_checkpoint(tmp_path / "net.pt", model, epoch=1)
    before = path.read_bytes()

    def failing_save(obj, f, *args, **kwargs):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        checkpoints.save_checkpoint(path, model, epoch=2)
    assert path.read_bytes() == before  # the old checkpoint survives
    assert [p.name for p in tmp_path.iterdir()] == ["net.pt"]  # no temp file left behind


def test_missing_and_corrupt_files_are_explained(tmp_path):
    with pytest.raises(checkpoints.CheckpointError, match="no checkpoint"):
        checkpoints.load_checkpoint(tmp_path / "none.pt")
    torch.save({"some": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(checkpoints.CheckpointError, match="not a resnet-lab checkpoint .*save_checkpoint"):
        checkpoints.load_checkpoint(tmp_path / "foreign.pt")


@pytest.mark.parametrize(
    "kind,cause", [("garbage", "torch.load cannot read it"), ("pickled model", "it holds Python objects")]
)
def test_unreadable_checkpoint_is_explained_in_one_line(tmp_path, kind, cause):
    path = tmp_path / "bad.pt"
    if kind == "garbage":
        path.write_bytes(b"garbage")
    else:
        torch.save(cifar_resnet(8, in_channels=1), path)  # a whole pickled module: refused by weights_only loading
    with pytest.raises(checkpoints.CheckpointError) as info:
        checkpoints.load_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message and len(message) < 300 + len(str(path))  # not torch's long note
    assert message.startswith(f"{path} is not a resnet-lab checkpoint ({cause}")
    assert "save_checkpoint" in message and "retrain" in message
    assert info.value.__cause__ is not None  # torch's full error stays chained for the curious
