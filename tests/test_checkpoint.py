"""Inference checkpoints: what they hold, and clear errors for files that are not one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hific_lit import HiFiC
from hific_lit.errors import CheckpointError
from hific_lit.io.checkpoint import load_inference_checkpoint, read_inference_checkpoint, save_inference_checkpoint
from hific_lit.runtime.precision import set_transform_precision


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[HiFiC, Path]:
    torch.manual_seed(0)
    model = HiFiC.from_preset("tiny").eval()
    path = tmp_path_factory.mktemp("ckpt") / "model.ckpt"
    save_inference_checkpoint(model, path, config={"arch": "tiny", "lr": 1e-4, "crop": [256, 256]})
    return model, path


def test_checkpoint_holds_weights_tables_arch_and_config(saved: tuple[HiFiC, Path]) -> None:
    model, path = saved
    payload = read_inference_checkpoint(path)
    assert payload["config"] == {"arch": "tiny", "lr": 1e-4, "crop": [256, 256]}
    assert payload["arch"] == model.arch.to_dict()
    assert not any("discriminator" in k for k in payload["state_dict"]) and "discriminator_state_dict" not in payload
    assert model.coding_ready, "saving builds the tables"
    loaded = load_inference_checkpoint(path)
    assert not loaded.training and not hasattr(loaded, "discriminator")
    x = torch.rand(3, 64, 80)
    data = model.compress(x)
    assert loaded.compress(x) == data
    set_transform_precision(model.g_a, model.g_s, torch.float32)  # the layout loading gives: same float rounding
    assert torch.equal(loaded.decompress(data), model.decompress(data))


def test_omegaconf_configs_are_stored_as_plain_data(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    config = OmegaConf.create({"a": 1, "b": "${a}"})
    save_inference_checkpoint(HiFiC.from_preset("tiny"), tmp_path / "m.ckpt", config=config)
    assert read_inference_checkpoint(tmp_path / "m.ckpt")["config"] == {"a": 1, "b": 1}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"<!DOCTYPE html><html><body>404 Not Found</body></html>", "HTML"),
        (b"\x00\x01garbage" * 50, "not a readable PyTorch checkpoint"),
    ],
)
def test_non_checkpoints_get_a_clear_message(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_inference_checkpoint(path)


def test_missing_and_truncated_files(tmp_path: Path, saved: tuple[HiFiC, Path]) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_inference_checkpoint(tmp_path / "missing.ckpt")
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(saved[1].read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="truncated"):
        load_inference_checkpoint(truncated)


def test_foreign_torch_files_are_refused(tmp_path: Path) -> None:
    torch.save({"state_dict": {}, "pytorch-lightning_version": "2.6"}, tmp_path / "lightning.ckpt")
    with pytest.raises(CheckpointError, match="Lightning training checkpoint"):
        load_inference_checkpoint(tmp_path / "lightning.ckpt")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(CheckpointError, match="not a hific-lit inference checkpoint"):
        load_inference_checkpoint(tmp_path / "tensor.pt")


def test_pickled_code_is_not_executed(tmp_path: Path) -> None:
    torch.save({"format": "hific-lit-inference", "payload": Path("x")}, tmp_path / "pickle.ckpt")
    with pytest.raises(CheckpointError, match=r"refused: the checkpoint holds the Python object pathlib\.PosixPath"):
        load_inference_checkpoint(tmp_path / "pickle.ckpt")


def test_weights_of_another_architecture_and_missing_tables(tmp_path: Path, saved: tuple[HiFiC, Path]) -> None:
    payload = read_inference_checkpoint(saved[1])
    payload["arch"] = {**payload["arch"], "latent_channels": 9}
    torch.save(payload, tmp_path / "mismatch.ckpt")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_inference_checkpoint(tmp_path / "mismatch.ckpt")
    payload = read_inference_checkpoint(saved[1])
    fresh = HiFiC.from_preset("tiny").state_dict()
    built = ("tables.", "_int.")
    payload["state_dict"] = {k: fresh[k] if any(b in k for b in built) else v for k, v in payload["state_dict"].items()}
    torch.save(payload, tmp_path / "no_tables.ckpt")
    with pytest.raises(CheckpointError, match="no coding tables"):
        load_inference_checkpoint(tmp_path / "no_tables.ckpt")


@pytest.mark.parametrize(
    ("version", "message"), [(1, "predates the authors' input range"), (2, "has no integer h_s"), (99, "newer")]
)
def test_other_checkpoint_versions_are_refused_saying_why(
    saved: tuple[HiFiC, Path], tmp_path: Path, version: int, message: str
) -> None:
    payload = read_inference_checkpoint(saved[1])
    payload["format_version"] = version
    torch.save(payload, tmp_path / "old.ckpt")
    with pytest.raises(CheckpointError, match=message):
        load_inference_checkpoint(tmp_path / "old.ckpt")


def test_one_reader_per_checkpoint_kind(saved: tuple[HiFiC, Path], tmp_path: Path) -> None:
    """The Lightning reader refuses an inference checkpoint (and the other way round); a warm start reads
    either through its own reader, so an old inference checkpoint is refused there too."""
    from hific_lit.training.warmstart import read_checkpoint_weights, read_lightning_checkpoint

    model, path = saved
    with pytest.raises(CheckpointError, match="is a hific-lit inference checkpoint, not a Lightning"):
        read_lightning_checkpoint(path)
    lightning = tmp_path / "last.ckpt"
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save(
        {"pytorch-lightning_version": "2.4.0", "state_dict": state, "hific_arch": model.arch.to_dict()}, lightning
    )
    with pytest.raises(CheckpointError, match="Lightning training checkpoint — export"):
        read_inference_checkpoint(lightning)
    for source in (path, lightning):
        weights = read_checkpoint_weights(source)
        assert weights.discriminator is None and set(weights.codec) == set(model.state_dict())
        assert all(torch.equal(weights.codec[k], v) for k, v in model.state_dict().items())
    payload = read_inference_checkpoint(path)
    payload["format_version"] = 2
    torch.save(payload, tmp_path / "v2.ckpt")
    with pytest.raises(CheckpointError, match="has no integer h_s"):
        read_checkpoint_weights(tmp_path / "v2.ckpt")
