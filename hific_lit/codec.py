"""The HiFiC codec: g_a, the mean-scale hyperprior and g_s.

::

    x ──pad──► g_a ──y──► h_a ──z──► Q ──z_hat──┬─► factorized prior ─► p(z_hat)
                │                               ├─► h_s_mu    ─► mu
                │                               └─► h_s_sigma ─► sigma
                └─► y ─► Q(y - mu) + mu = y_hat ─► conditional(mu, sigma) ─► p(y_hat)
                                          y_hat ─► g_s ─► crop ─► x_hat

Real coding (:meth:`HiFiC.compress`, :meth:`HiFiC.decompress`) follows the same diagram with the
entropy models' coders: the z-stream, then h_s computed exactly in integers (so that the scale
indexes and means, and hence y_hat, are the same on every device; .hfc format version 2), then
the y-stream. The conditional is Gaussian (the authors') or logistic (``ArchConfig.latent_likelihood``).
The conditional discriminator D(x or x_hat | y_hat) is not part of the codec: the GAN stage
(:class:`hific_lit.lit.GANStage`) holds it.

Mentzer et al. 2020, "High-Fidelity Generative Image Compression", Fig. 2.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from typing import Any, NamedTuple

import torch
from torch import nn

from hific_lit import format_v1
from hific_lit.arch import ArchConfig, arch_preset
from hific_lit.bitstream import FINGERPRINT_SIZE, Header, unpack
from hific_lit.entropy import FactorizedPrior, IntegerConvNet, make_conditional
from hific_lit.entropy.tables import CodingBuffers
from hific_lit.errors import BitstreamError, CheckpointError
from hific_lit.hfc_writer import code_latent, write_hfc_to
from hific_lit.latent_bands import decode_latent, decode_latent_rows
from hific_lit.nn import Encoder, Generator, HyperAnalysis, HyperSynthesis
from hific_lit.nn.port_layers import JT_IMAGE_MULTIPLE, JT_LATENT_MULTIPLE
from hific_lit.padding import PAD_MULTIPLE, crop, pad_to_multiple, padded_size
from hific_lit.tiling import DEFAULT_MAX_MEMORY, RowSource, tiled_analysis, tiled_synthesis

_MAX_SYMBOLS_PER_BYTE = 1 << 18
"""A symbol costs at least -log2(65534 / 65536) bits with 16-bit tables: < 181,000 symbols per byte.
A header claiming more is corrupt; checking it avoids allocating latents for a bogus image size."""


class Likelihoods(NamedTuple):
    """Elementwise likelihoods of the latent and the hyperlatent."""

    y: torch.Tensor
    z: torch.Tensor


class HiFiCOutput(NamedTuple):
    """What :meth:`HiFiC.forward` returns.

    ``likelihoods`` are those the rate is trained on (noisy in training, rounded in evaluation);
    ``bpp`` is their rate in bits per (unpadded) pixel, averaged over the batch, and
    ``bpp_rounded`` the rate of the actually rounded values, with no gradient; ``beta`` the realism weight per
    image that g_s used (models with ``arch.realism_conditioning``, else ``None``).
    """

    x_hat: torch.Tensor
    y_hat: torch.Tensor
    likelihoods: Likelihoods
    bpp: torch.Tensor
    bpp_rounded: torch.Tensor
    beta: torch.Tensor | None = None


class Compressed(bytes):
    """What :meth:`HiFiC.compress` returns: the bytes of a .hfc file, carrying the model's rate estimate.

    ``estimated_bits`` is -log2 of the likelihoods of z_hat and y_hat under the entropy models, the
    size an ideal entropy coder would reach (the file adds its header, CRCs and the coder's overhead).
    """

    estimated_bits: float

    def __new__(cls, data: bytes, estimated_bits: float) -> Compressed:
        obj = super().__new__(cls, data)
        obj.estimated_bits = estimated_bits
        return obj


def as_image_batch(x: torch.Tensor) -> torch.Tensor:
    """Check that ``x`` is one or more RGB images (3, H, W) / (B, 3, H, W), float in [0, 1] or uint8; return it 4-D."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected an image tensor, got {type(x).__name__}")
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or x.shape[1] != 3 or x.shape[-1] < 1 or x.shape[-2] < 1:
        raise ValueError(f"expected an RGB image of shape (3, H, W) or (B, 3, H, W), got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x
    if not x.is_floating_point():
        raise ValueError(f"expected a float image in [0, 1] or a uint8 image, got dtype {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("the image contains NaN or infinite values")
    return x


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
    :meth:`update`, :meth:`compress` and :meth:`decompress` turn images into .hfc bytes and back.
    """

    def __init__(self, arch: ArchConfig | None = None) -> None:
        super().__init__()
        self.arch = arch = arch or ArchConfig()
        c, n = arch.latent_channels, arch.hyper_filters
        self.g_a = Encoder(
            arch.encoder_widths,
            c,
            arch.norm,
            padding=arch.padding,
            stride_pad=arch.encoder_stride_pad,
            image_range=arch.image_range,
        )
        self.g_s = Generator.from_arch(arch)
        self.h_a = HyperAnalysis(c, n, padding=arch.hyper_analysis_padding, kernel=arch.hyper_analysis_kernel)
        self.h_s_mu = HyperSynthesis(c, n)
        self.h_s_sigma = HyperSynthesis(c, n)
        self.entropy_bottleneck = FactorizedPrior(n, final_gate=arch.hyper_density_final_gate)
        self.conditional = make_conditional(arch.latent_likelihood)
        self.h_s_mu_int = IntegerConvNet(self.h_s_mu.net)
        self.h_s_sigma_int = IntegerConvNet(self.h_s_sigma.net)

    @classmethod
    def from_preset(cls, name: str) -> HiFiC:
        """Build the model of a named preset (``hific``, ``small``, ``tiny``)."""
        return cls(arch_preset(name))

    def hyper_decode(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, sigma) of the latent from the quantized hyperlatent."""
        return self.h_s_mu(z_hat), self.h_s_sigma(z_hat)

    def forward(self, x: torch.Tensor, beta: float | torch.Tensor | None = None) -> HiFiCOutput:
        """Encode, quantize (noise proxy for the rate in training) and reconstruct ``x`` (at realism ``beta``:
        :meth:`Generator.betas`, drawn per image in training)."""
        height, width = x.shape[-2:]
        image_multiple, latent_multiple = self.pad_multiples(x)
        y = pad_to_multiple(self.g_a(pad_to_multiple(x, image_multiple)), latent_multiple)
        z = self.h_a(y)
        z_hat, pz, pz_hat = self.entropy_bottleneck(z)  # z_hat is z + noise in training
        mu, sigma = self.hyper_decode(z_hat)
        y_hat, py, py_hat = self.conditional(y, mu, sigma)
        beta = self.g_s.betas(beta, x.shape[0], x.device)
        x_hat = crop(self.g_s(y_hat, beta), height, width)
        num_pixels = x.shape[0] * height * width
        likelihoods = Likelihoods(py, pz)
        with torch.no_grad():
            bpp_rounded = bits_per_pixel(Likelihoods(py_hat, pz_hat), num_pixels)
        return HiFiCOutput(x_hat, y_hat, likelihoods, bits_per_pixel(likelihoods, num_pixels), bpp_rounded, beta)

    def pad_multiples(self, x: torch.Tensor) -> tuple[int, int]:
        """(image, y) padding multiples: (64, 1), or with ``arch.pad_scheme="jt"`` the JT port's (16, 4) (same
        y shape) for images of at least 64 px a side (smaller ones, which the port cannot code, get (64, 1))."""
        if self.arch.pad_scheme == "jt" and min(x.shape[-2:]) >= PAD_MULTIPLE:
            return JT_IMAGE_MULTIPLE, JT_LATENT_MULTIPLE
        return PAD_MULTIPLE, 1

    def analysis(
        self, x: torch.Tensor, max_memory: int | None = DEFAULT_MAX_MEMORY, progress: bool | None = False
    ) -> torch.Tensor:
        """g_a on images (B, 3, H, W) of any size (float in [0, 1], or uint8), reflect-padded to a
        multiple of 64 (``arch.pad_scheme="jt"``: to 16, then y to 4); y (B, C, H'/16, W'/16) in float32.

        Runs on tiles within ``max_memory`` bytes of working memory (``None``: whole image; see
        :mod:`hific_lit.tiling`); ``progress`` shows a bar over tiles (``None``: on a terminal, when
        there is more than one). The image stays where it is: each tile is padded, moved to g_a's
        device and given its precision as it is cut, so a large uint8 image is never copied whole.
        """
        image_multiple, latent_multiple = self.pad_multiples(x)
        y = pad_to_multiple(tiled_analysis(self.g_a, x, max_memory, progress, image_multiple), latent_multiple)
        return y.to(next(self.h_a.parameters()).device, torch.float32).contiguous()

    def synthesis(
        self,
        y_hat: torch.Tensor | RowSource,
        max_memory: int | None = DEFAULT_MAX_MEMORY,
        progress: bool | None = False,
        uint8: bool = False,
        beta: float | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """g_s: the padded reconstruction, float32 in [0, 1] (not yet clamped) or, with ``uint8``, rounded
        to 8 bits tile by tile; tiled like :meth:`analysis`; at realism ``beta`` (``Generator.betas``)."""
        weight = next(self.g_s.parameters())
        y_hat = y_hat if isinstance(y_hat, RowSource) else y_hat.to(weight.device, weight.dtype)
        with self.g_s.applied(self.g_s.betas(beta, y_hat.shape[0], weight.device)):
            x_hat = tiled_synthesis(self.g_s, y_hat, max_memory, progress, uint8)
        return x_hat if uint8 else x_hat.float()

    @torch.no_grad()
    def update(self, force: bool = False) -> None:
        """Build what real coding needs, once (unless ``force``), as buffers that travel in the state dict.

        The entropy models' tables, and h_s frozen into integers (for hyperlatents within the
        range the z tables cover).
        """
        self.entropy_bottleneck.update(force)
        self.conditional.update(force)
        if force or not (self.h_s_mu_int.built and self.h_s_sigma_int.built):
            tables = self.entropy_bottleneck.tables
            reach = torch.maximum(-tables.offset, tables.offset + tables.length - 2).float()
            bound = float((self.entropy_bottleneck.medians().flatten().abs().cpu() + reach.cpu()).max()) + 1.0
            self.h_s_mu_int.update(self.h_s_mu.net, bound)
            self.h_s_sigma_int.update(self.h_s_sigma.net, bound)

    @property
    def coding_ready(self) -> bool:
        """Whether :meth:`update` has built everything :meth:`compress` and :meth:`decompress` need."""
        return (
            self.entropy_bottleneck.tables.built
            and self.conditional.tables.built
            and self.h_s_mu_int.built
            and self.h_s_sigma_int.built
        )

    def require_coding(self) -> None:
        """Raise :class:`CheckpointError` unless :attr:`coding_ready`."""
        if not self.coding_ready:
            raise CheckpointError(
                "this model has no coding tables: call model.update() after training, or load a checkpoint "
                "exported with hific_lit.checkpoint.save_inference_checkpoint"
            )

    def hyper_synthesis_exact(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, sigma) from z_hat by the integer h_s: float64 multiples of 2**-16, the same on every device."""
        return self.h_s_mu_int(z_hat), self.h_s_sigma_int(z_hat)

    @torch.no_grad()
    def compress(
        self, x: torch.Tensor, max_memory: int | None = DEFAULT_MAX_MEMORY, progress: bool | None = False
    ) -> Compressed:
        """One image (3, H, W) or (1, 3, H, W), float in [0, 1] or uint8 -> the bytes of a .hfc file and the
        rate estimate. A uint8 image is converted to float tile by tile (large images in little memory).

        ``max_memory`` and ``progress`` go to g_a's tiling (see :meth:`analysis`); the file does not
        depend on them.
        """
        x = as_image_batch(x)
        if x.shape[0] != 1:
            raise ValueError(f"compress codes one image; got a batch of {x.shape[0]} (use compress_batch)")
        self.require_coding()
        return self.compress_latent(self.analysis(x, max_memory, progress), *x.shape[-2:])

    @torch.no_grad()
    def compress_latent(self, y: torch.Tensor, height: int, width: int) -> Compressed:
        """Code one latent y (1, C, h, w) of an image of ``height`` x ``width`` (format version 2)."""
        self.require_coding()
        code, out = code_latent(self, y), io.BytesIO()
        write_hfc_to(self, code, height, width, out)  # (hific_lit.hfc_writer.compress_to_file: straight to a file)
        return Compressed(out.getbuffer(), code.bits)

    @torch.no_grad()
    def decompress(
        self,
        data: bytes,
        max_memory: int | None = DEFAULT_MAX_MEMORY,
        progress: bool | None = False,
        uint8: bool = False,
        beta: float | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """.hfc bytes (format 2, or 1) -> the image (1, 3, H, W), float in [0, 1] or, with ``uint8``, 8-bit
        (rounded tile by tile: large images in little memory); malformed input raises BitstreamError.
        ``beta``: the realism of a conditioned model's reconstruction (the file does not depend on it)."""
        header, y_hat = self.decompress_latent(data, by_rows=True)
        x_hat = crop(self.synthesis(y_hat, max_memory, progress, uint8, beta), header.height, header.width)
        return x_hat if uint8 else x_hat.clamp_(0.0, 1.0)

    @torch.no_grad()
    def decompress_latent(self, data: bytes, by_rows: bool = False) -> tuple[Header, torch.Tensor | RowSource]:
        """Check ``data`` against this model and decode y_hat (1, C, h, w), float32 (``by_rows``, format 2: in bands
        for :meth:`synthesis`, in g_s's precision, each let go once used: ``decode_latent_rows``)."""
        header, z_stream, y_stream = unpack(data)
        self.require_coding()
        self._check_shapes(header)
        if header.version == 1:
            return header, format_v1.decode_latent(self, header, z_stream, y_stream)
        self._check_model(header)
        z_hat = self.entropy_bottleneck.decompress(z_stream, header.z_shape[1:])
        if by_rows:
            return header, decode_latent_rows(self, y_stream, z_hat, (1, *header.y_shape), next(self.g_s.parameters()))
        return header, decode_latent(self, y_stream, z_hat, (1, *header.y_shape))

    def compress_batch(
        self, x: torch.Tensor, max_memory: int | None = DEFAULT_MAX_MEMORY, progress: bool | None = False
    ) -> list[Compressed]:
        """A batch (B, 3, H, W) -> one .hfc file per image (g_a runs on the whole batch)."""
        x = as_image_batch(x)
        self.require_coding()
        with torch.no_grad():
            y = self.analysis(x, max_memory, progress)
        return [self.compress_latent(y[i : i + 1], *x.shape[-2:]) for i in range(x.shape[0])]

    def decompress_batch(
        self, data: list[bytes], max_memory: int | None = DEFAULT_MAX_MEMORY, progress: bool | None = False, **kw: Any
    ) -> list[torch.Tensor]:
        """Decode each byte string (images may differ in size); ``kw``: :meth:`decompress`'s ``beta`` and ``uint8``."""
        return [self.decompress(d, max_memory, progress, **kw) for d in data]

    def _check_model(self, header: Header) -> None:
        expected = self.fingerprint()
        if header.fingerprint != expected:
            raise BitstreamError(
                f"the file was made by another model (fingerprint {header.fingerprint.hex()}, "
                f"this model's is {expected.hex()}); decode it with the checkpoint that encoded it"
            )
        if header.likelihood != self.conditional.code:
            raise BitstreamError(
                f"the file's latent likelihood (code {header.likelihood}) is not this model's "
                f"({self.conditional.kind}, code {self.conditional.code})"
            )

    def _check_shapes(self, header: Header) -> None:
        yh, yw = padded_size(header.height) // 16, padded_size(header.width) // 16
        expected_y = (self.arch.latent_channels, yh, yw)
        expected_z = (self.arch.hyper_filters, math.ceil(yh / 4), math.ceil(yw / 4))
        if header.y_shape != expected_y or header.z_shape != expected_z:
            raise BitstreamError(
                f"the header's latent shapes {header.y_shape} / {header.z_shape} do not fit a "
                f"{header.height}x{header.width} image coded by this model ({expected_y} / {expected_z})"
            )
        streams = (("hyperlatent", expected_z, header.z_length), ("latent", expected_y, header.y_length))
        for name, shape, length in streams:
            if math.prod(shape) > _MAX_SYMBOLS_PER_BYTE * length:
                raise BitstreamError(
                    f"the header claims a {header.height}x{header.width} image, but its {name} stream of {length} "
                    f"bytes cannot hold {math.prod(shape)} symbols (corrupt header)"
                )

    def fingerprint(self) -> bytes:
        """8-byte BLAKE2b of what decoding (format 2) depends on; cached until a weight changes.

        The architecture's fields that differ from the defaults (JSON), every buffer built by
        :meth:`update` (tables, integer h_s; floats as float64), the medians of z (float64) and g_s's
        weights rounded to bfloat16, so that a bf16 or float64 copy of a model shares its fingerprint.
        The float h_s and g_a are not included: decoding does not use them.
        """
        built = [(f"{name}.{b}", t) for name, m in self.named_modules() if isinstance(m, CodingBuffers)
                 for b, t in m.named_buffers(recurse=False)]  # fmt: skip
        parts = [*built, ("medians", self.entropy_bottleneck.quantiles[:, 0, 1])]
        parts += [(f"g_s.{k}", v) for k, v in self.g_s.state_dict().items() if v.is_floating_point()]
        key = tuple((name, t.data_ptr(), t._version, t.dtype, str(t.device)) for name, t in parts)
        cached = self.__dict__.get("_fingerprint_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        defaults = ArchConfig().to_dict()
        arch = {k: v for k, v in self.arch.to_dict().items() if v != defaults.get(k)}
        digest = hashlib.blake2b(digest_size=FINGERPRINT_SIZE)
        digest.update(json.dumps(arch, sort_keys=True).encode())
        for name, tensor in parts:
            digest.update(name.encode())
            kind = torch.bfloat16 if name.startswith("g_s.") else torch.float64
            for piece in tensor.detach().cpu().unbind(0) if tensor.dim() > 1 else (tensor.detach().cpu(),):
                piece = piece.to(kind) if piece.is_floating_point() else piece  # row by row: small copies
                digest.update(piece.contiguous().reshape(-1).view(torch.uint8).numpy())
        self.__dict__["_fingerprint_cache"] = (key, digest.digest())
        return digest.digest()

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
