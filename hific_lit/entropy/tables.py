"""Frozen coding tables: 16-bit quantized CDFs for torchac, built once by ``HiFiC.update()``.

A table row describes one discrete distribution over ``length`` symbols: the integers
``offset, offset + 1, ..., offset + length - 2`` and, last, an overflow bin that stands for every
integer outside that range (the exact value then follows as an escape code, see
:mod:`hific_lit.entropy.coder`). Row ``k`` of ``cdf`` holds the 16-bit start of each symbol's
interval (``cdf[k, 0] = 0``), then the value 0xFFFF up to the common row width: torchac ends the
last symbol of a row at 2**16, so a padded row leaves one unit to a phantom symbol that is never
coded. Values above 32767 are stored as negative int16, as torchac reads them as uint16.

Latent y: 64 scales log-spaced from 0.11 to 256 (as TFC and CompressAI), each a discretized
Gaussian N(0, s^2) * U(-1/2, 1/2) over ``|v| <= ceil(s * Phi^-1(1 - tail_mass / 2))``.
Hyperlatent z: one row per channel from the factorized density, bounded by its learned
quantiles (Ballé et al. 2018, App. 6.1).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

from hific_lit.entropy.factorized import FactorizedPrior
from hific_lit.entropy.gaussian import SCALE_LOWER_BOUND, standard_normal_cdf

PRECISION = 16
TOTAL = (1 << PRECISION) - 1
"""Each row's real symbols share 2**16 - 1 units; the last unit belongs to the phantom symbol."""

SCALE_TABLE_SIZE = 64
SCALE_TABLE_MAX = 256.0
TAIL_MASS = 1e-9
MAX_RADIUS = 4096
"""No table covers more than 2 * 4096 + 1 integers; values beyond go through the escape code."""


