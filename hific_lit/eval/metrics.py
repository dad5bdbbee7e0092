"""Per-image distortion metrics between an original and its reconstruction, both as 8-bit RGB.

PSNR is computed on the uint8 images (as published numbers are), MS-SSIM with torchmetrics
(Wang et al. 2003, five scales, data range 255) and LPIPS (Zhang et al. 2018) through
:mod:`hific_lit.training.perceptual`, which needs the pretrained AlexNet weights.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

# MS-SSIM's fifth scale needs each side > (kernel 11 - 1) * 2^4 pixels (torchmetrics' check).
MS_SSIM_MIN_SIDE = 161


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
