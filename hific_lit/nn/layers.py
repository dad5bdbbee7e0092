"""Building blocks shared by the HiFiC networks (plain torch, no Lightning)."""

from __future__ import annotations

import torch
from torch import nn


class ChannelNorm2d(nn.Module):
    """Normalise each pixel over its channels, with a learned per-channel affine map.

    HiFiC (Mentzer et al. 2020, Sec. 4 and App. A.3) replaces instance norm by this
    "ChannelNorm" so that the networks behave the same on crops and on whole images:
    ``y[c] = gamma[c] * (x[c] - mean_c(x)) / sqrt(var_c(x) + eps) + beta[c]``.
    """

    def __init__(self, channels: int, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, keepdim=True, unbiased=False)
        return self.gamma * (x - mean) * torch.rsqrt(var + self.eps) + self.beta


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


def reflect_conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """A convolution whose input is reflection-padded, so that stride-1 convs keep the size."""
    pad = kernel // 2
    return nn.Sequential(nn.ReflectionPad2d(pad), nn.Conv2d(in_ch, out_ch, kernel, stride=stride))


class ResidualBlock(nn.Module):
    """conv3x3 - norm - ReLU - conv3x3 - norm, plus the identity (HiFiC generator, App. A.1)."""

    def __init__(self, channels: int, norm: str = "channel") -> None:
        super().__init__()
        self.body = nn.Sequential(
            reflect_conv(channels, channels, 3),
            make_norm(norm, channels),
            nn.ReLU(inplace=True),
            reflect_conv(channels, channels, 3),
            make_norm(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)
