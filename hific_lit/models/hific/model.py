"""The HiFiC codec: g_a, the mean-scale hyperprior and g_s.

::

    x ──pad──► g_a ──y──► h_a ──z──► Q ──z_hat──┬─► factorized prior ─► p(z_hat)
                │                               ├─► h_s_mu    ─► mu
                │                               └─► h_s_sigma ─► sigma
                └─► y ─► Q(y - mu) + mu = y_hat ─► conditional(mu, sigma) ─► p(y_hat)
                                          y_hat ─► g_s ─► crop ─► x_hat

Real coding (``compress`` and ``decompress`` of the :class:`~hific_lit.models.base.Codec` interface) follows
the same diagram with the entropy models' coders (:meth:`HiFiC.code_latent`, :meth:`HiFiC.decode_latent`): the
z-stream, then h_s computed exactly in integers (so that the scale indexes and means, and hence y_hat, are the
same on every device; .hfc format version 2), then the y-stream. The conditional is Gaussian (the authors') or
logistic (``ArchConfig.latent_likelihood``). The conditional discriminator D(x or x_hat | y_hat) is not part of
the codec: the GAN stage (:class:`hific_lit.training.gan.GANStage`) holds it.

Mentzer et al. 2020, "High-Fidelity Generative Image Compression", Fig. 2.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, NamedTuple

import torch
from torch import nn

from hific_lit.entropy import FactorizedPrior, IntegerConvNet, make_conditional
from hific_lit.entropy.coder import write_stream
from hific_lit.entropy.rate_gains import RateGains
from hific_lit.entropy.tables import CodingBuffers
from hific_lit.errors import BitstreamError
from hific_lit.io.container import Header, Unpacked
from hific_lit.models.base import Codec, LatentCode
from hific_lit.models.capabilities import Capabilities, RealismRange
from hific_lit.models.fingerprint import FingerprintPart
from hific_lit.models.hific import format_v1
from hific_lit.models.hific.arch import ARCH_PRESETS, ArchConfig
from hific_lit.models.hific.latent_bands import (
    decode_latent,
    decode_latent_rows,
    hyper_analysis,
    quantize_latent,
)
from hific_lit.models.hific.rate_coding import GainedLatent
from hific_lit.models.rate import RATE_SECTION, RateRange, section_rate_steps
from hific_lit.nn import Encoder, Generator, HyperAnalysis, HyperSynthesis
from hific_lit.nn.padding import PAD_MULTIPLE, crop, pad_to_multiple, padded_size
from hific_lit.nn.port_layers import JT_IMAGE_MULTIPLE, JT_LATENT_MULTIPLE
from hific_lit.nn.realism import check_beta
from hific_lit.tiling import DEFAULT_MAX_MEMORY, RowSource, tiled_analysis, tiled_synthesis


class Likelihoods(NamedTuple):
    """Elementwise likelihoods of the latent and the hyperlatent."""

    y: torch.Tensor
    z: torch.Tensor


class HiFiCOutput(NamedTuple):
    """What :meth:`HiFiC.forward` returns.

    ``likelihoods`` are those the rate is trained on (noisy in training, rounded in evaluation);
    ``bpp`` is their rate in bits per (unpadded) pixel, averaged over the batch, and
    ``bpp_rounded`` the rate of the actually rounded values, with no gradient; ``beta`` the realism weight per
    image that g_s used (models with ``arch.realism_conditioning``, else ``None``); ``rate`` the rate R per image
    (models with ``arch.rate_conditioning``, else ``None``); ``image_bpp`` and ``image_bpp_rounded`` the two rates
    of each image (B,), whose means are ``bpp`` and ``bpp_rounded``.
    """

    x_hat: torch.Tensor
    y_hat: torch.Tensor
    likelihoods: Likelihoods
    bpp: torch.Tensor
    bpp_rounded: torch.Tensor
    beta: torch.Tensor | None = None
    rate: torch.Tensor | None = None
    image_bpp: torch.Tensor | None = None
    image_bpp_rounded: torch.Tensor | None = None


class ParameterGroups(NamedTuple):
    """Disjoint parameter sets, one per optimizer."""

    codec: list[nn.Parameter]
    aux: list[nn.Parameter]


def bits_per_pixel(likelihoods: Likelihoods, num_pixels: int) -> torch.Tensor:
    """-sum(log2 p) over latents and hyperlatents of each image (B,), divided by its number of pixels."""
    bits = sum(-torch.log(p).flatten(1).sum(1) for p in likelihoods) / math.log(2.0)
    return bits / num_pixels


ENCODER_TRAINING = ("hyper_analysis_kernel",)
"""Architecture fields that change only how the encoder side trains, not what it computes: not fingerprinted."""


class HiFiC(Codec):
    """HiFiC's codec: encoder, mean-scale hyperprior, generator (a :class:`~hific_lit.models.base.Codec`).

    Images are float tensors (B, 3, H, W) in [0, 1] of any size; they are reflect-padded to a
    multiple of 64 and the reconstruction is cropped back. As in the authors' ``model.py``, g_a
    sees the image in [0, 1] and g_s's output is the reconstruction (no range mapping). After
    :meth:`update`, :meth:`compress` and :meth:`decompress` turn images into .hfc bytes and back.
    """

    kind = "hific"
    arch_class = ArchConfig
    presets = ARCH_PRESETS

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
        self.rate_gains = RateGains(arch.rate_anchors, c, arch.rate_gain_spread) if arch.rate_conditioning else None

    @property
    def capabilities(self) -> Capabilities:
        """Realism chosen at decode time when g_s is realism-conditioned (MRIC), the rate at encode time when the
        model is rate-conditioned (gain units), beside what every model can (the error bound, with a residual coder)."""
        capabilities = super().capabilities
        if self.g_s.conditioned:
            capabilities = replace(capabilities, realism=RealismRange(self.g_s.beta_max, self.g_s.default_beta))
        if self.rate_gains is not None:
            capabilities = replace(capabilities, rate=RateRange(self.rate_gains.anchors))
        return capabilities

    @property
    def file_sections(self) -> frozenset[str]:  # type: ignore[override]
        """What every model reads (the error bound's residual), and a rate-conditioned model's ``rate`` section."""
        return Codec.file_sections | ({RATE_SECTION} if self.rate_gains is not None else set())

    def set_default_beta(self, beta: float) -> None:
        """Decode at realism ``beta`` (in [0, β_max]) when none is asked for."""
        if not self.g_s.conditioned:
            raise self.not_realism_conditioned()
        self.g_s.default_beta = float(check_beta(beta, self.g_s.beta_max, 1, torch.device("cpu"))[0])

    def hyper_decode(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, sigma) of the latent from the quantized hyperlatent."""
        return self.h_s_mu(z_hat), self.h_s_sigma(z_hat)

    def forward(
        self, x: torch.Tensor, beta: float | torch.Tensor | None = None, rate: float | torch.Tensor | None = None
    ) -> HiFiCOutput:
        """Encode, quantize (noise proxy for the rate in training) and reconstruct ``x`` (at realism ``beta``:
        :meth:`Generator.betas`, drawn per image in training; a rate-conditioned model at rate ``rate``:
        :meth:`rates`, an anchor drawn per image in training)."""
        height, width = x.shape[-2:]
        image_multiple, latent_multiple = self.pad_multiples(x)
        y = pad_to_multiple(self.g_a(pad_to_multiple(x, image_multiple)), latent_multiple)
        z = self.h_a(y)
        z_hat, pz, pz_hat = self.entropy_bottleneck(z)  # z_hat is z + noise in training
        mu, sigma = self.hyper_decode(z_hat)
        rate = self.rates(rate, x.shape[0], x.device)
        if rate is None:
            y_hat, py, py_hat = self.conditional(y, mu, sigma)
        else:  # the residual's gain before quantization, its inverse gain after (hific_lit.entropy.rate_gains)
            gain, inverse = self.rate_gains(rate)
            y_gained, py, py_hat = self.conditional(y * gain, mu * gain, sigma * gain)
            y_hat = (y_gained - mu * gain) * inverse + mu
        beta = self.g_s.betas(beta, x.shape[0], x.device)
        x_hat = crop(self.g_s(y_hat, beta), height, width)
        likelihoods = Likelihoods(py, pz)
        image_bpp = bits_per_pixel(likelihoods, height * width)
        with torch.no_grad():
            image_bpp_rounded = bits_per_pixel(Likelihoods(py_hat, pz_hat), height * width)
        return HiFiCOutput(
            x_hat, y_hat, likelihoods, image_bpp.mean(), image_bpp_rounded.mean(), beta, rate, image_bpp,
            image_bpp_rounded,
        )  # fmt: skip

    def rates(self, rate: float | torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor | None:
        """R per image (batch,) of a rate-conditioned model: ``rate`` (a number or one per image, in [0, 1]), else in
        training an anchor drawn per image, else the default rate; ``None`` for a fixed-rate model (which refuses a
        rate)."""
        if self.rate_gains is None:
            if rate is not None:
                raise ValueError("this model has one rate (trained without arch.rate_conditioning); drop rate")
            return None
        if rate is None:
            if self.training:
                return self.rate_gains.draw(batch, device)
            rate = self.capabilities.rate.default
        values = torch.as_tensor(rate, dtype=torch.float32, device=device).reshape(-1).expand(batch)
        if not bool(((values >= 0) & (values <= 1)).all()):
            raise ValueError(f"rate must lie in 0..1, got {rate}")
        return values

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
        if self.rate_gains is not None:
            self.rate_gains.update(force)
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
            and (self.rate_gains is None or self.rate_gains.frozen.built)
        )

    def hyper_synthesis_exact(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, sigma) from z_hat by the integer h_s: float64 multiples of 2**-16, the same on every device."""
        return self.h_s_mu_int(z_hat), self.h_s_sigma_int(z_hat)

    def code_latent(self, latent: torch.Tensor) -> LatentCode:
        """h_a, the z-stream, and the symbols of y (1, C, h, w) given z_hat (Mentzer et al. 2020, Fig. 2);
        the y-stream is coded as the file is written. A rate-conditioned model codes at its default rate."""
        if self.rate_gains is not None:
            return self.rate_coder(latent).code(self.capabilities.rate.steps(self.capabilities.rate.default))
        prior = self.entropy_bottleneck
        z = hyper_analysis(self, latent)
        z_stream = prior.compress(z)
        z_hat = prior.dequantize(prior.symbols(z))
        symbols, indexes, y_bits = quantize_latent(self, latent, z_hat)
        tables = self.conditional.tables

        def write_y(write: Any) -> None:
            write_stream(write, tables, symbols, indexes)

        shapes = (tuple(latent.shape[1:]), tuple(z.shape[1:]))
        return LatentCode(*shapes, z_stream, write_y, prior.estimate_bits(z_hat) + y_bits, self.conditional.code)

    def rate_coder(self, latent: torch.Tensor) -> GainedLatent:
        """One latent (1, C, h, w) ready to be coded at any rate (rate-conditioned models): h_a, the z-stream and
        the integer h_s done once (:class:`~hific_lit.models.hific.rate_coding.GainedLatent`)."""
        if self.rate_gains is None:
            return super().rate_coder(latent)
        return GainedLatent(self, latent)

    def expected_shapes(self, height: int, width: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """y at 1/16 and z at 1/64 of the image padded to a multiple of 64 (the JT padding gives the same shapes)."""
        yh, yw = padded_size(height) // 16, padded_size(width) // 16
        return (self.arch.latent_channels, yh, yw), (self.arch.hyper_filters, math.ceil(yh / 4), math.ceil(yw / 4))

    def check_header(self, header: Header, sections: Iterable[str] = ()) -> None:
        """The checks of every model, then (format 2 on) the latent likelihood."""
        super().check_header(header, sections)
        if header.version >= 2 and header.likelihood != self.conditional.code:
            raise BitstreamError(
                f"the file's latent likelihood (code {header.likelihood}) is not this model's "
                f"({self.conditional.kind}, code {self.conditional.code})"
            )

    def decode_latent(self, unpacked: Unpacked, by_rows: bool) -> torch.Tensor | RowSource:
        """y_hat (1, C, h, w), float32 (``by_rows``, format 2: in bands for :meth:`synthesis`, in g_s's precision,
        each let go once used: ``decode_latent_rows``); a version-1 file through its own reader."""
        header, z_stream, y_stream, sections = unpacked
        if header.version == 1:
            return format_v1.decode_latent(self, header, z_stream, y_stream)
        gains = None
        if self.rate_gains is not None:
            steps = section_rate_steps(sections)
            if steps is None:
                raise BitstreamError(
                    "the file has no rate section, which every file of this rate-conditioned model has"
                )
            gains = self.rate_gains.at(steps)
        z_hat = self.entropy_bottleneck.decompress(z_stream, header.z_shape[1:])
        shape = (1, *header.y_shape)
        if by_rows:
            return decode_latent_rows(self, y_stream, z_hat, shape, next(self.g_s.parameters()), gains)
        return decode_latent(self, y_stream, z_hat, shape, gains)

    def fingerprint_parts(self) -> tuple[dict[str, Any], list[FingerprintPart]]:
        """What decoding (format 2) depends on: the architecture's fields that differ from the defaults, every
        buffer built by :meth:`update` (tables, integer h_s; floats as float64), the medians of z (float64) and
        g_s's weights as bfloat16, so that a bf16 or float64 copy of a model shares its fingerprint. The float
        h_s, g_a and h_a are not included: decoding does not use them; nor is how h_a's kernels train
        (``hyper_analysis_kernel``), so that converting a model between the two forms keeps its files decoding."""
        defaults = ArchConfig().to_dict()
        arch = {k: v for k, v in self.arch.to_dict().items() if v != defaults.get(k) and k not in ENCODER_TRAINING}
        built = [(f"{name}.{b}", t, torch.float64) for name, m in self.named_modules() if isinstance(m, CodingBuffers)
                 for b, t in m.named_buffers(recurse=False)]  # fmt: skip
        parts = [*built, ("medians", self.entropy_bottleneck.quantiles[:, 0, 1], torch.float64)]
        parts += [(f"g_s.{k}", v, torch.bfloat16) for k, v in self.g_s.state_dict().items() if v.is_floating_point()]
        if self.rate_gains is not None:  # the inverse gains shape the pixels, as g_s does
            parts.append(("rate_gains.log_inverse_ratio", self.rate_gains.log_inverse_ratio, torch.bfloat16))
        return arch, parts

    def settle_tails(self, steps: int, lr: float = 0.5) -> float:
        """``steps`` Adam steps on :meth:`aux_loss` over the quantiles, keeping the medians; the final aux loss.

        After a short run (minutes on a CPU) the lower and upper quantiles are still far from the density's
        tails, so the z tables would escape-code many symbols and files would be larger than the rate the
        model learned; the aux loss needs no data.
        """
        (quantiles,) = self.parameter_groups().aux
        medians = quantiles.detach()[:, :, 1].clone()
        optimizer = torch.optim.Adam([quantiles], lr=lr)
        with torch.enable_grad():
            for _ in range(steps):
                optimizer.zero_grad(set_to_none=True)
                self.aux_loss().backward()
                optimizer.step()
        with torch.no_grad():
            quantiles[:, :, 1] = medians
        return float(self.aux_loss().detach())

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
