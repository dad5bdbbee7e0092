"""Padding images to a multiple of the model's total stride, and cropping back."""

from __future__ import annotations

import torch

PAD_MULTIPLE = 64
"""y lives at /16 and z at /64 of the image, so images are padded to a multiple of 64."""


def padded_size(size: int, multiple: int = PAD_MULTIPLE) -> int:
    """Smallest multiple of ``multiple`` that is >= ``size`` (and >= ``multiple``)."""
    return max(multiple, -(-size // multiple) * multiple)


def padded_indices(size: int, multiple: int = PAD_MULTIPLE) -> torch.Tensor:
    """For each position along an axis padded to a multiple of ``multiple``, the original position it shows.

    Reflection at the end keeps the statistics of the border; a reflection reaches back less than
    the current length, so a long pad is made in steps, each reflecting the axis padded so far
    (``torch.nn.functional.pad``'s ``reflect`` applied repeatedly). A length-1 axis is repeated.
    """
    index = torch.arange(size)
    need = padded_size(size, multiple) - size
    while need > 0:
        length = index.numel()
        step = need if length == 1 else min(need, length - 1)
        tail = index[:1].expand(step) if length == 1 else index.flip(0)[1 : 1 + step]
        index = torch.cat([index, tail])
        need -= step
    return index


def pad_to_multiple(x: torch.Tensor, multiple: int = PAD_MULTIPLE) -> torch.Tensor:
    """Pad (B, C, H, W) at the bottom and right to a multiple of ``multiple`` (see :func:`padded_indices`).

    Returns ``x`` itself when no padding is needed. Large images need not be padded whole: tiled
    analysis gathers each tile's rows and columns through the same indices.
    """
    height, width = x.shape[-2:]
    if padded_size(height, multiple) == height and padded_size(width, multiple) == width:
        return x
    rows, cols = padded_indices(height, multiple), padded_indices(width, multiple)
    return x.index_select(-2, rows.to(x.device)).index_select(-1, cols.to(x.device))


def crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Undo :func:`pad_to_multiple`: keep the top-left ``height`` x ``width``."""
    return x[..., :height, :width]
