"""Per-image distortion metrics between an original and its reconstruction, both as 8-bit RGB.

PSNR is computed on the uint8 images (as published numbers are), MS-SSIM with torchmetrics
(Wang et al. 2003, five scales, data range 255) and LPIPS (Zhang et al. 2018) through
:mod:`hific_lit.training.perceptual`, which needs the pretrained AlexNet weights.

Colour fidelity (:func:`colour_error`): PSNR hides colour shifts that the eye sees at once (a forest whose
greens come back grey-brown loses a few dB, as much as a little blur). The colour error compares what survives
blurring, the local mean colour: each image is cut into 8x8 blocks (partial blocks at the right and bottom edges
are left out), each block's mean 8-bit sRGB value is converted to CIELAB (sRGB primaries, D65 white, the
IEC 61966-2-1 transfer curve; CIE 15:2004), and the CIEDE2000 difference (CIE 142-2001) of each pair of blocks is
averaged. About 1 is the smallest difference one sees. The CIEDE2000 formula follows Sharma, Wu and Dalal, "The
CIEDE2000 color-difference formula: implementation notes, supplementary test data, and mathematical
observations", Color Res. Appl. 30(1), 2005, eq. 1-22, with k_L = k_C = k_H = 1; their Table 1 pins it in
``tests/test_colour_metric.py``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

# MS-SSIM's fifth scale needs each side > (kernel 11 - 1) * 2^4 pixels (torchmetrics' check).
MS_SSIM_MIN_SIDE = 161

BLOCK = 8
D65_WHITE = np.array([0.95047, 1.0, 1.08883])
"""The D65 white point (X, Y, Z), Y = 1 (CIE 15:2004; the values skimage.color and colour-science use)."""
SRGB_TO_XYZ = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
"""Linear sRGB to XYZ (D65), IEC 61966-2-1 (the matrix skimage.color.rgb2xyz uses)."""


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB values in [0, 1], shape (..., 3), to CIELAB (L*, a*, b*) under D65."""
    rgb = np.asarray(rgb, dtype=np.float64)
    linear = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = linear @ SRGB_TO_XYZ.T / D65_WHITE
    eps = (6.0 / 29.0) ** 3
    f = np.where(xyz > eps, np.cbrt(xyz), xyz / (3 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])], -1)


def delta_e_2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference of CIELAB arrays of shape (..., 3) (Sharma et al. 2005, eq. 1-22)."""
    l1, a1, b1 = np.moveaxis(np.asarray(lab1, dtype=np.float64), -1, 0)
    l2, a2, b2 = np.moveaxis(np.asarray(lab2, dtype=np.float64), -1, 0)
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2.0
    g = 0.5 * (1.0 - np.sqrt(c_bar**7 / (c_bar**7 + 25.0**7)))
    a1p, a2p = (1.0 + g) * a1, (1.0 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360.0
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360.0
    chroma_zero = (c1p * c2p) == 0
    dh = h2p - h1p
    dh = np.where(dh > 180.0, dh - 360.0, np.where(dh < -180.0, dh + 360.0, dh))
    dh = np.where(chroma_zero, 0.0, dh)
    d_l, d_c = l2 - l1, c2p - c1p
    d_h = 2.0 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2.0))
    l_bar, cp_bar = (l1 + l2) / 2.0, (c1p + c2p) / 2.0
    h_sum = h1p + h2p
    h_bar = np.where(
        np.abs(h1p - h2p) <= 180.0, h_sum / 2.0, np.where(h_sum < 360.0, (h_sum + 360.0) / 2.0, (h_sum - 360.0) / 2.0)
    )
    h_bar = np.where(chroma_zero, h_sum, h_bar)
    t = (
        1.0
        - 0.17 * np.cos(np.radians(h_bar - 30.0))
        + 0.24 * np.cos(np.radians(2.0 * h_bar))
        + 0.32 * np.cos(np.radians(3.0 * h_bar + 6.0))
        - 0.20 * np.cos(np.radians(4.0 * h_bar - 63.0))
    )
    d_theta = 30.0 * np.exp(-(((h_bar - 275.0) / 25.0) ** 2))
    r_c = 2.0 * np.sqrt(cp_bar**7 / (cp_bar**7 + 25.0**7))
    s_l = 1.0 + 0.015 * (l_bar - 50.0) ** 2 / np.sqrt(20.0 + (l_bar - 50.0) ** 2)
    s_c = 1.0 + 0.045 * cp_bar
    s_h = 1.0 + 0.015 * cp_bar * t
    r_t = -np.sin(np.radians(2.0 * d_theta)) * r_c
    terms = (d_l / s_l, d_c / s_c, d_h / s_h)
    return np.sqrt(terms[0] ** 2 + terms[1] ** 2 + terms[2] ** 2 + r_t * terms[1] * terms[2])


def block_means(image: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """Mean of each full ``block x block`` block of an (H, W, 3) image, as an (H // block, W // block, 3) array."""
    height, width = image.shape[0] // block * block, image.shape[1] // block * block
    if height == 0 or width == 0:
        raise ValueError(f"an image of {image.shape[1]}x{image.shape[0]} has no full {block}x{block} block")
    cropped = np.asarray(image[:height, :width], dtype=np.float64)
    return cropped.reshape(height // block, block, width // block, block, 3).mean(axis=(1, 3))


def colour_error(original: np.ndarray, reconstruction: np.ndarray, block: int = BLOCK) -> float:
    """Mean CIEDE2000 difference between the 8x8-block mean colours of two (H, W, 3) uint8 sRGB images."""
    if original.shape != reconstruction.shape:
        raise ValueError(f"images differ in shape: {original.shape} vs {reconstruction.shape}")
    lab = [srgb_to_lab(block_means(image, block) / 255.0) for image in (original, reconstruction)]
    return float(delta_e_2000(*lab).mean())


def uint8_to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)[None].float().div_(255.0)


def psnr_uint8(original: np.ndarray, reconstruction: np.ndarray) -> float:
    """PSNR in dB between two uint8 images of the same shape: 10 log10(255² / MSE); inf when equal."""
    if original.shape != reconstruction.shape:
        raise ValueError(f"images differ in shape: {original.shape} vs {reconstruction.shape}")
    mse = np.mean((original.astype(np.float64) - reconstruction.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def ms_ssim(original: np.ndarray, reconstruction: np.ndarray, device: torch.device | str = "cpu") -> float | None:
    """MS-SSIM of two uint8 images; ``None`` when a side is below :data:`MS_SSIM_MIN_SIDE` pixels.

    Computed in float32 on [0, 1] (within 1e-5 of float64 on photos, and 2-3x faster on CPUs).
    """
    if min(original.shape[:2]) < MS_SSIM_MIN_SIDE:
        return None
    a, b = uint8_to_tensor(original).to(device), uint8_to_tensor(reconstruction).to(device)
    return float(multiscale_structural_similarity_index_measure(b, a, data_range=1.0))


class LpipsScorer:
    """LPIPS distance of uint8 images.

    ``net`` maps an original and a reconstruction, (B, 3, H, W) in [0, 1], to their mean LPIPS, as
    :class:`hific_lit.training.perceptual.LPIPSLoss` does.
    """

    def __init__(self, net: torch.nn.Module, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()

    @torch.no_grad()
    def __call__(self, original: np.ndarray, reconstruction: np.ndarray) -> float:
        a = uint8_to_tensor(original).to(self.device)
        b = uint8_to_tensor(reconstruction).to(self.device)
        return float(self.net(a, b))
