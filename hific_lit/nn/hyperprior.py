"""Hyper-analysis h_a and hyper-synthesis h_s of the mean-scale hyperprior.

Ballé et al. 2018 ("Variational image compression with a scale hyperprior") and
Minnen et al. 2018 (mean & scale); sizes as HiFiC (Mentzer et al. 2020, App. A.1):
320 filters, h_a = conv3x3 s1 - conv5x5 s2 - conv5x5 s2 with ReLU between, h_s mirrors it,
with separate networks for the mean and the scale. Zero padding (the authors' ``same_zeros``),
so that the 1x1 hyperlatents of tiny images work; kernels initialised as ``tfc.SignalConv2D``'s
(:func:`hific_lit.nn.init.variance_scaling_`).
"""

from __future__ import annotations

import torch
from torch import nn

from hific_lit.nn.init import variance_scaling_
from hific_lit.nn.layers import PADDINGS
from hific_lit.nn.port_layers import ReflectConv2d


class HyperAnalysis(nn.Module):
    """h_a: latent y (B, C, h, w) -> hyperlatent z (B, N, h/4, w/4).

    ``padding="reflect"`` pads the two 5x5 stride-2 convs by reflection (the JT port's h_a;
    :class:`~hific_lit.nn.port_layers.ReflectConv2d`); the first conv pads zeros either way.
    """

    def __init__(self, latent_channels: int = 220, filters: int = 320, padding: str = "zeros") -> None:
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"unknown padding {padding!r}; expected one of: {', '.join(PADDINGS)}")

        def down() -> nn.Conv2d:
            if padding == "reflect":
                return ReflectConv2d(filters, filters, 5, stride=2)
            return nn.Conv2d(filters, filters, 5, stride=2, padding=2)

        self.net = nn.Sequential(
            nn.Conv2d(latent_channels, filters, 3, stride=1, padding=1),
            nn.ReLU(True),
            down(),
            nn.ReLU(True),
            down(),
        )
        variance_scaling_(self)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y)


class HyperSynthesis(nn.Module):
    """h_s (one of two, mean or scale): hyperlatent z_hat (B, N, h/4, w/4) -> (B, C, h, w)."""

    def __init__(self, latent_channels: int = 220, filters: int = 320) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.ConvTranspose2d(filters, filters, 5, stride=2, padding=2, output_padding=1),
            nn.ReLU(True),
            nn.ConvTranspose2d(filters, filters, 5, stride=2, padding=2, output_padding=1),
            nn.ReLU(True),
            nn.Conv2d(filters, latent_channels, 3, stride=1, padding=1),
        )
        variance_scaling_(self)

    def forward(self, z_hat: torch.Tensor) -> torch.Tensor:
        return self.net(z_hat)
