"""The GC2018 codec: encoder E, L-center quantizer, generator G (Agustsson et al. 2018, arXiv:1804.02958).

::

    x ──pad16──► E (g_a) ──w──► q (L centers) ──symbols──► categorical prior ──► torchac ──► .hfc
                                     │
                                w_hat ──(‖ noise)──► G (g_s) ──► crop ──► x_hat

E is HiFiC's :class:`~hific_lit.nn.Encoder`, whose layout is GC2018's (HiFiC App. A.1 builds on
it): ``c7s1-60, d120..d960, c3s1-C``. G is :class:`GC2018Generator`: ``c3s1-960, R960 x9,
u480..u60, c7s1-3``, with the tanh output (pix2pixHD) mapped to [0, 1]. The
optional noise channels (the paper's noise concatenated to ŵ) are N(0, 1), fresh in training and drawn from a fixed
seed when decoding, so that a file always decodes to the same image. A .hfc file of this model has
model kind ``gc2018`` and only a latent stream (no hyperlatent): docs/hfc-format.md.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from hific_lit.entropy.tables import CodingBuffers
from hific_lit.io.container import Unpacked
from hific_lit.models.base import Codec, LatentCode
from hific_lit.models.fingerprint import FingerprintPart
from hific_lit.models.gc2018.arch import GC2018_PRESETS, GC2018Config
from hific_lit.models.gc2018.bottleneck import CategoricalPrior, SoftToHardQuantizer
from hific_lit.nn import Encoder, Generator
from hific_lit.nn.init import glorot_uniform_
from hific_lit.nn.layers import make_norm, same_conv
from hific_lit.nn.padding import crop, pad_to_multiple, padded_size
from hific_lit.tiling import RowSource, tiled_analysis, tiled_synthesis

PAD_MULTIPLE = 16
"""The bottleneck lives at 1/16 of the image: images are reflect-padded to a multiple of 16."""
NOISE_SEED = 0
"""Seed of the noise channels when decoding (CPU generator, so every device draws the same noise)."""


class GC2018Generator(Generator):
    """G (paper App. A): HiFiC's g_s with GC2018's head ``c3s1-w0`` (conv 3x3 - norm - ReLU) on the bare ŵ.

    HiFiC's head normalises its input first; on a bottleneck of C = 8 five-level channels that norm
    discards each pixel's mean and scale over channels (ChannelNorm) or each channel's mean (InstanceNorm),
    and in short CPU runs the reconstructions stalled near 14 dB PSNR with it. The skip around the residual
    blocks stays (it is what :mod:`hific_lit.tiling` runs, and it only adds an identity path).
    """

    def __init__(self, latent_channels: int, widths: tuple[int, ...], n_blocks: int, norm: str, padding: str) -> None:
        super().__init__(latent_channels, widths, n_blocks, norm, padding=padding, image_range="tanh")
        head = [same_conv(latent_channels, widths[0], 3, padding=padding), make_norm(norm, widths[0]), nn.ReLU(True)]
        self.head = glorot_uniform_(nn.Sequential(*head))


class GC2018Output(NamedTuple):
    """What :meth:`GC2018.forward` returns.

    ``bpp`` is the prior's cross-entropy of the symbols in bits per (unpadded) pixel (gradient to the
    prior's logits only), ``bpp_bound`` the paper's bound ``C log2(L)`` bits per 16 x 16 pixels.
    """

    x_hat: torch.Tensor
    w_hat: torch.Tensor
    symbols: torch.Tensor
    bpp: torch.Tensor
    bpp_bound: torch.Tensor


class ParameterGroups(NamedTuple):
    """Disjoint parameter sets: E and G (``codec``), the categorical prior (``prior``)."""

    codec: list[nn.Parameter]
    prior: list[nn.Parameter]


class GC2018(Codec):
    """Extreme-rate generative codec: images (B, 3, H, W) in [0, 1] of any size -> x_hat, and .hfc bytes
    (a :class:`~hific_lit.models.base.Codec`)."""

    kind = "gc2018"
    arch_class = GC2018Config
    presets = GC2018_PRESETS

    def __init__(self, arch: GC2018Config | None = None) -> None:
        super().__init__()
        self.arch = arch = arch or GC2018Config()
        c = arch.latent_channels
        self.g_a = Encoder(arch.encoder_widths, c, arch.norm, padding=arch.padding, image_range="tanh")
        self.quantizer = SoftToHardQuantizer(arch.levels, arch.soft_sigma)
        self.prior = CategoricalPrior(c, arch.levels)
        self.g_s = GC2018Generator(
            c + arch.noise_channels, arch.generator_widths, arch.residual_blocks, arch.norm, arch.padding
        )

    def with_noise(self, w_hat: torch.Tensor, fixed: bool) -> torch.Tensor:
        """w_hat with ``noise_channels`` N(0, 1) channels appended (``fixed``: from :data:`NOISE_SEED`)."""
        n = self.arch.noise_channels
        if n == 0:
            return w_hat
        shape = (w_hat.shape[0], n, *w_hat.shape[2:])
        if fixed:
            noise = torch.randn(shape, generator=torch.Generator().manual_seed(NOISE_SEED))
            noise = noise.to(w_hat.device, w_hat.dtype)
        else:
            noise = torch.randn(shape, device=w_hat.device, dtype=w_hat.dtype)
        return torch.cat([w_hat, noise], dim=1)

    def forward(self, x: torch.Tensor) -> GC2018Output:
        """Encode, quantize (straight-through in training), decode; the prior's rate of the symbols."""
        height, width = x.shape[-2:]
        w = self.g_a(pad_to_multiple(x, PAD_MULTIPLE))
        w_hat, symbols = self.quantizer(w)
        x_hat = crop(self.g_s(self.with_noise(w_hat, fixed=not self.training)), height, width)
        pixels = x.shape[0] * height * width
        bpp = self.prior.bits(symbols.detach()) / pixels
        bound = torch.tensor(self.arch.rate_bound(height, width), device=x.device)
        return GC2018Output(x_hat, w_hat, symbols, bpp, bound)

    @torch.no_grad()
    def update(self, force: bool = False) -> None:
        """Build the prior's coding table, once (unless ``force``)."""
        self.prior.update(force)

    @property
    def coding_ready(self) -> bool:
        """Whether :meth:`update` has built what :meth:`compress` and :meth:`decompress` need."""
        return self.prior.tables.built

    def analysis(self, x: torch.Tensor, max_memory: int | None, progress: bool | None) -> torch.Tensor:
        """E on images padded to a multiple of 16, on tiles within ``max_memory`` (whole image when E cannot be
        tiled, e.g. instance norm, with a warning); w in float32."""
        return tiled_analysis(self.g_a, x, max_memory, progress, PAD_MULTIPLE).float()

    def code_latent(self, latent: torch.Tensor) -> LatentCode:
        """The symbols of w (nearest center) under the categorical prior; no hyperlatent."""
        symbols = self.quantizer.symbols(latent)
        stream = self.prior.compress(symbols)

        def write_y(write: Any) -> None:
            write(stream)

        return LatentCode(tuple(latent.shape[1:]), (0, 0, 0), b"", write_y, self.prior.estimate_bits(symbols))

    def expected_shapes(self, height: int, width: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """w at 1/16 of the image padded to a multiple of 16; no hyperlatent."""
        size = (padded_size(height, PAD_MULTIPLE) // 16, padded_size(width, PAD_MULTIPLE) // 16)
        return (self.arch.latent_channels, *size), (0, 0, 0)

    def decode_latent(self, unpacked: Unpacked, by_rows: bool) -> torch.Tensor | RowSource:
        """ŵ with its noise channels (from :data:`NOISE_SEED`), in G's dtype and on its device."""
        symbols = self.prior.decompress(unpacked.y_stream, (1, *unpacked.header.y_shape))
        weight = next(self.g_s.parameters())
        return self.with_noise(self.quantizer.dequantize(symbols), fixed=True).to(weight.device, weight.dtype)

    def synthesis(
        self,
        latent: torch.Tensor | RowSource,
        max_memory: int | None,
        progress: bool | None,
        uint8: bool,
        beta: float | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """G on tiles within ``max_memory``: float32 in [0, 1] (not yet clamped) or 8-bit; no realism (``beta``)."""
        x_hat = tiled_synthesis(self.g_s, latent, max_memory, progress, uint8)
        return x_hat if uint8 else x_hat.float()

    def fingerprint_parts(self) -> tuple[dict[str, Any], list[FingerprintPart]]:
        """What decoding depends on: the architecture (JSON, with the kind and the noise seed), the prior's coding
        table, the centers (float64) and G's weights as bfloat16."""
        arch = {"kind": self.kind, "noise_seed": NOISE_SEED, **self.arch.to_dict()}
        built = [(f"{n}.{b}", t, None) for n, m in self.named_modules() if isinstance(m, CodingBuffers)
                 for b, t in m.named_buffers(recurse=False)]  # fmt: skip
        parts = [*built, ("centers", self.quantizer.centers, torch.float64)]
        parts += [(f"g_s.{k}", v, torch.bfloat16) for k, v in self.g_s.state_dict().items() if v.is_floating_point()]
        return arch, parts

    def parameter_groups(self) -> ParameterGroups:
        """``codec`` (E, G) and ``prior`` (the categorical prior's logits); asserts they cover every parameter."""
        prior = [self.prior.logits]
        codec = [p for p in self.parameters() if p is not self.prior.logits]
        assert len(codec) + len(prior) == len(list(self.parameters())), "a parameter is in no group"
        return ParameterGroups(codec, prior)
