"""Classical baselines at a matched bpp: closest at or above the target, decoded from the file's bytes."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from hific_lit.eval.baselines import available_baselines, decode, encode, match_bpp
from hific_lit.io.files import bits_per_pixel


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return data.astronaut()[64:256, 128:384].copy()


def test_jpeg_and_webp_are_always_available() -> None:
    assert {"jpeg", "webp"} <= set(available_baselines())


@pytest.mark.parametrize("codec", available_baselines())
@pytest.mark.parametrize("target", [0.25, 0.8])
def test_matched_bpp_is_the_closest_at_or_above_the_target(photo: np.ndarray, codec: str, target: float) -> None:
    match = match_bpp(photo, codec, target)
    height, width = photo.shape[:2]
    assert match.matched
    assert match.bpp == bits_per_pixel(len(match.data), height, width)
    assert target <= match.bpp <= target * 1.3
    lower = bits_per_pixel(len(encode(photo, codec, match.quality - 1)), height, width)
    assert lower < target or lower >= match.bpp  # the next lower quality is not a closer choice
    decoded = decode(match.data)
    assert decoded.shape == photo.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - photo).mean() < 40


def test_unreachable_target_uses_the_highest_quality_and_says_so(photo: np.ndarray) -> None:
    match = match_bpp(photo, "jpeg", 100.0)
    assert not match.matched and match.quality == 100 and match.bpp < 100.0


def test_unknown_codec_is_refused(photo: np.ndarray) -> None:
    with pytest.raises(ValueError, match="available"):
        encode(photo, "jpeg2000", 50)
