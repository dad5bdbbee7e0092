"""GC2018's multi-scale discriminator (Agustsson et al. 2018, App. A); its losses are in
:mod:`hific_lit.training.gc2018_losses`.

As in pix2pixHD (Wang et al. 2018), D is three PatchGANs of the same shape run on the
image at full, 1/2 and 1/4 resolution (3x3 average pooling with stride 2 between scales). Each is
``C64-C128-C256-C512`` (4x4 conv, stride 2, InstanceNorm, LeakyReLU 0.2; no norm in the first
layer), then a 4x4 stride-1 conv to one logit map.

Where the paper leaves a detail open, the TF1 port (Justin-Tan/generative-compression at 38d34c8,
``network.py`` ``multiscale_discriminator``, ``model.py`` lines 119-133) decides, and
``tests/fixtures/gc2018`` (made by running the port's own code) pins it: TF ``same`` padding of every conv
and pooling, InstanceNorm with epsilon 1e-6, Glorot-uniform kernels with zero biases; pix2pixHD's pooling is
``pooling="centered"``. docs/fidelity.md, rows G7, G15 and G19.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

DiscriminatorOutput = list[list[torch.Tensor]]
"""Per scale, the features of each layer, the logits last."""
POOLINGS = ("same", "centered")
"""Downsampling between scales: TF's ``average_pooling2d(3, 2, 'same')`` (the port) or pix2pixHD's
``AvgPool2d(3, 2, padding=1, count_include_pad=False)``."""
INSTANCE_NORM_EPS = 1e-6
"""``tf.contrib.layers.instance_norm``'s epsilon (the port's D)."""


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF's ``same`` padding of one axis (before, after): output ``ceil(size / stride)``, the extra pixel after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """A convolution with TF's ``same`` zero padding (asymmetric for odd sizes), as ``tf.layers.conv2d``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
        left, right = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
        return super().forward(F.pad(x, (left, right, top, bottom)))


def same_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """TF's ``average_pooling2d(pool_size=3, strides=2, padding='same')``: the padding is left out of each mean."""
    top, bottom = same_padding(x.shape[-2], 3, 2)
    left, right = same_padding(x.shape[-1], 3, 2)
    pads = (left, right, top, bottom)
    total = F.avg_pool2d(F.pad(x, pads), 3, stride=2)
    counts = F.avg_pool2d(F.pad(torch.ones_like(x[:1, :1]), pads), 3, stride=2)
    return total / counts


class PatchDiscriminator(nn.Module):
    """One scale: 4x4 stride-2 convs of ``widths`` (InstanceNorm after all but the first), then a 4x4 conv to 1.

    Glorot-uniform kernels and zero biases (``tf.layers.conv2d``'s defaults, the port's D).
    """

    def __init__(self, widths: Sequence[int] = (64, 128, 256, 512), in_channels: int = 3) -> None:
        super().__init__()
        layers = []
        for i, width in enumerate(widths):
            norm: nn.Module = nn.InstanceNorm2d(width, eps=INSTANCE_NORM_EPS, affine=True) if i else nn.Identity()
            conv = SameConv2d(widths[i - 1] if i else in_channels, width, 4, stride=2)
            layers.append(nn.Sequential(conv, norm, nn.LeakyReLU(0.2, inplace=True)))
        layers.append(nn.Sequential(SameConv2d(widths[-1], 1, 4)))
        self.layers = nn.ModuleList(layers)
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.xavier_uniform_(module.weight)
                    module.bias.zero_()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for layer in self.layers:
            x = layer(x)
            outputs.append(x)
        return outputs


class MultiscaleDiscriminator(nn.Module):
    """``scales`` PatchGANs on the image downsampled by 2 between scales; images enter in [-1, 1].

    ``pooling``: ``same`` (the port's TF pooling, the extra pixel after) or ``centered`` (pix2pixHD's).
    """

    def __init__(self, widths: Sequence[int] = (64, 128, 256, 512), scales: int = 3, pooling: str = "same") -> None:
        super().__init__()
        if scales < 1:
            raise ValueError(f"scales must be >= 1, got {scales}")
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; expected one of: {', '.join(POOLINGS)}")
        self.pooling = pooling
        self.discriminators = nn.ModuleList(PatchDiscriminator(tuple(widths)) for _ in range(scales))

    def downsample(self, x: torch.Tensor) -> torch.Tensor:
        """One scale down: :func:`same_avg_pool`, or pix2pixHD's centred pooling."""
        if self.pooling == "same":
            return same_avg_pool(x)
        return F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)

    def scale_inputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The image each scale sees: ``x`` (in [0, 1]) mapped to [-1, 1], then halved per scale."""
        inputs = [x * 2.0 - 1.0]
        for _ in range(len(self.discriminators) - 1):
            inputs.append(self.downsample(inputs[-1]))
        return inputs

    def forward(self, x: torch.Tensor) -> DiscriminatorOutput:
        return [d(inp) for d, inp in zip(self.discriminators, self.scale_inputs(x), strict=True)]
