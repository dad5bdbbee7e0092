"""Latent-conditioned PatchGAN discriminator of HiFiC (Mentzer et al. 2020, Fig. 2, App. A.1)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from hific_lit.nn.init import normal_
from hific_lit.nn.port_layers import IMAGE_RANGES, UnitToSymmetric

if TYPE_CHECKING:
    from hific_lit.models.hific.arch import ArchConfig

DISCRIMINATOR_STYLES = ("hific", "jt")


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

    ``style="jt"`` builds the JT port's D instead (:meth:`_build_jt`), for fine-tuning imported
    models; ``image_range="tanh"`` shows D the images as ``2x - 1``, as the port's ``-norm`` models did.
    """

    def __init__(
        self,
        latent_channels: int = 220,
        widths: Sequence[int] = (64, 128, 256, 512),
        context_channels: int = 12,
        in_channels: int = 3,
        style: str = "hific",
        image_range: str = "unit",
    ) -> None:
        super().__init__()
        if style not in DISCRIMINATOR_STYLES or image_range not in IMAGE_RANGES:
            raise ValueError(f"style must be one of {DISCRIMINATOR_STYLES}, image_range one of {IMAGE_RANGES}")
        self.input_map: nn.Module = UnitToSymmetric() if image_range == "tanh" else nn.Identity()
        if style == "jt":
            self._build_jt(latent_channels, widths, context_channels, in_channels)
            return
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

    def _build_jt(self, latent_channels: int, widths: Sequence[int], context_channels: int, in_channels: int) -> None:
        """The JT port's D (``src/network/discriminator.py``): reflection padding everywhere, every 4x4
        conv of stride 2, spectral norm on those only (not on the context conv or the 1x1 head)."""
        self.context = normal_(nn.Conv2d(latent_channels, context_channels, 3, padding=1, padding_mode="reflect"))
        layers: list[nn.Module] = []
        ch = in_channels + context_channels
        for w in widths:
            conv = nn.Conv2d(ch, w, 4, stride=2, padding=1, padding_mode="reflect")
            layers += [spectral_norm(normal_(conv)), nn.LeakyReLU(0.2, inplace=True)]
            ch = w
        layers.append(normal_(nn.Conv2d(ch, 1, 1)))
        self.net = nn.Sequential(*layers)

    @classmethod
    def from_arch(cls, arch: ArchConfig) -> Discriminator:
        """The discriminator an :class:`~hific_lit.models.hific.arch.ArchConfig` describes (sizes, style, range)."""
        return cls(
            arch.latent_channels,
            arch.discriminator_widths,
            arch.discriminator_context,
            style=arch.discriminator_style,
            image_range=arch.image_range,
        )

    def forward(self, x: torch.Tensor, y_hat: torch.Tensor) -> torch.Tensor:
        ctx = F.leaky_relu(self.context(y_hat), 0.2)
        ctx = F.interpolate(ctx, size=x.shape[-2:], mode="nearest")
        return self.net(torch.cat([self.input_map(x), ctx], dim=1))
