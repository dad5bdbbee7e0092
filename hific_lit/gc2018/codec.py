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

import hashlib
import json
import math
from typing import NamedTuple

import torch
from torch import nn

from hific_lit.bitstream import FINGERPRINT_SIZE, MODEL_KINDS, Header, pack, unpack
from hific_lit.codec import Compressed, as_image_batch
from hific_lit.entropy.tables import CodingBuffers
from hific_lit.errors import BitstreamError, CheckpointError
from hific_lit.gc2018.arch import GC2018Config
from hific_lit.gc2018.bottleneck import CategoricalPrior, SoftToHardQuantizer
from hific_lit.nn import Encoder, Generator
from hific_lit.nn.init import glorot_uniform_
from hific_lit.nn.layers import make_norm, same_conv
from hific_lit.padding import crop, pad_to_multiple, padded_size
from hific_lit.tiling import DEFAULT_MAX_MEMORY, tiled_analysis, tiled_synthesis

PAD_MULTIPLE = 16
"""The bottleneck lives at 1/16 of the image: images are reflect-padded to a multiple of 16."""
NOISE_SEED = 0
"""Seed of the noise channels when decoding (CPU generator, so every device draws the same noise)."""
KIND = "gc2018"
KIND_CODE = {name: code for code, name in MODEL_KINDS.items()}[KIND]
_MAX_SYMBOLS_PER_BYTE = 1 << 18


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


class GC2018(nn.Module):
    """Extreme-rate generative codec: images (B, 3, H, W) in [0, 1] of any size -> x_hat, and .hfc bytes."""

    kind = KIND

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

    @classmethod
    def from_preset(cls, name: str) -> GC2018:
        """A fresh model of the named preset (:data:`~hific_lit.gc2018.arch.GC2018_PRESETS`)."""
        from hific_lit.gc2018.arch import GC2018_PRESETS

        return cls(GC2018_PRESETS[name])

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

    def require_coding(self) -> None:
        """Raise :class:`CheckpointError` unless :attr:`coding_ready`."""
        if not self.coding_ready:
            raise CheckpointError("this model has no coding table: call model.update() after training")

    @torch.no_grad()
    def compress(
        self, x: torch.Tensor, max_memory: int | None = DEFAULT_MAX_MEMORY, progress: bool | None = False
    ) -> Compressed:
        """One image (3, H, W) or (1, 3, H, W), float in [0, 1] or uint8 -> the bytes of a .hfc file.

        E runs on tiles within ``max_memory`` (whole image when E cannot be tiled, e.g. instance norm,
        with a warning); the file does not depend on the tiling.
        """
        x = as_image_batch(x)
        if x.shape[0] != 1:
            raise ValueError(f"compress codes one image; got a batch of {x.shape[0]}")
        self.require_coding()
        w = tiled_analysis(self.g_a, x, max_memory, progress, PAD_MULTIPLE).float()
        symbols = self.quantizer.symbols(w)
        stream = self.prior.compress(symbols)
        header = Header(
            self.fingerprint(), *x.shape[-2:], tuple(w.shape[1:]), (0, 0, 0), 0, len(stream), kind=KIND_CODE
        )
        return Compressed(pack(header, b"", stream), self.prior.estimate_bits(symbols))

    @torch.no_grad()
    def decompress(
        self,
        data: bytes,
        max_memory: int | None = DEFAULT_MAX_MEMORY,
        progress: bool | None = False,
        uint8: bool = False,
    ) -> torch.Tensor:
        """.hfc bytes of this model -> the image (1, 3, H, W), float in [0, 1] or, with ``uint8``, 8-bit."""
        header, _, stream = unpack(data)
        self.require_coding()
        self._check(header)
        symbols = self.prior.decompress(stream, (1, *header.y_shape))
        weight = next(self.g_s.parameters())
        w_hat = self.with_noise(self.quantizer.dequantize(symbols), fixed=True).to(weight.device, weight.dtype)
        x_hat = crop(tiled_synthesis(self.g_s, w_hat, max_memory, progress, uint8), header.height, header.width)
        return x_hat if uint8 else x_hat.float().clamp_(0.0, 1.0)

    def _check(self, header: Header) -> None:
        if header.kind != KIND_CODE:
            found = MODEL_KINDS.get(header.kind, f"unknown ({header.kind})")
            raise BitstreamError(
                f"the file was made by a {found} model, not a {KIND} one; decode it with its checkpoint"
            )
        if header.fingerprint != self.fingerprint():
            raise BitstreamError(
                f"the file was made by another model (fingerprint {header.fingerprint.hex()}, this model's is "
                f"{self.fingerprint().hex()}); decode it with the checkpoint that encoded it"
            )
        expected = (
            self.arch.latent_channels,
            padded_size(header.height, 16) // 16,
            padded_size(header.width, 16) // 16,
        )
        if header.y_shape != expected or header.z_shape != (0, 0, 0):
            raise BitstreamError(
                f"the header's latent shape {header.y_shape} does not fit a {header.height}x{header.width} image "
                f"coded by this model ({expected})"
            )
        if math.prod(expected) > _MAX_SYMBOLS_PER_BYTE * header.y_length:
            raise BitstreamError(
                f"the header claims a {header.height}x{header.width} image, but its stream of {header.y_length} "
                "bytes cannot hold that many symbols (corrupt header)"
            )

    def fingerprint(self) -> bytes:
        """8-byte BLAKE2b of what decoding depends on: the architecture (JSON, with the kind), the prior's
        coding table, the centers, the noise seed and G's weights rounded to bfloat16."""
        digest = hashlib.blake2b(digest_size=FINGERPRINT_SIZE)
        digest.update(
            json.dumps({"kind": KIND, "noise_seed": NOISE_SEED, **self.arch.to_dict()}, sort_keys=True).encode()
        )
        built = [(f"{n}.{b}", t) for n, m in self.named_modules() if isinstance(m, CodingBuffers)
                 for b, t in m.named_buffers(recurse=False)]  # fmt: skip
        parts = [*built, ("centers", self.quantizer.centers.double())]
        parts += [(f"g_s.{k}", v.to(torch.bfloat16)) for k, v in self.g_s.state_dict().items() if v.is_floating_point()]
        for name, tensor in parts:
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.digest()

    def parameter_groups(self) -> ParameterGroups:
        """``codec`` (E, G) and ``prior`` (the categorical prior's logits); asserts they cover every parameter."""
        prior = [self.prior.logits]
        codec = [p for p in self.parameters() if p is not self.prior.logits]
        assert len(codec) + len(prior) == len(list(self.parameters())), "a parameter is in no group"
        return ParameterGroups(codec, prior)
