"""The checks of the images a model codes: RGB, (3, H, W) or (B, 3, H, W), float in [0, 1] or uint8."""

from __future__ import annotations

import torch


def as_image_batch(x: torch.Tensor) -> torch.Tensor:
    """Check that ``x`` is one or more RGB images (3, H, W) / (B, 3, H, W), float in [0, 1] or uint8; return it 4-D."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected an image tensor, got {type(x).__name__}")
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or x.shape[1] != 3 or x.shape[-1] < 1 or x.shape[-2] < 1:
        raise ValueError(f"expected an RGB image of shape (3, H, W) or (B, 3, H, W), got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x
    if not x.is_floating_point():
        raise ValueError(f"expected a float image in [0, 1] or a uint8 image, got dtype {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("the image contains NaN or infinite values")
    return x


def one_image(x: torch.Tensor) -> torch.Tensor:
    """:func:`as_image_batch` of a single image: (1, 3, H, W)."""
    x = as_image_batch(x)
    if x.shape[0] != 1:
        raise ValueError(f"compress codes one image; got a batch of {x.shape[0]} (use compress_batch)")
    return x
