"""Layers that reproduce the popular PyTorch port of HiFiC, for models imported from it.

github.com/Justin-Tan/high-fidelity-generative-compression ("the port") differs from the authors'
networks in a few border and range conventions; these layers are what the ``ArchConfig`` options
``encoder_stride_pad="jt"``, ``hyper_analysis_padding="reflect"``, ``image_range="tanh"`` and
``pad_scheme="jt"`` switch on (see docs/pretrained-jt.md). Defaults never use them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STRIDE_PADS = ("same", "jt")
IMAGE_RANGES = ("unit", "tanh")
PAD_SCHEMES = ("image", "jt")
JT_IMAGE_MULTIPLE, JT_LATENT_MULTIPLE = 16, 4
"""The port pads the image to a multiple of 16 (g_a's stride), then y to a multiple of 4 (h_a's), both by
reflection at the bottom and right (``src/model.py`` ``compress``, ``src/helpers/utils.py`` ``pad_factor``)."""
JT_STRIDE_PAD = (0, 1, 1, 0)
"""The port's ``nn.ReflectionPad2d((0, 1, 1, 0))`` before g_a's stride-2 convs: left 0, right 1, top 1, bottom 0."""


class AsymmetricPadConv(nn.Module):
    """Reflection-pad by ``pad`` = (left, right, top, bottom), then an unpadded convolution.

    The port's g_a downsampling (``src/network/encoder.py``): ``pad = (0, 1, 1, 0)`` and a 3x3
    stride-2 conv, so output ``(i, j)`` sees input rows ``2i - 1 .. 2i + 1`` and columns
    ``2j .. 2j + 2``. A separate module (not a padding layer followed by a conv), so that code
    which reads receptive fields off the layers cannot mistake it for a centred convolution.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, pad: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.pad = tuple(pad)
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.pad, mode="reflect"))


class ReflectConv2d(nn.Conv2d):
    """``Conv2d(padding=p, padding_mode="reflect")`` that still runs on maps of ``p`` pixels or fewer.

    The port's h_a reflect-pads its 5x5 stride-2 convs by 2 (``src/network/hyper.py``), which
    torch refuses for maps smaller than 3 x 3 (the port cannot code images under 128 x 128); such
    a map is padded by replication instead, the nearest well-defined border.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> None:
        super().__init__(in_ch, out_ch, kernel, stride=stride, padding=0)
        self.reflect = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.reflect
        mode = "reflect" if min(x.shape[-2:]) > p else "replicate"
        return super().forward(F.pad(x, (p, p, p, p), mode=mode))


class UnitToSymmetric(nn.Module):
    """``2x - 1``: an image in [0, 1] as the port's ``--normalize_input_image`` models see it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2.0 - 1.0


class TanhToUnit(nn.Module):
    """``(tanh(t) + 1) / 2``: the port's ``-norm`` reconstruction, ``tanh`` of g_s, in [0, 1] (``src/model.py``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.tanh(x) + 1.0) / 2.0
