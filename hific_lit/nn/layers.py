"""Building blocks shared by the HiFiC networks (plain torch, no Lightning)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

PADDINGS = ("zeros", "reflect")


class ChannelNorm2d(nn.Module):
    """Normalise each pixel over its channels, with a learned per-channel affine map.

    HiFiC (Mentzer et al. 2020, Sec. 4 and App. A.3) replaces instance norm by this
    "ChannelNorm" so that the networks behave the same on crops and on whole images:
    ``y[c] = gamma[c] * (x[c] - mean_c(x)) / sqrt(var_c(x) + eps) + beta[c]``, where, as in the
    authors' ``archs.py`` (``LayerNorm._get_moments``), the variance divides by ``C - 1`` and
    ``eps = 1e-3``.
    """

    def __init__(self, channels: int, eps: float = 1e-3) -> None:
        super().__init__()
        if channels < 2:
            raise ValueError(f"ChannelNorm needs at least 2 channels (its variance divides by C - 1), got {channels}")
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            return self._channels_last(x)
        mean = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, keepdim=True, unbiased=True)
        return self.gamma * (x - mean) * torch.rsqrt(var + self.eps) + self.beta

    def _channels_last(self, x: torch.Tensor) -> torch.Tensor:
        """The same map on a channels_last tensor, as one fused ``layer_norm`` over each pixel's channels
        (no copies; statistics in float32 for bfloat16 inputs): with ``var_{C-1} = var_C * C / (C - 1)``,
        ``(x - mean) / sqrt(var_{C-1} + eps) = sqrt((C - 1) / C) (x - mean) / sqrt(var_C + eps (C - 1) / C)``."""
        channels = x.shape[1]
        shrink = (channels - 1) / channels
        weight = (self.gamma.reshape(-1) * math.sqrt(shrink)).to(x.dtype)
        pixels = x.permute(0, 2, 3, 1)
        out = F.layer_norm(pixels, (channels,), weight, self.beta.reshape(-1).to(x.dtype), self.eps * shrink)
        return out.permute(0, 3, 1, 2)


def make_norm(kind: str, channels: int) -> nn.Module:
    """Return the normalisation layer named by ``kind``: ``channel``, ``instance``, ``batch`` or ``none``."""
    if kind == "channel":
        return ChannelNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; expected one of: channel, instance, batch, none")


def same_conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: str = "zeros") -> nn.Conv2d:
    """A ``kernel x kernel`` convolution padded by ``kernel // 2`` on every side.

    ``padding="zeros"`` is the authors' Keras ``padding="same"``; ``"reflect"`` mirrors the input
    instead (the popular PyTorch port's choice). Stride 1 keeps the size, stride 2 halves even sizes.
    """
    if padding not in PADDINGS:
        raise ValueError(f"unknown padding {padding!r}; expected one of: {', '.join(PADDINGS)}")
    return nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, padding_mode=padding)


class ResidualBlock(nn.Module):
    """conv3x3 - norm - ReLU - conv3x3 - norm, plus the identity (HiFiC generator, App. A.1)."""

    def __init__(self, channels: int, norm: str = "channel", padding: str = "zeros") -> None:
        super().__init__()
        self.body = nn.Sequential(
            same_conv(channels, channels, 3, padding=padding),
            make_norm(norm, channels),
            nn.ReLU(inplace=True),
            same_conv(channels, channels, 3, padding=padding),
            make_norm(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)
