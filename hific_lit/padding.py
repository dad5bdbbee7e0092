"""Padding images to a multiple of the model's total stride, and cropping back."""

from __future__ import annotations

import torch
import torch.nn.functional as F

PAD_MULTIPLE = 64
"""y lives at /16 and z at /64 of the image, so images are padded to a multiple of 64."""


def padded_size(size: int, multiple: int = PAD_MULTIPLE) -> int:
    """Smallest multiple of ``multiple`` that is >= ``size`` (and >= ``multiple``)."""
    return max(multiple, -(-size // multiple) * multiple)


def pad_to_multiple(x: torch.Tensor, multiple: int = PAD_MULTIPLE) -> torch.Tensor:
    """Pad (B, C, H, W) at the bottom and right to a multiple of ``multiple``.

    Reflection padding keeps the statistics of the border; torch only reflects by less than the
    current size, so large pads are done in steps, each reflecting the image padded so far.
    A side of length 1 cannot be reflected and is replicated instead.
    """
    h, w = x.shape[-2:]
    need_h, need_w = padded_size(h, multiple) - h, padded_size(w, multiple) - w
    while need_h > 0 or need_w > 0:
        cur_h, cur_w = x.shape[-2:]
        step_h = need_h if cur_h == 1 else min(need_h, cur_h - 1)
        step_w = need_w if cur_w == 1 else min(need_w, cur_w - 1)
        mode = "replicate" if (cur_h == 1 and step_h) or (cur_w == 1 and step_w) else "reflect"
        x = F.pad(x, (0, step_w, 0, step_h), mode=mode)
        need_h, need_w = need_h - step_h, need_w - step_w
    return x


def crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Undo :func:`pad_to_multiple`: keep the top-left ``height`` x ``width``."""
    return x[..., :height, :width]
