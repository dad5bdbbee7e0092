"""Analysis transform g_a of HiFiC (Mentzer et al. 2020, Fig. 2 and App. A.1)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from hific_lit.nn.init import glorot_uniform_
from hific_lit.nn.layers import make_norm, same_conv
from hific_lit.nn.port_layers import IMAGE_RANGES, JT_STRIDE_PAD, STRIDE_PADS, AsymmetricPadConv, UnitToSymmetric


class Encoder(nn.Module):
    """g_a: image in [0, 1] of shape (B, 3, H, W) -> latent y of shape (B, C, H/16, W/16).

    ``conv7x7(w0) - norm - ReLU``, then per entry of ``widths[1:]`` a stride-2
    ``conv3x3 - norm - ReLU``, then ``conv3x3`` to ``latent_channels`` (no norm).
    The paper uses widths 60/120/240/480/960 and C = 220. As in the authors' ``model.py``,
    the image enters in [0, 1] as it is (no shift to [-1, 1]).

    Options for models of the JT port (:mod:`hific_lit.nn.port_layers`): ``stride_pad="jt"`` pads
    the stride-2 convs by reflection (left 0, right 1, top 1, bottom 0) instead of ``kernel // 2``
    on every side; ``image_range="tanh"`` maps the image to ``2x - 1`` first.
    """

    def __init__(
        self,
        widths: Sequence[int] = (60, 120, 240, 480, 960),
        latent_channels: int = 220,
        norm: str = "channel",
        in_channels: int = 3,
        padding: str = "zeros",
        stride_pad: str = "same",
        image_range: str = "unit",
    ) -> None:
        super().__init__()
        if stride_pad not in STRIDE_PADS or image_range not in IMAGE_RANGES:
            raise ValueError(f"stride_pad must be one of {STRIDE_PADS}, image_range one of {IMAGE_RANGES}")
        layers: list[nn.Module] = [UnitToSymmetric()] if image_range == "tanh" else []
        layers += [same_conv(in_channels, widths[0], 7, padding=padding), make_norm(norm, widths[0]), nn.ReLU(True)]
        for w_in, w_out in itertools.pairwise(widths):
            if stride_pad == "jt":
                down: nn.Module = AsymmetricPadConv(w_in, w_out, 3, 2, JT_STRIDE_PAD)
            else:
                down = same_conv(w_in, w_out, 3, stride=2, padding=padding)
            layers += [down, make_norm(norm, w_out), nn.ReLU(True)]
        layers.append(same_conv(widths[-1], latent_channels, 3, padding=padding))
        self.net = glorot_uniform_(nn.Sequential(*layers))
        self.downsampling = 2 ** (len(widths) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
