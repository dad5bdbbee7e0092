"""The error bound through the Codec interface: .hfc version 3, the x_hat check, checkpoints, CLI and eval."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hific_lit import HiFiC
from hific_lit.cli import main
from hific_lit.config import compose_config
from hific_lit.entropy.residual import ResidualCoder
from hific_lit.entropy.residual_section import XHatMismatchError
from hific_lit.errors import BitstreamError, SettingError
from hific_lit.eval.pipeline import evaluate
from hific_lit.eval.runner import Scorers
from hific_lit.io.checkpoint import load_inference_checkpoint, save_inference_checkpoint
from hific_lit.io.container import unpack

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bounded(seeded_tiny: Callable[[int], HiFiC]) -> HiFiC:
    """The seeded tiny model with an untrained residual coder (its rates are poor; the bound holds all the same)."""
    model = seeded_tiny(5)
    torch.manual_seed(1)
    coder = ResidualCoder(width=4, grid=2)
    coder.update()
    model.attach_residual_coder(coder)
    return model


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    from skimage import data

    return torch.from_numpy(data.astronaut()[200:237, 200:251].copy()).permute(2, 0, 1).contiguous()


@pytest.mark.parametrize("k", [0, 3])
def test_decoding_stays_within_the_bound(bounded: HiFiC, image: torch.Tensor, k: int) -> None:
    plain = bounded.compress(image)
    data = bounded.compress(image, max_error=k)
    unpacked, plain_unpacked = unpack(data), unpack(plain)
    assert (unpacked.header.version, plain_unpacked.header.version) == (3, 2)
    assert (unpacked.z_stream, unpacked.y_stream) == (plain_unpacked.z_stream, plain_unpacked.y_stream)
    assert set(unpacked.sections) == {"residual"} and not plain_unpacked.sections
    decoded = bounded.decompress(data, uint8=True)[0]
    assert int((decoded.int() - image.int()).abs().max()) <= k
    if k == 0:
        assert torch.equal(decoded, image)
    x_hat = bounded.decompress(plain, uint8=True)
    assert torch.equal(bounded.decompress(data, uint8=True, residual=False), x_hat)
    assert torch.allclose(bounded.decompress(data), decoded.float()[None] / 255)


def test_another_decoding_of_x_hat_is_refused(bounded: HiFiC, image: torch.Tensor) -> None:
    data = bounded.compress(image, max_error=1)
    other = copy.deepcopy(bounded)
    other.attach_residual_coder(bounded.residual_coder)
    other.g_s.to(torch.bfloat16)
    assert not torch.equal(other.decompress(data, uint8=True, residual=False), bounded.decompress(data, uint8=True))
    with pytest.raises(XHatMismatchError, match="decode on cpu with --precision fp32"):
        other.decompress(data)


def test_without_a_residual_coder(seeded_tiny: Callable[[int], HiFiC], bounded: HiFiC, image: torch.Tensor) -> None:
    plain_model = seeded_tiny(5)
    assert plain_model.capabilities.error_bound is None and bounded.capabilities.error_bound == 127
    with pytest.raises(SettingError, match="no residual coder"):
        plain_model.compress(image, max_error=1)
    with pytest.raises(SettingError, match="maximum error"):
        bounded.compress(image, max_error=128)
    data = bounded.compress(image, max_error=1)
    with pytest.raises(BitstreamError, match="no residual coder"):
        plain_model.decompress(data)
    other = ResidualCoder(width=4, grid=2)
    other.update()
    plain_model.attach_residual_coder(other)
    with pytest.raises(BitstreamError, match="another residual coder"):
        plain_model.decompress(data)


def test_checkpoint_keeps_the_residual_coder(bounded: HiFiC, image: torch.Tensor, tmp_path: Path) -> None:
    save_inference_checkpoint(bounded, tmp_path / "bounded.ckpt")
    loaded = load_inference_checkpoint(tmp_path / "bounded.ckpt")
    assert loaded.residual_coder.fingerprint() == bounded.residual_coder.fingerprint()
    data = bounded.compress(image, max_error=2)
    assert loaded.compress(image, max_error=2) == data
    assert torch.equal(loaded.decompress(data, uint8=True), bounded.decompress(data, uint8=True))


def test_command_line(bounded: HiFiC, image: torch.Tensor, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    save_inference_checkpoint(bounded, tmp_path / "bounded.ckpt")
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(tmp_path / "photo.png")
    ckpt = ["--ckpt", str(tmp_path / "bounded.ckpt"), "-q"]
    hfc, back = str(tmp_path / "photo.hfc"), tmp_path / "back.png"
    assert main(["compress", str(tmp_path / "photo.png"), *ckpt, "--max-error", "2", "-o", hfc]) == 0
    capsys.readouterr()
    assert main(["info", hfc, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["version"] == 3 and info["max_error"] == 2 and info["residual"].endswith("% of the file")
    assert main(["decompress", hfc, *ckpt, "-o", str(back)]) == 0
    decoded = np.asarray(Image.open(back)).astype(int)
    assert np.abs(decoded - image.permute(1, 2, 0).numpy()).max() <= 2
    assert main(["decompress", hfc, *ckpt, "-o", str(tmp_path / "back.jpg")]) == 1
    assert "lossy .jpg would break the bound" in capsys.readouterr().err
    assert main(["compress", str(tmp_path / "photo.png"), *ckpt, "--max-error", "300"]) == 2


@pytest.mark.slow  # about a minute: an evaluation run with the library codecs
def test_eval_reports_max_error_next_to_library_codecs(
    seeded_tiny: Callable[[int], HiFiC], bounded: HiFiC, image: torch.Tensor, tmp_path: Path
) -> None:
    save_inference_checkpoint(bounded, tmp_path / "bounded.ckpt")
    save_inference_checkpoint(seeded_tiny(5), tmp_path / "plain.ckpt")
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(photos / "crop.png")

    def config(ckpt: str):
        overrides = [f"ckpt={tmp_path / ckpt}", "eval_set=folder", f"eval_set.path={photos}", "device=cpu"]
        return compose_config("eval", [*overrides, "max_error=1", "metrics.lpips=false", "metrics.fid=false"])

    summary = evaluate(config("bounded.ckpt"), tmp_path / "out", Scorers(None, None))
    methods = summary["checkpoints"]["bounded"]["methods"]
    assert methods["hific"]["max_error"] <= 1
    assert {"png_k1", "webp_k1"} <= set(methods) and "jpeg" not in methods
    assert all(m["max_error"] <= 1 for m in methods.values())
    with pytest.raises(SettingError, match="no residual coder"):
        evaluate(config("plain.ckpt"), tmp_path / "out2", Scorers(None, None))
