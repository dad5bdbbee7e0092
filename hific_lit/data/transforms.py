"""The paper's training crops and the deterministic validation crops, on (3, H, W) float tensors.

HiFiC (Mentzer et al. 2020, Sec. 4.1) trains on 256x256 crops of OpenImages after a random downscale
by a factor in [0.75, 0.95], with random horizontal flips. Two rules make this total:

* the downscale never takes the shorter side below the crop (the factor is raised to ``crop / short_side``);
* an image whose shorter side is already below the crop is **upscaled** (bicubic) until it equals the
  crop, so every sample yields a full crop without padding artefacts.

Downscale-then-crop is computed as crop-then-resize: a square of side ``crop / factor`` is cut from the
original and resized to ``crop`` with antialiasing, which is the same picture at a fraction of the cost.
Given a PIL image, only that square is converted to float (by :func:`pil_to_tensor`, which also applies
EXIF orientation: a square window of the stored image is a square window of the oriented one).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from PIL import Image

from hific_lit.image_io import pil_to_tensor

PAPER_SCALE_RANGE = (0.75, 0.95)


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _randint(high: int, generator: torch.Generator | None) -> int:
    """A uniform integer in [0, high] (inclusive)."""
    return int(torch.randint(0, high + 1, (), generator=generator))


def as_tensor(image: Image.Image | torch.Tensor) -> torch.Tensor:
    """A PIL image as a (3, H, W) float tensor in [0, 1]; a tensor passes through."""
    return pil_to_tensor(image) if isinstance(image, Image.Image) else image


def _size(image: Image.Image | torch.Tensor) -> tuple[int, int]:
    """(height, width) of a PIL image or a (3, H, W) tensor."""
    return (image.height, image.width) if isinstance(image, Image.Image) else tuple(image.shape[-2:])


def _window(image: Image.Image | torch.Tensor, top: int, left: int, side: int) -> torch.Tensor:
    if isinstance(image, Image.Image):
        return pil_to_tensor(image.crop((left, top, left + side, top + side)))
    return image[:, top : top + side, left : left + side]


def _resize_square(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    out = F.interpolate(x[None], size=(size, size), mode="bicubic", align_corners=False, antialias=True)[0]
    return out.clamp_(0.0, 1.0)


class RandomScaleCrop:
    """Random downscale (never below the crop), random ``crop x crop`` window, random horizontal flip.

    Args:
        crop_size: side of the square output (the paper uses 256).
        scale_range: the downscale factor is drawn uniformly from this range (paper: 0.75 to 0.95).
        flip: flip horizontally with probability 1/2.
    """

    def __init__(
        self, crop_size: int = 256, scale_range: tuple[float, float] = PAPER_SCALE_RANGE, flip: bool = True
    ) -> None:
        low, high = scale_range
        if not 0 < low <= high:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {scale_range}")
        if crop_size < 1:
            raise ValueError(f"crop_size must be positive, got {crop_size}")
        self.crop_size = crop_size
        self.scale_range = (float(low), float(high))
        self.flip = flip

    def __call__(self, image: Image.Image | torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """PIL image or (3, H, W) float in [0, 1] -> (3, crop, crop) float in [0, 1]."""
        height, width = _size(image)
        short = min(height, width)
        factor = max(_uniform(*self.scale_range, generator), self.crop_size / short)
        window = min(short, max(1, round(self.crop_size / factor)))
        top = _randint(height - window, generator)
        left = _randint(width - window, generator)
        out = _resize_square(_window(image, top, left, window), self.crop_size)
        if self.flip and float(torch.rand((), generator=generator)) < 0.5:
            out = out.flip(-1)
        return out.contiguous()


class CenterCrop:
    """Deterministic validation crop: upscale if the shorter side is below the crop, then cut the centre."""

    def __init__(self, crop_size: int = 256) -> None:
        self.crop_size = crop_size

    def __call__(self, image: Image.Image | torch.Tensor) -> torch.Tensor:
        """PIL image or (3, H, W) float in [0, 1] -> (3, crop, crop) float in [0, 1]."""
        x = upscale_to_cover(as_tensor(image), self.crop_size)
        height, width = x.shape[-2:]
        top, left = (height - self.crop_size) // 2, (width - self.crop_size) // 2
        return x[:, top : top + self.crop_size, left : left + self.crop_size].contiguous()


def upscale_to_cover(x: torch.Tensor, size: int) -> torch.Tensor:
    """Upscale (bicubic, aspect kept) so that the shorter side is at least ``size``; larger images pass through."""
    height, width = x.shape[-2:]
    short = min(height, width)
    if short >= size:
        return x
    new = (max(size, round(height * size / short)), max(size, round(width * size / short)))
    return F.interpolate(x[None], size=new, mode="bicubic", align_corners=False)[0].clamp_(0.0, 1.0)


def grid_tiles(x: torch.Tensor, size: int, limit: int | None = None) -> list[torch.Tensor]:
    """Non-overlapping ``size x size`` tiles of a (3, H, W) image in raster order (after upscale_to_cover)."""
    x = upscale_to_cover(x, size)
    height, width = x.shape[-2:]
    tiles = [
        x[:, top : top + size, left : left + size].contiguous()
        for top in range(0, height - size + 1, size)
        for left in range(0, width - size + 1, size)
    ]
    return tiles if limit is None else tiles[:limit]
