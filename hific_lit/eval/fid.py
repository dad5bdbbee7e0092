"""FID and KID over 256² patches, the protocol of Mentzer et al. 2020 (Sec. 4.2, "FID/256").

Each image is split into non-overlapping 256×256 patches; when both of its sides are at least
384 pixels a second grid, shifted by 128 pixels in x and y, adds more. Features come from a
feature extractor (Inception-v3 as torch-fidelity ports it, or any module mapping uint8 images to
(B, D) features); FID (Heusel et al. 2017) and KID (Bińkowski et al. 2018) are torchmetrics'.
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from hific_lit.errors import WeightsUnavailableError

PATCH = 256
SHIFT = 128
INCEPTION_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)


def fid_patches(image: np.ndarray, size: int = PATCH, shift: int = SHIFT) -> torch.Tensor:
    """(H, W, 3) uint8 -> (N, 3, size, size) uint8 patches: the aligned grid, plus the shifted grid
    when both sides are >= size + shift. Images smaller than ``size`` give no patch."""
    chw = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)
    height, width = chw.shape[-2:]
    offsets = [0] + ([shift] if min(height, width) >= size + shift else [])
    patches = [
        chw[:, top : top + size, left : left + size]
        for offset in offsets
        for top in range(offset, height - size + 1, size)
        for left in range(offset, width - size + 1, size)
    ]
    return torch.stack(patches) if patches else torch.empty(0, 3, size, size, dtype=torch.uint8)


def inception_cache_path() -> Path:
    """Where torch.hub caches torch-fidelity's Inception weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(INCEPTION_URL)


def load_inception(weights: str | os.PathLike | None = None, download: bool = True) -> nn.Module:
    """torch-fidelity's Inception-v3 (2048-d pool features), as torchmetrics' FID uses by default.

    ``weights`` is a local copy of the weights file; without it the torch.hub cache is used and,
    when ``download`` is true, filled from the internet. Raises :class:`WeightsUnavailableError`
    saying where to put the file when none of that works.
    """
    from torchmetrics.image.fid import NoTrainInceptionV3

    path = Path(weights) if weights else inception_cache_path()
    hint = f"download {INCEPTION_URL} and put it at {inception_cache_path()} (or pass its path)"
    if weights and not path.is_file():
        raise WeightsUnavailableError(f"Inception weights {path} do not exist; {hint}")
    if not path.is_file() and not download:
        raise WeightsUnavailableError(f"Inception weights are not cached at {path} and downloading is off; {hint}")
    kwargs = {"feature_extractor_weights_path": str(path)} if path.is_file() else {}
    try:
        return NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"], **kwargs)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise WeightsUnavailableError(f"could not load the Inception weights for FID/KID ({exc}); {hint}") from None


class _Precomputed(nn.Module):
    """Passes features through, so that torchmetrics' FID and KID share one feature pass."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


class PatchEmbedder:
    """Features of an image's FID patches: ``features`` maps (B, 3, 256, 256) uint8 to (B, D)."""

    def __init__(self, features: nn.Module, device: torch.device | str = "cpu", batch_size: int = 32) -> None:
        self.device = torch.device(device)
        self.features = features.to(self.device).eval()
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 -> (N, D) float32 features on the CPU, one row per patch (N may be 0)."""
        patches = fid_patches(image)
        if not len(patches):
            return torch.empty(0, 0)
        chunks = [self.features(batch.to(self.device)) for batch in patches.split(self.batch_size)]
        return torch.cat([c.reshape(len(c), -1).float().cpu() for c in chunks])


def fid_kid(real: torch.Tensor, fake: torch.Tensor, kid_subset_size: int = 1000) -> dict[str, float | int]:
    """FID and KID between two (N, D) feature sets of paired patches: ``{"fid", "kid_mean", "kid_std", "patches"}``.

    KID's subsets hold ``min(kid_subset_size, N)`` patches. Needs at least two patches.
    """
    n = len(real)
    if n < 2 or len(fake) != n:
        raise ValueError(f"FID/KID need at least 2 paired patches of {PATCH}² (got {n} and {len(fake)})")
    passthrough = _Precomputed(real.shape[1])
    fid = FrechetInceptionDistance(feature=passthrough)
    with warnings.catch_warnings():  # KID warns that it keeps every feature: so does the caller, by design
        warnings.simplefilter("ignore", UserWarning)
        kid = KernelInceptionDistance(feature=passthrough, subset_size=min(kid_subset_size, n))
    for metric in (fid, kid):
        metric.update(real.double(), real=True)
        metric.update(fake.double(), real=False)
    kid_mean, kid_std = kid.compute()
    return {"fid": float(fid.compute()), "kid_mean": float(kid_mean), "kid_std": float(kid_std), "patches": n}
