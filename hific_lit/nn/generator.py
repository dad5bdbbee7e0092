"""Synthesis transform g_s of HiFiC (Mentzer et al. 2020, Fig. 2 and App. A.1)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch import nn

from hific_lit.nn.init import glorot_uniform_
from hific_lit.nn.layers import ResidualBlock, make_norm, same_conv
from hific_lit.nn.port_layers import IMAGE_RANGES, TanhToUnit
from hific_lit.nn.realism import (
    BETA_MAX,
    FiLMChannelNorm2d,
    FiLMResidualBlock,
    RealismCondition,
    RealismEmbedding,
    check_beta,
    not_conditioned_error,
)

if TYPE_CHECKING:
    from hific_lit.models.hific.arch import ArchConfig


class Generator(nn.Module):
    """g_s: quantized latent y_hat (B, C, h, w) -> image (B, 3, 16h, 16w), roughly in [0, 1].

    ``norm(C) - conv3x3(widths[0]) - norm``, ``n_blocks`` residual blocks with a skip
    around them all, then per entry of ``widths[1:]`` a stride-2 ``convT3x3 - norm - ReLU``,
    then ``conv7x7`` to 3 channels. The paper uses widths 960/480/240/120/60 and 9 blocks.
    Its output is the reconstruction itself, with no final activation (authors' ``archs.py``);
    it is clamped to [0, 1] only when an image is written.
    ``image_range="tanh"`` (models of the JT port trained with ``--normalize_input_image``) ends
    with ``(tanh(t) + 1) / 2``, so that the output is still the image in [0, 1].

    ``realism_width > 0`` conditions it on a realism weight β in ``[0, beta_max]`` (MRIC,
    :mod:`hific_lit.nn.realism`): every ChannelNorm becomes a FiLM norm driven by a β-embedding of that
    width. Without it (``0``, the default) the network, its parameters and its outputs are plain HiFiC's.
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
        realism_width: int = 0,
        beta_max: float = BETA_MAX,
        train_beta_max: float | None = None,
    ) -> None:
        super().__init__()
        if image_range not in IMAGE_RANGES:
            raise ValueError(f"unknown image_range {image_range!r}; expected one of: {', '.join(IMAGE_RANGES)}")
        if realism_width and norm != "channel":
            raise ValueError(f"realism conditioning modulates ChannelNorms: it needs norm='channel', got {norm!r}")
        self.condition = RealismCondition()
        self.beta_max = float(beta_max)
        self.train_beta_max = self.beta_max if train_beta_max is None else float(train_beta_max)
        self.default_beta = self.beta_max  # β outside training when none is given; a checkpoint may set another

        def norm_layer(channels: int) -> nn.Module:
            if realism_width:
                return FiLMChannelNorm2d(channels, self.condition, realism_width)
            return make_norm(norm, channels)

        def block() -> nn.Module:
            if realism_width:
                return FiLMResidualBlock(widths[0], self.condition, realism_width, padding)
            return ResidualBlock(widths[0], norm, padding)

        self.head = nn.Sequential(
            norm_layer(latent_channels),
            same_conv(latent_channels, widths[0], 3, padding=padding),
            norm_layer(widths[0]),
        )
        self.blocks = nn.Sequential(*(block() for _ in range(n_blocks)))
        up: list[nn.Module] = []
        for w_in, w_out in itertools.pairwise(widths):
            up += [
                nn.ConvTranspose2d(w_in, w_out, 3, stride=2, padding=1, output_padding=1),
                norm_layer(w_out),
                nn.ReLU(True),
            ]
        up.append(same_conv(widths[-1], out_channels, 7, padding=padding))
        if image_range == "tanh":
            up.append(TanhToUnit())
        self.up = nn.Sequential(*up)
        glorot_uniform_(self)
        self.upsampling = 2 ** (len(widths) - 1)
        self.realism = RealismEmbedding(realism_width) if realism_width else None

    @classmethod
    def from_arch(cls, arch: ArchConfig) -> Generator:
        """g_s as the architecture ``arch`` sizes it (with realism conditioning when ``arch`` asks for it)."""
        return cls(
            arch.latent_channels,
            arch.generator_widths,
            arch.residual_blocks,
            arch.norm,
            padding=arch.padding,
            image_range=arch.image_range,
            realism_width=arch.realism_width if arch.realism_conditioning else 0,
            beta_max=arch.beta_max,
            train_beta_max=arch.train_beta_max,
        )

    @property
    def conditioned(self) -> bool:
        """Whether this generator takes a realism weight β."""
        return self.realism is not None

    def betas(self, beta: float | torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor | None:
        """β per image (batch,), checked to lie in [0, beta_max]; ``None`` for an unconditioned generator.

        ``beta=None`` means: in training, β drawn per image uniformly from [0, train_beta_max] (MRIC;
        Nikolai10/MRIC ``amtm2023.py`` line 388 draws from [0, 5.12] and decodes in [0, 2.56]), otherwise
        :attr:`default_beta`. An unconditioned generator refuses a β.
        """
        if not self.conditioned:
            if beta is not None:
                raise not_conditioned_error()
            return None
        if beta is None:
            if self.training:
                return torch.rand(batch, device=device) * self.train_beta_max
            beta = self.default_beta
        return check_beta(beta, self.beta_max, batch, device)

    @contextmanager
    def applied(self, beta: torch.Tensor | None) -> Iterator[None]:
        """Run the block with the FiLM norms modulated by ``beta`` (B,), e.g. g_s's parts on tiles; ``None``:
        as it is (an unconditioned generator, or one whose β is already applied)."""
        if beta is None or self.realism is None:
            yield
            return
        with self.condition.applied(self.realism(beta)):
            yield

    def forward(self, y_hat: torch.Tensor, beta: float | torch.Tensor | None = None) -> torch.Tensor:
        """The image from ``y_hat``; a conditioned generator at realism ``beta`` (see :meth:`betas`), or at the
        β applied around this call (:meth:`applied`) when there is one and ``beta`` is ``None``."""
        if beta is not None or self.condition.embedding is None:
            beta = self.betas(beta, y_hat.shape[0], y_hat.device)
        with self.applied(beta):
            h = self.head(y_hat)
            return self.up(h + self.blocks(h))
