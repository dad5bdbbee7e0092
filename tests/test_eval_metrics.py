"""Per-image metrics: PSNR on uint8, MS-SSIM, LPIPS through hific_lit.training.perceptual."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage import data
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

from hific_lit.eval.metrics import MS_SSIM_MIN_SIDE, LpipsScorer, ms_ssim, psnr_uint8, uint8_to_tensor
from hific_lit.training.perceptual import LPIPSLoss


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return data.astronaut()[:192, :256].copy()


def _noisy(image: np.ndarray, sigma: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).round().astype(np.uint8)


def test_psnr_matches_its_definition(photo: np.ndarray) -> None:
    shifted = photo.astype(np.int16) + 2
    shifted[shifted > 255] = 253  # every pixel off by exactly 2 -> MSE 4
    assert psnr_uint8(photo, shifted.astype(np.uint8)) == pytest.approx(10 * math.log10(255**2 / 4))
    assert psnr_uint8(photo, photo) == math.inf
    with pytest.raises(ValueError, match="shape"):
        psnr_uint8(photo, photo[:10])


def test_ms_ssim_orders_distortions_and_skips_small_images(photo: np.ndarray) -> None:
    assert ms_ssim(photo, photo) == pytest.approx(1.0)
    mild, strong = ms_ssim(photo, _noisy(photo, 5)), ms_ssim(photo, _noisy(photo, 40))
    assert 1.0 > mild > strong > 0.0
    small = photo[: MS_SSIM_MIN_SIDE - 1]
    assert ms_ssim(small, small) is None


def test_ms_ssim_in_float32_agrees_with_float64(photo: np.ndarray) -> None:
    noisy = _noisy(photo, 10)
    reference = multiscale_structural_similarity_index_measure(
        uint8_to_tensor(noisy).double() * 255, uint8_to_tensor(photo).double() * 255, data_range=255.0
    )
    assert ms_ssim(photo, noisy) == pytest.approx(float(reference), abs=1e-5)


def test_lpips_scorer_is_zero_for_identical_images_and_grows_with_noise(photo: np.ndarray) -> None:
    scorer = LpipsScorer(LPIPSLoss(pretrained_backbone=False))
    assert scorer(photo, photo) == pytest.approx(0.0, abs=1e-6)
    assert scorer(photo, _noisy(photo, 40)) > scorer(photo, _noisy(photo, 5)) > 0.0