class CodingTables(nn.Module):
    """The buffers of one set of tables: ``cdf`` (K, W) int16, ``length`` (K,), ``offset`` (K,).

    ``scales`` (K,) float32 is the scale each row was built for (latent tables only, empty
    for the hyperlatent). The buffers are empty until built and take the shapes of a loaded
    state dict, so that built tables travel in checkpoints.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("cdf", torch.zeros(0, 0, dtype=torch.int16))
        self.register_buffer("length", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("offset", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("scales", torch.zeros(0, dtype=torch.float32))

    @property
    def built(self) -> bool:
        """Whether the tables hold at least one row."""
        return self.cdf.numel() > 0

    def assign(self, cdf: torch.Tensor, length: torch.Tensor, offset: torch.Tensor, scales: torch.Tensor) -> None:
        """Replace the tables with copies (buffers keep this module's device)."""
        device = self.cdf.device
        self.cdf = cdf.to(device, torch.int16, copy=True)
        self.length = length.to(device, torch.int64, copy=True)
        self.offset = offset.to(device, torch.int64, copy=True)
        self.scales = scales.to(device, torch.float32, copy=True)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:  # type: ignore[override]
        for name in ("cdf", "length", "offset", "scales"):
            incoming = state_dict.get(prefix + name)
            if incoming is not None:
                current = getattr(self, name)
                setattr(self, name, torch.empty(incoming.shape, dtype=current.dtype, device=current.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def scale_table(
    size: int = SCALE_TABLE_SIZE, low: float = SCALE_LOWER_BOUND, high: float = SCALE_TABLE_MAX
) -> torch.Tensor:
    """``size`` scales log-spaced from ``low`` to ``high`` (float64)."""
    return torch.exp(torch.linspace(math.log(low), math.log(high), size, dtype=torch.float64))


def scale_indexes(sigma: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Index of the table scale nearest to sigma in log scale (0 below 0.11 and for NaN), int64.

    ``round((log sigma - log s_0) / step)`` from the log-spacing of ``scales``: ~20x faster than
    a binary search, and the same on encoder and decoder for the same device. Nearest rather than
    the next larger scale: with 64 scales (13 % apart) rounding sigma up cost 2-5 % of the latent's
    rate on photos, as low-entropy symbols (sigma < 1) are sensitive to an over-wide table.
    """
    low, high, size = math.log(scales[0].item()), math.log(scales[-1].item()), scales.numel()
    position = torch.log(sigma.float().clamp_min(scales[0].item())).sub_(low).mul_((size - 1) / (high - low))
    return position.add_(0.5).floor_().clamp_(0, size - 1).long().clamp_(0, size - 1)


def quantize_pmfs(pmf: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """Integer frequencies (K, L), each >= 1 on the first ``length[k]`` bins and summing to ``TOTAL``.

    Finds per row the largest multiplier ``m`` with ``sum(max(1, floor(p * m))) <= TOTAL`` by
    bisection (it lies within ``TOTAL -+ length``, as ``m - length < sum <= m + length``), then
    hands the few remaining units to the bins with the largest remainders. This keeps the
    quantized distribution close to ``pmf`` in KL even for wide tables.
    """
    k, width = pmf.shape
    valid = torch.arange(width).expand(k, width) < length[:, None]
    p = torch.where(valid, pmf.double().clamp_min(0.0), 0.0)
    p = p / p.sum(1, keepdim=True)

    def counts(m: torch.Tensor) -> torch.Tensor:
        return torch.where(valid, torch.floor(p * m[:, None]).clamp_min(1.0), 0.0)

    lo = (TOTAL - length).double()
    hi = (TOTAL + length + 1).double()
    for _ in range(40):
        mid = (lo + hi) / 2
        fits = counts(mid).sum(1) <= TOTAL
        lo, hi = torch.where(fits, mid, lo), torch.where(fits, hi, mid)
    freq = counts(lo)
    deficit = TOTAL - freq.sum(1)
    remainder = torch.where(valid, p * lo[:, None] - torch.floor(p * lo[:, None]), -1.0)
    rank = torch.argsort(torch.argsort(remainder, dim=1, descending=True), dim=1)
    freq = freq + (rank < deficit[:, None]).double()
    return freq.long()


def cdf_rows(freq: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """int16 rows (K, max(length) + 1): interval starts, padded with 0xFFFF (see module docstring)."""
    k, width = freq.shape
    starts = torch.cumsum(freq, 1) - freq
    columns = torch.arange(width + 1).expand(k, width + 1)
    starts = torch.cat([starts, torch.zeros(k, 1, dtype=torch.long)], 1)
    rows = torch.where(columns < length[:, None], starts, TOTAL)
    return torch.where(rows >= 1 << 15, rows - (1 << PRECISION), rows).to(torch.int16)


@functools.cache
def gaussian_tables(
    size: int = SCALE_TABLE_SIZE,
    low: float = SCALE_LOWER_BOUND,
    high: float = SCALE_TABLE_MAX,
    tail_mass: float = TAIL_MASS,
) -> tuple[torch.Tensor, ...]:
    """(cdf, length, offset, scales) of the discretized Gaussians N(0, s^2) * U(-1/2, 1/2).

    One row per scale of :func:`scale_table`; the same for every model, so computed once per process
    (:meth:`CodingTables.assign` copies them).
    """
    scales = scale_table(size, low, high)
    multiplier = math.sqrt(2.0) * torch.special.erfinv(torch.tensor(1.0 - tail_mass, dtype=torch.float64))
    radius = torch.ceil(scales * multiplier).long().clamp_(1, MAX_RADIUS)
    width = int(2 * radius.max()) + 2
    v = (torch.arange(width, dtype=torch.float64)[None] - radius[:, None]).abs()
    s = scales[:, None]
    pmf = standard_normal_cdf((0.5 - v) / s) - standard_normal_cdf((-0.5 - v) / s)
    overflow = 2.0 * standard_normal_cdf(-(radius.double() + 0.5) / scales)
    length = 2 * radius + 2
    pmf = torch.where(torch.arange(width)[None] == (length - 1)[:, None], overflow[:, None], pmf)
    freq = quantize_pmfs(pmf, length)
    return cdf_rows(freq, length), length, -radius, scales.float()


@torch.no_grad()
def factorized_tables(prior: FactorizedPrior) -> tuple[torch.Tensor, ...]:
    """(cdf, length, offset, scales) with one row per channel of the factorized prior.

    Channel c covers the integers from ``-ceil(median - lower quantile)`` to
    ``ceil(upper quantile - median)`` around its median; the overflow bin gets both tails' mass.
    """
    quantiles = prior.quantiles.detach().float().cpu()
    medians = quantiles[:, 0, 1]
    below = torch.ceil(medians - quantiles[:, 0, 0]).clamp(0, MAX_RADIUS).long()
    above = torch.ceil(quantiles[:, 0, 2] - medians).clamp(0, MAX_RADIUS).long()
    values = below + above + 1
    width = int(values.max()) + 1
    device = prior.quantiles.device
    grid = torch.arange(width, dtype=torch.float32)[None] - below[:, None].float() + medians[:, None]
    grid = grid.to(device).unsqueeze(1)
    lower = prior.logits_cumulative(grid - 0.5)
    upper = prior.logits_cumulative(grid + 0.5)
    sign = -torch.sign(lower + upper)
    pmf = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))[:, 0].double().cpu()
    lower, upper = lower[:, 0].double().cpu(), upper[:, 0].double().cpu()
    channels = torch.arange(pmf.shape[0])
    tails = torch.sigmoid(lower[:, 0]) + torch.sigmoid(-upper[channels, values - 1])
    length = values + 1
    pmf = torch.where(torch.arange(width)[None] == values[:, None], tails[:, None], pmf)
    freq = quantize_pmfs(pmf, length)
    return cdf_rows(freq, length), length, -below, torch.zeros(0)
