"""HiFiC's coding at a chosen rate (``arch.rate_conditioning``): one image's latent, ready for any rate.

Everything that does not depend on the rate runs once: h_a, the z-stream, the integer h_s. What is kept per
latent element is the residual ``float32(y − μ)`` and σ in units of 2^-16 (int32): 8 bytes, against the 3 bytes
(symbol and table index) of a fixed-rate model's coding. A rate then costs only elementwise work: the model's
estimate (:meth:`GainedLatent.estimate_bits`, for the searches of :mod:`hific_lit.models.rate`) or the symbols,
table indexes and stream (:meth:`GainedLatent.code`). The same rate always gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from hific_lit.entropy.coder import widened_to_hold, write_stream
from hific_lit.entropy.rate_gains import scale_units
from hific_lit.entropy.tables import THRESHOLD_BITS
from hific_lit.models.base import LatentCode
from hific_lit.models.hific.latent_bands import hyper_analysis, hyper_bands
from hific_lit.models.rate import RATE_SECTION, rate_section

if TYPE_CHECKING:
    from hific_lit.models.hific.model import HiFiC

ESTIMATE_ELEMENTS = 1 << 22
"""Latent elements per piece of an estimate (its float64 temporaries: 32 MiB each)."""


class GainedLatent:
    """One latent (1, C, h, w) of a rate-conditioned HiFiC with its rate-independent coding done (a
    :class:`~hific_lit.models.rate.RateCoder`)."""

    def __init__(self, model: HiFiC, latent: torch.Tensor) -> None:
        self.model = model
        prior = model.entropy_bottleneck
        z = hyper_analysis(model, latent)
        self.z_shape = tuple(z.shape[1:])
        self.z_stream = prior.compress(z)
        z_hat = prior.dequantize(prior.symbols(z))
        del z
        self.z_bits = prior.estimate_bits(z_hat)
        self.y_shape = tuple(latent.shape[1:])
        self.residual = torch.empty(0)
        self.units = torch.empty(0, dtype=torch.int32)
        any_gains = model.rate_gains.at(0)
        for r0, r1, mu, sigma in hyper_bands(model, z_hat):
            if not self.residual.numel():
                self.residual = torch.empty(latent.shape, dtype=torch.float32, device=mu.device)
                self.units = torch.empty(latent.shape, dtype=torch.int32, device=mu.device)
            self.residual[:, :, r0:r1] = any_gains.residual(latent[:, :, r0:r1], mu)
            self.units[:, :, r0:r1] = scale_units(sigma).int()
        self._estimates: dict[int, float] = {}

    def _pieces(self) -> list[slice]:
        rows = self.residual.shape[-2]
        step = max(1, ESTIMATE_ELEMENTS // max(1, self.residual[0, :, :1].numel()))
        return [slice(r, min(rows, r + step)) for r in range(0, rows, step)]

    def estimate_bits(self, steps: int) -> float:
        """-log2 of the likelihoods of the symbols at R_q = ``steps`` (the latent's scales times the gains, as in
        training), plus the hyperlatent's: the ideal size in bits."""
        if steps not in self._estimates:
            gains = self.model.rate_gains.at(steps)
            conditional = self.model.conditional
            bits = self.z_bits
            for rows in self._pieces():
                symbols = gains.symbols(self.residual[:, :, rows]).float()
                scales = (
                    self.units[:, :, rows].double()
                    * 2.0**-THRESHOLD_BITS
                    * gains.gain.to(symbols.device)[None, :, None, None]
                )
                p = conditional.likelihood(symbols, torch.zeros_like(symbols), scales.float())
                bits += -torch.log2(p).sum().item()
            self._estimates[steps] = bits
        return self._estimates[steps]

    def code(self, steps: int) -> LatentCode:
        """What the file holds at R_q = ``steps``: the symbols ``round((y − μ) · g)`` and the table rows of σ · g
        (computed exactly, as the decoder does), and the ``rate`` section."""
        gains = self.model.rate_gains.at(steps)
        tables = self.model.conditional.tables
        symbols = torch.empty(self.residual.shape, dtype=torch.int16)
        indexes = torch.empty(self.residual.shape, dtype=torch.uint8)
        for rows in self._pieces():
            values = gains.symbols(self.residual[:, :, rows])
            symbols = widened_to_hold(symbols, values)
            symbols[:, :, rows] = values.cpu()
            indexes[:, :, rows] = gains.indexes(self.units[:, :, rows], tables.thresholds).cpu()

        def write_y(write: Callable[[bytes], None]) -> None:
            write_stream(write, tables, symbols, indexes)

        sections = {RATE_SECTION: rate_section(steps)}
        return LatentCode(
            self.y_shape, self.z_shape, self.z_stream, write_y, self.estimate_bits(steps), self.model.conditional.code,
            sections,
        )  # fmt: skip
