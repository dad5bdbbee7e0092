"""GC2018's multi-scale discriminator (Agustsson et al. 2018, App. A); its losses are in
:mod:`hific_lit.training.gc2018_losses`.

As in pix2pixHD (Wang et al. 2018), D is three PatchGANs of the same shape run on the
image at full, 1/2 and 1/4 resolution (3x3 average pooling with stride 2 between scales). Each is
``C64-C128-C256-C512`` (4x4 conv, stride 2, InstanceNorm, LeakyReLU 0.2; no norm in the first
layer), then a 4x4 stride-1 conv to one logit map.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

DiscriminatorOutput = list[list[torch.Tensor]]
"""Per scale, the features of each layer, the logits last."""


class PatchDiscriminator(nn.Module):
    """One scale: 4x4 stride-2 convs of ``widths`` (InstanceNorm after all but the first), then a 4x4 conv to 1."""

    def __init__(self, widths: Sequence[int] = (64, 128, 256, 512), in_channels: int = 3) -> None:
        super().__init__()
        layers = []
        for i, width in enumerate(widths):
            norm: nn.Module = nn.InstanceNorm2d(width, affine=True) if i else nn.Identity()
            conv = nn.Conv2d(widths[i - 1] if i else in_channels, width, 4, stride=2, padding=1)
            layers.append(nn.Sequential(conv, norm, nn.LeakyReLU(0.2, inplace=True)))
        layers.append(nn.Sequential(nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(widths[-1], 1, 4)))  # Keras "same"
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for layer in self.layers:
            x = layer(x)
            outputs.append(x)
        return outputs


class MultiscaleDiscriminator(nn.Module):
    """``scales`` PatchGANs on the image downsampled by 2 between scales; images enter in [-1, 1]."""

    def __init__(self, widths: Sequence[int] = (64, 128, 256, 512), scales: int = 3) -> None:
        super().__init__()
        if scales < 1:
            raise ValueError(f"scales must be >= 1, got {scales}")
        self.discriminators = nn.ModuleList(PatchDiscriminator(tuple(widths)) for _ in range(scales))

    @staticmethod
    def downsample(x: torch.Tensor) -> torch.Tensor:
        """pix2pixHD's ``AvgPool2d(3, stride=2, padding=1, count_include_pad=False)``."""
        return F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)

    def scale_inputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The image each scale sees: ``x`` (in [0, 1]) mapped to [-1, 1], then halved per scale."""
        inputs = [x * 2.0 - 1.0]
        for _ in range(len(self.discriminators) - 1):
            inputs.append(self.downsample(inputs[-1]))
        return inputs

    def forward(self, x: torch.Tensor) -> DiscriminatorOutput:
        return [d(inp) for d, inp in zip(self.discriminators, self.scale_inputs(x), strict=True)]
