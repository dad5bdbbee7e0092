""".hfc files written as they are coded: the same bytes as HiFiC.compress, atomically, the image let go early."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from hific_lit import HiFiC, hfc_writer
from hific_lit.bitstream import unpack
from hific_lit.hfc_writer import compress_to_file


@pytest.fixture(scope="module")
def model(seeded_tiny: Callable[[int], HiFiC]) -> HiFiC:
    return seeded_tiny(13)


def _photo(height: int = 70, width: int = 150) -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100 : 100 + height, 200 : 200 + width])


def test_the_file_holds_compress_bytes_and_its_estimate(model: HiFiC, tmp_path: Path) -> None:
    x = torch.from_numpy(_photo()).permute(2, 0, 1)
    expected = model.compress(x)
    bits = compress_to_file(model, x, tmp_path / "a.hfc")
    written = (tmp_path / "a.hfc").read_bytes()
    assert written == expected and unpack(written)[0].y_length > 0
    assert bits == expected.estimated_bits
    assert torch.equal(model.decompress(written, uint8=True), model.decompress(expected, uint8=True))


def test_a_failure_midway_leaves_no_file_and_an_old_one_untouched(
    model: HiFiC, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "a.hfc"
    target.write_bytes(b"old")

    def broken(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(hfc_writer, "write_stream", broken)
    with pytest.raises(OSError, match="No space"):
        compress_to_file(model, torch.from_numpy(_photo()).permute(2, 0, 1), target)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["a.hfc"]
    with pytest.raises(ValueError, match="one image"):
        compress_to_file(model, torch.rand(2, 3, 16, 16), tmp_path / "b.hfc")
    assert not (tmp_path / "b.hfc").exists()


def test_the_image_is_let_go_once_g_a_has_run(model: HiFiC, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pixels = _photo()
    alive = weakref.ref(pixels)
    images = [torch.from_numpy(pixels).permute(2, 0, 1)]
    del pixels
    seen = []
    code_latent = hfc_writer.code_latent
    monkeypatch.setattr(hfc_writer, "code_latent", lambda m, y: seen.append(alive()) or code_latent(m, y))
    compress_to_file(model, images.pop(), tmp_path / "a.hfc")
    assert seen == [None], "the image was still alive while the latent was coded"
