"""Synthesis transform g_s of HiFiC (Mentzer et al. 2020, Fig. 2 and App. A.1)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from hific_lit.nn.init import glorot_uniform_
from hific_lit.nn.layers import ResidualBlock, make_norm, same_conv
from hific_lit.nn.port_layers import IMAGE_RANGES, TanhToUnit


class Generator(nn.Module):
    """g_s: quantized latent y_hat (B, C, h, w) -> image (B, 3, 16h, 16w), roughly in [0, 1].

    ``norm(C) - conv3x3(widths[0]) - norm``, ``n_blocks`` residual blocks with a skip
    around them all, then per entry of ``widths[1:]`` a stride-2 ``convT3x3 - norm - ReLU``,
    then ``conv7x7`` to 3 channels. The paper uses widths 960/480/240/120/60 and 9 blocks.
    Its output is the reconstruction itself, with no final activation (authors' ``archs.py``);
    it is clamped to [0, 1] only when an image is written.
    ``image_range="tanh"`` (models of the JT port trained with ``--normalize_input_image``) ends
    with ``(tanh(t) + 1) / 2``, so that the output is still the image in [0, 1].
    """

    def __init__(
        self,
        latent_channels: int = 220,
        widths: Sequence[int] = (960, 480, 240, 120, 60),
        n_blocks: int = 9,
        norm: str = "channel",
        out_channels: int = 3,
        padding: str = "zeros",
        image_range: str = "unit",
    ) -> None:
        super().__init__()
        if image_range not in IMAGE_RANGES:
            raise ValueError(f"unknown image_range {image_range!r}; expected one of: {', '.join(IMAGE_RANGES)}")
        self.head = nn.Sequential(
            make_norm(norm, latent_channels),
            same_conv(latent_channels, widths[0], 3, padding=padding),
            make_norm(norm, widths[0]),
        )
        self.blocks = nn.Sequential(*(ResidualBlock(widths[0], norm, padding) for _ in range(n_blocks)))
        up: list[nn.Module] = []
        for w_in, w_out in itertools.pairwise(widths):
            up += [
                nn.ConvTranspose2d(w_in, w_out, 3, stride=2, padding=1, output_padding=1),
                make_norm(norm, w_out),
                nn.ReLU(True),
            ]
        up.append(same_conv(widths[-1], out_channels, 7, padding=padding))
        if image_range == "tanh":
            up.append(TanhToUnit())
        self.up = nn.Sequential(*up)
        glorot_uniform_(self)
        self.upsampling = 2 ** (len(widths) - 1)

    def forward(self, y_hat: torch.Tensor) -> torch.Tensor:
        h = self.head(y_hat)
        return self.up(h + self.blocks(h))
