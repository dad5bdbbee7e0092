"""Analysis transform g_a of HiFiC (Mentzer et al. 2020, Fig. 2 and App. A.1)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from hific_lit.nn.init import glorot_uniform_
from hific_lit.nn.layers import make_norm, same_conv


class Encoder(nn.Module):
    """g_a: image in [0, 1] of shape (B, 3, H, W) -> latent y of shape (B, C, H/16, W/16).

    ``conv7x7(w0) - norm - ReLU``, then per entry of ``widths[1:]`` a stride-2
    ``conv3x3 - norm - ReLU``, then ``conv3x3`` to ``latent_channels`` (no norm).
    The paper uses widths 60/120/240/480/960 and C = 220. As in the authors' ``model.py``,
    the image enters in [0, 1] as it is (no shift to [-1, 1]).
    """

    def __init__(
        self,
        widths: Sequence[int] = (60, 120, 240, 480, 960),
        latent_channels: int = 220,
        norm: str = "channel",
        in_channels: int = 3,
        padding: str = "zeros",
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            same_conv(in_channels, widths[0], 7, padding=padding),
            make_norm(norm, widths[0]),
            nn.ReLU(True),
        ]
        for w_in, w_out in itertools.pairwise(widths):
            layers += [same_conv(w_in, w_out, 3, stride=2, padding=padding), make_norm(norm, w_out), nn.ReLU(True)]
        layers.append(same_conv(widths[-1], latent_channels, 3, padding=padding))
        self.net = glorot_uniform_(nn.Sequential(*layers))
        self.downsampling = 2 ** (len(widths) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
