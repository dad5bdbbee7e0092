"""Golden .hfc file: a fixed image and a seeded tiny model give the committed bytes, which decode
to the committed pixels. Regenerate (after a deliberate format change) with HIFIC_REGEN_GOLDEN=1."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hific_lit import HiFiC
from hific_lit.bitstream import unpack
from hific_lit.image_io import save_image, to_uint8

EXPECTED = Path(__file__).parent / "expected"
GOLDEN_HFC = EXPECTED / "golden_tiny.hfc"
GOLDEN_PNG = EXPECTED / "golden_tiny_decoded.png"
REGENERATE = os.environ.get("HIFIC_REGEN_GOLDEN") == "1"


def _golden_model() -> HiFiC:
    torch.manual_seed(2020)
    model = HiFiC.from_preset("tiny").eval()
    model.update()
    return model


def _golden_image() -> torch.Tensor:
    """A 48x80 crop of scikit-image's astronaut, downsampled by 4."""
    from skimage import data

    pixels = data.astronaut()[40:232:4, 100:420:4]
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).float().div(255.0)


def test_golden_file() -> None:
    model = _golden_model()
    data = model.compress(_golden_image())
    if REGENERATE:
        EXPECTED.mkdir(exist_ok=True)
        GOLDEN_HFC.write_bytes(data)
        save_image(model.decompress(data), GOLDEN_PNG)
    if not GOLDEN_HFC.exists():
        pytest.fail(f"{GOLDEN_HFC} is missing; create it with HIFIC_REGEN_GOLDEN=1")
    committed = GOLDEN_HFC.read_bytes()
    header, _, _ = unpack(committed)
    assert (header.height, header.width) == (48, 80)
    assert data == committed, "the encoder no longer produces the committed bytes"
    decoded = to_uint8(model.decompress(committed))
    expected = np.asarray(Image.open(GOLDEN_PNG).convert("RGB"))
    assert np.array_equal(decoded, expected), "the committed bytes no longer decode to the committed pixels"
