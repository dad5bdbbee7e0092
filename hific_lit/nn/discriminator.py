"""Latent-conditioned PatchGAN discriminator of HiFiC (Mentzer et al. 2020, Fig. 2, App. A.1)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from hific_lit.nn.init import normal_


def _sn_conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int = 0) -> nn.Module:
    """A spectrally normalised convolution, its kernel drawn as compare_gan's (normal, std 0.02) first."""
    return spectral_norm(normal_(nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding)))


class Discriminator(nn.Module):
    """D(x | y_hat): image (B, 3, H, W) and latent (B, C, H/s, W/s) -> logits (B, 1, H/8, W/8).

    As the authors' ``_PatchDiscriminatorCompareGANImpl`` (``archs.py``): the latent goes through
    ``conv3x3`` to ``context_channels`` and LeakyReLU(0.2) and is upsampled by nearest neighbour to
    the image size, concatenated with the image, then ``conv4x4`` layers of ``widths`` (stride 2 for
    all but the last) with LeakyReLU(0.2), and a ``conv4x4`` to one logit per patch. Every
    convolution is spectrally normalised; the stride-1 4x4 convolutions pad 1 before and 2 after
    (TensorFlow's ``SAME`` for an even kernel).
    """

    def __init__(
        self,
        latent_channels: int = 220,
        widths: Sequence[int] = (64, 128, 256, 512),
        context_channels: int = 12,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.context = _sn_conv(latent_channels, context_channels, 3, padding=1)
        layers: list[nn.Module] = []
        ch = in_channels + context_channels
        for i, w in enumerate(widths):
            if i < len(widths) - 1:
                layers.append(_sn_conv(ch, w, 4, stride=2, padding=1))
            else:
                layers += [nn.ZeroPad2d((1, 2, 1, 2)), _sn_conv(ch, w, 4)]
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            ch = w
        layers += [nn.ZeroPad2d((1, 2, 1, 2)), _sn_conv(ch, 1, 4)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, y_hat: torch.Tensor) -> torch.Tensor:
        ctx = F.leaky_relu(self.context(y_hat), 0.2)
        ctx = F.interpolate(ctx, size=x.shape[-2:], mode="nearest")
        return self.net(torch.cat([x, ctx], dim=1))
