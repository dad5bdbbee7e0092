"""The colour error (mean CIEDE2000 of 8x8-block means) against published and reference values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import color, data

from hific_lit.eval.metrics import block_means, colour_error, delta_e_2000, srgb_to_lab

# Sharma, Wu and Dalal 2005, Table 1: (L1, a1, b1, L2, a2, b2, CIEDE2000), all 34 test pairs.
SHARMA_TABLE_1 = [
    (50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425),
    (50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615),
    (50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412),
    (50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669),
    (50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461),
    (50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065),
    (50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492),
    (50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977),
    (50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030),
    (50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000),
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),
    (63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630),
    (61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731),
    (35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645),
    (22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373),
    (36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146),
    (90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441),
    (90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381),
    (6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377),
    (2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082),
]


def test_ciede2000_reproduces_sharma_table_1() -> None:
    table = np.array(SHARMA_TABLE_1)
    got = delta_e_2000(table[:, 0:3], table[:, 3:6])
    np.testing.assert_allclose(got, table[:, 6], atol=1e-4)  # the table gives 4 decimals
    np.testing.assert_allclose(delta_e_2000(table[:, 3:6], table[:, 0:3]), got, atol=1e-12)  # symmetric


def test_ciede2000_matches_skimage_on_random_colours() -> None:
    rng = np.random.default_rng(1)
    lab1 = np.stack([rng.uniform(0, 100, 500), rng.uniform(-100, 100, 500), rng.uniform(-100, 100, 500)], -1)
    lab2 = lab1 + rng.normal(0, 5, lab1.shape)
    np.testing.assert_allclose(delta_e_2000(lab1, lab2), color.deltaE_ciede2000(lab1, lab2), atol=1e-9)


def test_srgb_to_lab_matches_skimage_and_known_colours() -> None:
    rng = np.random.default_rng(2)
    rgb = rng.random((400, 3))
    np.testing.assert_allclose(srgb_to_lab(rgb), color.rgb2lab(rgb), atol=5e-4)  # skimage's CIE constants differ
    # sRGB white, black and pure red in CIELAB (D65): (100, 0, 0), (0, 0, 0), (53.24, 80.09, 67.20)
    np.testing.assert_allclose(srgb_to_lab(np.eye(3)[0]), [53.24, 80.09, 67.20], atol=0.01)
    np.testing.assert_allclose(srgb_to_lab(np.ones(3)), [100.0, 0.0, 0.0], atol=0.01)
    np.testing.assert_allclose(srgb_to_lab(np.zeros(3)), [0.0, 0.0, 0.0], atol=1e-9)


def test_colour_error_is_the_mean_over_block_means() -> None:
    photo = data.astronaut()[:100, :132]  # 12 x 16 full blocks; the 4 extra rows and columns are left out
    shifted = np.clip(photo.astype(np.int16) + np.array([12, -8, 5]), 0, 255).astype(np.uint8)
    blocks = [block_means(image) for image in (photo, shifted)]
    assert blocks[0].shape == (12, 16, 3)
    expected = color.deltaE_ciede2000(color.rgb2lab(blocks[0] / 255.0), color.rgb2lab(blocks[1] / 255.0)).mean()
    assert colour_error(photo, shifted) == pytest.approx(expected, rel=1e-4)
    assert colour_error(photo, photo) == 0.0
    # noise that averages out within blocks costs PSNR but hardly any colour error
    noise = np.tile(np.array([[-20, 20], [20, -20]], np.int16), (50, 66))[..., None]
    noisy = np.clip(photo.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    assert colour_error(photo, noisy) < 0.3 * colour_error(photo, shifted)


def test_colour_error_refuses_mismatched_or_tiny_images() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        colour_error(np.zeros((16, 16, 3), np.uint8), np.zeros((16, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="no full 8x8 block"):
        colour_error(np.zeros((7, 16, 3), np.uint8), np.zeros((7, 16, 3), np.uint8))


def _rd_terms(x: torch.Tensor, x_hat: torch.Tensor, **loss: float) -> dict[str, torch.Tensor]:
    """RDStage's loss terms for a reconstruction ``x_hat`` of ``x`` at 0.2 bpp, with ``LossConfig(**loss)``."""
    from hific_lit.models.hific.model import HiFiCOutput
    from hific_lit.training.base import RDStage
    from hific_lit.training.losses import LossConfig

    stage = RDStage.__new__(RDStage)
    stage.loss_config, stage.perceptual, stage._trainer = LossConfig(k_p=0.0, **loss), None, None
    out = HiFiCOutput(x_hat, None, None, torch.tensor(0.2), torch.tensor(0.2))
    return stage.rd_terms(x, out, iteration=None)


def test_colour_term_weighs_block_means() -> None:
    """loss.k_colour adds k_colour x MSE(8x8 means) to the codec's objective; 0 (the paper's) adds nothing."""
    from hific_lit.training.losses import block_mean_mse

    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    checker = torch.tensor([[0.1, -0.1], [-0.1, 0.1]]).repeat(8, 8)
    assert block_mean_mse(x, (x + checker).clamp(-1, 2)).item() == pytest.approx(0.0, abs=1e-6)  # averages out
    assert block_mean_mse(x, x + 0.1).item() == pytest.approx(25.5**2, rel=1e-5)
    without, with_term = _rd_terms(x, x + 0.1, k_colour=0.0), _rd_terms(x, x + 0.1, k_colour=0.01)
    assert "colour_mse" not in without
    assert with_term["loss"].item() == pytest.approx(without["loss"].item() + 0.01 * 25.5**2, rel=1e-5)


def test_green_magenta_term_weighs_only_that_axis() -> None:
    """loss.k_green_magenta adds k x MSE of the error's G - (R+B)/2; grey and red-blue errors add nothing."""
    from hific_lit.training.losses import LossConfig, green_magenta_mse

    x = torch.full((2, 3, 8, 8), 0.5)
    along = lambda r, g, b: x + torch.tensor([r, g, b]).view(1, 3, 1, 1) / 255.0  # noqa: E731
    assert green_magenta_mse(x, along(10, 10, 10)).item() == pytest.approx(0.0, abs=1e-6)  # grey
    assert green_magenta_mse(x, along(10, 0, -10)).item() == pytest.approx(0.0, abs=1e-6)  # red-blue
    assert green_magenta_mse(x, along(-5, 10, -5)).item() == pytest.approx(15.0**2, rel=1e-5)  # (3t/2)^2, t = 10
    green = along(-5, 10, -5)
    without, with_term = _rd_terms(x, green, k_green_magenta=0.0), _rd_terms(x, green, k_green_magenta=0.002)
    assert "green_magenta_mse" not in without
    assert with_term["loss"].item() == pytest.approx(without["loss"].item() + 0.002 * 15.0**2, rel=1e-5)
    with pytest.raises(ValueError, match="k_green_magenta must be >= 0"):
        LossConfig(k_green_magenta=-1.0)
