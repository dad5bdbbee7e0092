"""The HiFiC codec: g_a, the mean-scale hyperprior and g_s.

::

    x ──pad──► g_a ──y──► h_a ──z──► Q ──z_hat──┬─► factorized prior ─► p(z_hat)
                │                               ├─► h_s_mu    ─► mu
                │                               └─► h_s_sigma ─► sigma
                └─► y ─► Q(y - mu) + mu = y_hat ─► Gaussian conditional(mu, sigma) ─► p(y_hat)
                                          y_hat ─► g_s ─► crop ─► x_hat

The conditional discriminator D(x or x_hat | y_hat) is not part of the codec: the GAN stage
(:class:`hific_lit.lit.GANStage`) holds it.

Mentzer et al. 2020, "High-Fidelity Generative Image Compression", Fig. 2.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from hific_lit import coding
from hific_lit.arch import ArchConfig, arch_preset
from hific_lit.entropy import FactorizedPrior, GaussianConditional
from hific_lit.entropy.tables import CodingTables
from hific_lit.nn import Encoder, Generator, HyperAnalysis, HyperSynthesis
from hific_lit.padding import crop, pad_to_multiple
from hific_lit.tiling import DEFAULT_MAX_MEMORY, tiled_analysis, tiled_synthesis


class Likelihoods(NamedTuple):
    """Elementwise likelihoods of the latent and the hyperlatent."""

    y: torch.Tensor
    z: torch.Tensor


class HiFiCOutput(NamedTuple):
    """What :meth:`HiFiC.forward` returns.

    ``likelihoods`` are those the rate is trained on (noisy in training, rounded in evaluation);
    ``bpp`` is their rate in bits per (unpadded) pixel, averaged over the batch, and
    ``bpp_rounded`` the rate of the actually rounded values, with no gradient.
    """

    x_hat: torch.Tensor
    y_hat: torch.Tensor
    likelihoods: Likelihoods
    bpp: torch.Tensor
    bpp_rounded: torch.Tensor


class ParameterGroups(NamedTuple):
    """Disjoint parameter sets, one per optimizer."""

    codec: list[nn.Parameter]
    aux: list[nn.Parameter]


def bits_per_pixel(likelihoods: Likelihoods, num_pixels: int) -> torch.Tensor:
    """-sum(log2 p) over latents and hyperlatents, divided by the number of image pixels."""
    bits = sum(-torch.log(p).sum() for p in likelihoods) / math.log(2.0)
    return bits / num_pixels


class HiFiC(nn.Module):
    """HiFiC's codec: encoder, mean-scale hyperprior, generator.

    Images are float tensors (B, 3, H, W) in [0, 1] of any size; they are reflect-padded to a
    multiple of 64 and the reconstruction is cropped back. As in the authors' ``model.py``, g_a
    sees the image in [0, 1] and g_s's output is the reconstruction (no range mapping). After
    :meth:`update`, :meth:`compress` and :meth:`decompress` turn images into .hfc bytes and back
    (see :mod:`hific_lit.coding`).
    """

    def __init__(self, arch: ArchConfig | None = None) -> None:
        super().__init__()
        self.arch = arch = arch or ArchConfig()
        c, n = arch.latent_channels, arch.hyper_filters
        self.g_a = Encoder(arch.encoder_widths, c, arch.norm, padding=arch.padding)
        self.g_s = Generator(c, arch.generator_widths, arch.residual_blocks, arch.norm, padding=arch.padding)
        self.h_a = HyperAnalysis(c, n)
        self.h_s_mu = HyperSynthesis(c, n)
        self.h_s_sigma = HyperSynthesis(c, n)
        self.entropy_bottleneck = FactorizedPrior(n)
        self.gaussian_conditional = GaussianConditional()
        self.y_tables = CodingTables()
        self.z_tables = CodingTables()
        self.max_memory: int | None = DEFAULT_MAX_MEMORY
        """Working-memory budget (bytes) of g_a and g_s in compress/decompress; ``None``: whole image."""
        self.tile_progress: bool | None = None
        """Progress bar over tiles: ``None`` shows it on a terminal when there is more than one tile."""

    @classmethod
    def from_preset(cls, name: str) -> HiFiC:
        """Build the model of a named preset (``hific``, ``small``, ``tiny``)."""
        return cls(arch_preset(name))

    def hyper_decode(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, sigma) of the latent from the quantized hyperlatent."""
        return self.h_s_mu(z_hat), self.h_s_sigma(z_hat)

    def forward(self, x: torch.Tensor) -> HiFiCOutput:
        """Encode, quantize (noise proxy for the rate in training) and reconstruct ``x``."""
        height, width = x.shape[-2:]
        y = self.g_a(pad_to_multiple(x))
        z = self.h_a(y)
        z_hat, pz, pz_hat = self.entropy_bottleneck(z)  # z_hat is z + noise in training
        mu, sigma = self.hyper_decode(z_hat)
        y_hat, py, py_hat = self.gaussian_conditional(y, mu, sigma)
        x_hat = crop(self.g_s(y_hat), height, width)
        num_pixels = x.shape[0] * height * width
        likelihoods = Likelihoods(py, pz)
        with torch.no_grad():
            bpp_rounded = bits_per_pixel(Likelihoods(py_hat, pz_hat), num_pixels)
        return HiFiCOutput(x_hat, y_hat, likelihoods, bits_per_pixel(likelihoods, num_pixels), bpp_rounded)

    def analysis(self, x_padded: torch.Tensor) -> torch.Tensor:
        """g_a on an image already padded to a multiple of 64, in [0, 1]; y in float32.

        Runs on tiles within ``self.max_memory`` bytes of working memory (see :mod:`hific_lit.tiling`).
        """
        dtype = next(self.g_a.parameters()).dtype
        y = tiled_analysis(self.g_a, x_padded.to(dtype), self.max_memory, self.tile_progress)
        return y.float()

    def synthesis(self, y_hat: torch.Tensor) -> torch.Tensor:
        """g_s: the padded reconstruction in [0, 1] (not yet clamped), in float32; tiled like :meth:`analysis`."""
        dtype = next(self.g_s.parameters()).dtype
        return tiled_synthesis(self.g_s, y_hat.to(dtype), self.max_memory, self.tile_progress).float()

    def update(self, force: bool = False) -> None:
        """Build the coding tables once and store them as buffers (they travel in the state dict)."""
        coding.build_tables(self, force)

    def compress(self, x: torch.Tensor) -> bytes:
        """One image (3, H, W) or (1, 3, H, W) in [0, 1] -> the bytes of a .hfc file."""
        return coding.encode_image(self, x).data

    def decompress(self, data: bytes) -> torch.Tensor:
        """.hfc bytes -> the image (1, 3, H, W) in [0, 1]; malformed input raises BitstreamError."""
        return coding.decode_image(self, data)

    def compress_batch(self, x: torch.Tensor) -> list[bytes]:
        """A batch (B, 3, H, W) -> one .hfc byte string per image (g_a runs on the whole batch)."""
        x = coding.as_image_batch(x)
        coding.require_tables(self)
        with torch.no_grad():
            y = self.analysis(pad_to_multiple(x.to(self.y_tables.cdf.device)))
        height, width = x.shape[-2:]
        return [coding.encode_latent(self, y[i : i + 1], height, width).data for i in range(x.shape[0])]

    def decompress_batch(self, data: list[bytes]) -> list[torch.Tensor]:
        """Decode each byte string (their images may differ in size)."""
        return [self.decompress(d) for d in data]

    def aux_loss(self) -> torch.Tensor:
        """Loss of the factorized prior's quantiles (optimised on its own, see :meth:`parameter_groups`)."""
        return self.entropy_bottleneck.aux_loss()

    def parameter_groups(self) -> ParameterGroups:
        """Codec (g_a, g_s, h_a, h_s, density) and aux (the factorized prior's quantiles) parameters.

        Asserts that the two sets are disjoint and together cover every trainable parameter.
        """
        aux = [self.entropy_bottleneck.quantiles]
        taken = {id(p) for p in aux}
        codec = [p for p in self.parameters() if id(p) not in taken]
        assert len(codec) + len(aux) == len(list(self.parameters())), "a parameter is in no group"
        return ParameterGroups(codec, aux)
