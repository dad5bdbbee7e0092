"""Golden .hfc files: a fixed image and a seeded tiny model give the committed bytes, which decode to the
committed pixels, for format version 2 (what compress writes) and version 1 (still read).

Regenerate the version-2 pair (after a deliberate format change) with HIFIC_REGEN_GOLDEN=1. The version-1
pair is frozen: it was written by the version-1 encoder and must keep decoding."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hific_lit import HiFiC
from hific_lit.io.container import unpack
from hific_lit.io.images import save_image, to_uint8
from hific_lit.models.hific import format_v1
from hific_lit.nn.padding import pad_to_multiple

EXPECTED = Path(__file__).parent / "expected"
GOLDEN_V1 = EXPECTED / "golden_tiny.hfc"
GOLDEN_V1_PNG = EXPECTED / "golden_tiny_decoded.png"
GOLDEN_V2 = EXPECTED / "golden_tiny_v2.hfc"
GOLDEN_V2_PNG = EXPECTED / "golden_tiny_v2_decoded.png"
REGENERATE = os.environ.get("HIFIC_REGEN_GOLDEN") == "1"


@pytest.fixture(scope="module")
def model(seeded_tiny: Callable[[int], HiFiC]) -> HiFiC:
    return seeded_tiny(2020)


def _golden_image() -> torch.Tensor:
    """A 48x80 crop of scikit-image's astronaut, downsampled by 4."""
    from skimage import data

    pixels = data.astronaut()[40:232:4, 100:420:4]
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).float().div(255.0)


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_golden_file_v2(model: HiFiC) -> None:
    data = model.compress(_golden_image())
    if REGENERATE:
        GOLDEN_V2.write_bytes(data)
        save_image(model.decompress(data), GOLDEN_V2_PNG)
    if not GOLDEN_V2.exists():
        pytest.fail(f"{GOLDEN_V2} is missing; create it with HIFIC_REGEN_GOLDEN=1")
    committed = GOLDEN_V2.read_bytes()
    header = unpack(committed).header
    assert (header.version, header.height, header.width) == (2, 48, 80)
    assert data == committed, "the encoder no longer produces the committed bytes"
    decoded = to_uint8(model.decompress(committed))
    assert np.array_equal(decoded, _pixels(GOLDEN_V2_PNG)), (
        "the committed bytes no longer decode to the committed pixels"
    )


def test_golden_file_v1_still_decodes(model: HiFiC) -> None:
    committed = GOLDEN_V1.read_bytes()
    header = unpack(committed).header
    assert (header.version, header.height, header.width) == (1, 48, 80)
    assert np.array_equal(to_uint8(model.decompress(committed)), _pixels(GOLDEN_V1_PNG))
    with torch.no_grad():
        y = model.analysis(pad_to_multiple(_golden_image()[None]))
    data, _ = format_v1.encode_latent(model, y, 48, 80)
    assert data == committed, "the version-1 encoder (kept for comparisons) no longer writes the committed bytes"
