"""Conditional entropy models for the latent y given the hyperprior's means and scales.

Both are the mean-scale model of Minnen et al. 2018 (eq. 3), as HiFiC uses it: y is coded as
``round(y - mu)`` under a location-scale density of scale ``s`` convolved with U(-1/2, 1/2).
:class:`GaussianConditional` (the authors' choice) and :class:`LogisticConditional` (the JT port's
``--likelihood_type logistic``) differ only in the standardized CDF; everything else, the scale
table, the coding tables and the coding itself, is :class:`ConditionalEntropyModel`'s.
"""

from __future__ import annotations

import functools
import math
from typing import ClassVar

import torch
from torch import nn

from hific_lit.entropy.coder import decode_stream, encode_stream
from hific_lit.entropy.ops import add_uniform_noise, check_codable, lower_bound, quantize_around
from hific_lit.entropy.tables import (
    SCALE_LOWER_BOUND,
    TAIL_MASS,
    THRESHOLD_BITS,
    CodingTables,
    location_scale_tables,
    scale_table,
    scale_thresholds,
)


def standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    """Phi(x) computed through erfc, accurate far into the lower tail."""
    return 0.5 * torch.erfc(-x / math.sqrt(2.0))


@functools.cache
def _tables(model: type[ConditionalEntropyModel], tail_mass: float) -> tuple[torch.Tensor, ...]:
    """(cdf, length, offset, scales, thresholds) of a conditional kind: the same for every model, built once."""
    scales = scale_table()
    cdf, length, offset = location_scale_tables(model.standardized_cumulative, model.tail_quantile(tail_mass), scales)
    return cdf, length, offset, scales.float(), scale_thresholds(scales.float())


