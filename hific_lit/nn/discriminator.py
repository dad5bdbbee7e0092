"""Latent-conditioned PatchGAN discriminator of HiFiC (Mentzer et al. 2020, Fig. 2, App. A.1)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class Discriminator(nn.Module):
    """D(x | y_hat): image (B, 3, H, W) and latent (B, C, H/s, W/s) -> logits (B, 1, H/8, W/8).

    The latent goes through ``conv3x3`` to ``context_channels`` and is upsampled by nearest
    neighbour to the image size, concatenated with the image, then ``conv4x4`` layers of
    ``widths`` (stride 2 for all but the last) with LeakyReLU(0.2), and ``conv1x1`` to one
    logit per patch. All convolutions are spectrally normalised.
    """

    def __init__(
        self,
        latent_channels: int = 220,
        widths: Sequence[int] = (64, 128, 256, 512),
        context_channels: int = 12,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.context = spectral_norm(nn.Conv2d(latent_channels, context_channels, 3, padding=1))
        layers: list[nn.Module] = []
        ch = in_channels + context_channels
        for i, w in enumerate(widths):
            if i < len(widths) - 1:
                layers.append(spectral_norm(nn.Conv2d(ch, w, 4, stride=2, padding=1)))
            else:
                layers += [nn.ZeroPad2d((1, 2, 1, 2)), spectral_norm(nn.Conv2d(ch, w, 4, stride=1))]
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            ch = w
        layers.append(spectral_norm(nn.Conv2d(ch, 1, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, y_hat: torch.Tensor) -> torch.Tensor:
        ctx = F.leaky_relu(self.context(y_hat), 0.2)
        ctx = F.interpolate(ctx, size=x.shape[-2:], mode="nearest")
        return self.net(torch.cat([x, ctx], dim=1))