class ConditionalEntropyModel(nn.Module):
    """p(y_hat | mu, s) = F((y - mu) / s) * U(-1/2, 1/2) at integers around mu, for a symmetric standardized CDF F.

    The likelihood is evaluated on the centred magnitude v = |y - mu| as
    ``F((1/2 - v)/s) - F((-1/2 - v)/s)``, which stays accurate in the tails. For real coding,
    :meth:`update` builds one 16-bit table per scale of the scale table (64 scales log-spaced
    from 0.11 to 256) into ``tables``; :meth:`indexes` maps scales to rows, :meth:`compress` /
    :meth:`decompress` code ``round(y - mu)`` with them. Subclasses define only
    :meth:`standardized_cumulative` and :meth:`tail_quantile`.
    """

    kind: ClassVar[str]
    """Name in ``ArchConfig.latent_likelihood``."""
    code: ClassVar[int]
    """Number recorded in the .hfc header (format version 2)."""

    def __init__(
        self, scale_bound: float = SCALE_LOWER_BOUND, likelihood_bound: float = 1e-9, tail_mass: float = TAIL_MASS
    ) -> None:
        super().__init__()
        self.scale_bound = scale_bound
        self.likelihood_bound = likelihood_bound
        self.tail_mass = tail_mass
        self.tables = CodingTables()

    @staticmethod
    def standardized_cumulative(x: torch.Tensor) -> torch.Tensor:
        """F(x), the CDF of the density at location 0 and scale 1."""
        raise NotImplementedError

    @staticmethod
    def tail_quantile(tail_mass: float) -> float:
        """F^-1(1 - tail_mass / 2): the tables cover ``|v| <= ceil(s * tail_quantile)``."""
        raise NotImplementedError

    def likelihood(self, y: torch.Tensor, means: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        """p(y) for y already quantized (or noised), elementwise."""
        scales = lower_bound(scales, self.scale_bound)
        v = torch.abs(y - means)
        cdf = self.standardized_cumulative
        p = cdf((0.5 - v) / scales) - cdf((-0.5 - v) / scales)
        return lower_bound(p, self.likelihood_bound)

    def forward(
        self, y: torch.Tensor, means: torch.Tensor, scales: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(y_hat, p(y_tilde), p(y_hat))``.

        ``y_hat = round(y - mu) + mu`` (straight-through in training) is what the generator sees;
        in training the rate uses ``y_tilde = y + U(-1/2, 1/2)``, in evaluation ``y_hat``.
        """
        y_hat = quantize_around(y, means, straight_through=self.training)
        p_hat = self.likelihood(y_hat, means, scales)
        p_tilde = self.likelihood(add_uniform_noise(y), means, scales) if self.training else p_hat
        return y_hat, p_tilde, p_hat

    def update(self, force: bool = False) -> bool:
        """Build the coding tables (once, unless ``force``); whether they were (re)built."""
        if self.tables.built and not force:
            return False
        self.tables.assign(*_tables(type(self), self.tail_mass))
        return True

    def indexes(self, scales: torch.Tensor) -> torch.Tensor:
        """The table row of each scale: the nearest table scale in log scale (int64, same device).

        Index k is chosen for ``t_k-1 <= floor(2**16 s) < t_k`` with the integer thresholds of
        :func:`~hific_lit.entropy.tables.scale_thresholds`: for the exact multiples of 2**-16 that
        the integer h_s gives, a comparison of integers. NaN counts as 0.
        """
        units = torch.nan_to_num(scales.double(), nan=0.0).clamp(0.0, 2.0**40).mul(float(1 << THRESHOLD_BITS))
        thresholds = self.tables.thresholds.to(scales.device)
        return torch.bucketize(torch.floor(units).long(), thresholds, right=True)

    @staticmethod
    def symbols(y: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
        """The integers coded: ``round(y - mu)`` (int64), checked to be codable."""
        rounded = torch.round(y.to(means.device, means.dtype) - means)
        check_codable(rounded, "latent y")
        return rounded.long()

    @staticmethod
    def dequantize(symbols: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
        """y_hat = symbols + mu, summed in float64 and rounded once to float32 (the same on any device)."""
        return (symbols.to(means.device, torch.float64) + means.double()).float()

    def compress(self, y: torch.Tensor, indexes: torch.Tensor, means: torch.Tensor) -> bytes:
        """Code ``round(y - means)`` with the table rows ``indexes`` into a self-checking stream."""
        return self.compress_symbols(self.symbols(y, means), indexes)

    def decompress(self, stream: bytes, indexes: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
        """y_hat (float32, like ``means``) from a stream of :meth:`compress` with the same indexes and means."""
        return self.dequantize(self.decompress_symbols(stream, indexes), means)

    def compress_symbols(self, symbols: torch.Tensor, indexes: torch.Tensor) -> bytes:
        """Code integer ``symbols`` (any integer type) with the table rows ``indexes`` (any integer type)."""
        return encode_stream(self.tables, symbols, indexes)

    def decompress_symbols(self, stream: bytes, indexes: torch.Tensor) -> torch.Tensor:
        """The symbols of a stream of :meth:`compress_symbols`: int16 on the CPU (int64 if a value needs it)."""
        return decode_stream(stream, self.tables, indexes, "latent", torch.int16)

    def estimate_bits(self, y_hat: torch.Tensor, means: torch.Tensor, scales: torch.Tensor) -> float:
        """-sum(log2 p(y_hat)) under this model: the ideal size of the stream in bits."""
        p = self.likelihood(y_hat.float(), means.to(y_hat.device).float(), scales.to(y_hat.device).float())
        return -torch.log2(p).sum().item()


class GaussianConditional(ConditionalEntropyModel):
    """N(mu, s^2) * U(-1/2, 1/2): the authors' latent likelihood (Mentzer et al. 2020; Minnen et al. 2018)."""

    kind = "gaussian"
    code = 0

    @staticmethod
    def standardized_cumulative(x: torch.Tensor) -> torch.Tensor:
        return standard_normal_cdf(x)

    @staticmethod
    def tail_quantile(tail_mass: float) -> float:
        return math.sqrt(2.0) * torch.special.erfinv(torch.tensor(1.0 - tail_mass, dtype=torch.float64)).item()


class LogisticConditional(ConditionalEntropyModel):
    """Logistic(mu, s) * U(-1/2, 1/2), CDF ``sigmoid((x - mu) / s)``: the JT port's ``--likelihood_type logistic``."""

    kind = "logistic"
    code = 1

    @staticmethod
    def standardized_cumulative(x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x)

    @staticmethod
    def tail_quantile(tail_mass: float) -> float:
        return math.log(2.0 / tail_mass - 1.0)


CONDITIONALS: dict[str, type[ConditionalEntropyModel]] = {
    model.kind: model for model in (GaussianConditional, LogisticConditional)
}


def make_conditional(kind: str, **kwargs: float) -> ConditionalEntropyModel:
    """The conditional entropy model named ``kind`` (``gaussian`` or ``logistic``)."""
    try:
        return CONDITIONALS[kind](**kwargs)
    except KeyError:
        raise ValueError(f"unknown latent likelihood {kind!r}; known: {', '.join(CONDITIONALS)}") from None


def conditional_for_code(code: int) -> type[ConditionalEntropyModel] | None:
    """The conditional kind recorded as ``code`` in a .hfc header, or None for an unknown code."""
    return next((model for model in CONDITIONALS.values() if model.code == code), None)
