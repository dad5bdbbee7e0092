"""Frozen coding tables: 16-bit quantized CDFs for torchac, built once by the entropy models' ``update()``.

A table row describes one discrete distribution over ``length`` symbols: the integers
``offset, offset + 1, ..., offset + length - 2`` and, last, an overflow bin that stands for every
integer outside that range (the exact value then follows as an escape code, see
:mod:`hific_lit.entropy.coder`). Row ``k`` of ``cdf`` holds the 16-bit start of each symbol's
interval (``cdf[k, 0] = 0``), then the value 0xFFFF up to the common row width: torchac ends the
last symbol of a row at 2**16, so a padded row leaves one unit to a phantom symbol that is never
coded. Values above 32767 are stored as negative int16, as torchac reads them as uint16.

Latent y: 64 scales log-spaced from 0.11 to 256 (as TFC and CompressAI), each a discretized
location-scale density (Gaussian or logistic) of scale s convolved with U(-1/2, 1/2) over
``|v| <= ceil(s * F^-1(1 - tail_mass / 2))``. Hyperlatent z: one row per channel from the
factorized density, bounded by its learned quantiles (Ballé et al. 2018, App. 6.1).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

PRECISION = 16
TOTAL = (1 << PRECISION) - 1
"""Each row's real symbols share 2**16 - 1 units; the last unit belongs to the phantom symbol."""

SCALE_LOWER_BOUND = 0.11
"""sigma >= 0.11, the lowest scale of the coding table (as TFC and CompressAI)."""
SCALE_TABLE_SIZE = 64
SCALE_TABLE_MAX = 256.0
TAIL_MASS = 1e-9
MAX_RADIUS = 4096
"""No table covers more than 2 * 4096 + 1 integers; values beyond go through the escape code."""
THRESHOLD_BITS = 16
"""Scale thresholds are multiples of 2**-16 (see :func:`scale_thresholds`)."""


class CodingBuffers(nn.Module):
    """Base of every module whose buffers are built once for real coding by an ``update()``.

    Such buffers are never trained, never synchronised between DDP ranks and not warm-started
    (each model rebuilds them from its own weights); they travel in inference checkpoints. They are
    empty until built and take the shapes of a loaded state dict.
    """

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:  # type: ignore[override]
        for name, current in list(self._buffers.items()):
            incoming = state_dict.get(prefix + name)
            if current is not None and incoming is not None:
                setattr(self, name, torch.empty(incoming.shape, dtype=current.dtype, device=current.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class CodingTables(CodingBuffers):
    """The buffers of one set of tables: ``cdf`` (K, W) int16, ``length`` (K,), ``offset`` (K,).

    ``scales`` (K,) float32 is the scale each row was built for and ``thresholds`` (K - 1,) int64
    the scales, in units of 2**-16, where the table index steps up (latent tables only; empty for
    the hyperlatent). Integer, so that converting a model to another float dtype leaves them exact.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("cdf", torch.zeros(0, 0, dtype=torch.int16))
        self.register_buffer("length", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("offset", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("scales", torch.zeros(0, dtype=torch.float32))
        self.register_buffer("thresholds", torch.zeros(0, dtype=torch.int64))

    @property
    def built(self) -> bool:
        """Whether the tables hold at least one row."""
        return self.cdf.numel() > 0

    def assign(
        self,
        cdf: torch.Tensor,
        length: torch.Tensor,
        offset: torch.Tensor,
        scales: torch.Tensor | None = None,
        thresholds: torch.Tensor | None = None,
    ) -> None:
        """Replace the tables with copies (buffers keep this module's device)."""
        device = self.cdf.device
        self.cdf = cdf.to(device, torch.int16, copy=True)
        self.length = length.to(device, torch.int64, copy=True)
        self.offset = offset.to(device, torch.int64, copy=True)
        empty = torch.zeros(0)
        self.scales = (empty if scales is None else scales).to(device, torch.float32, copy=True)
        self.thresholds = (empty if thresholds is None else thresholds).to(device, torch.int64, copy=True)


def scale_table(
    size: int = SCALE_TABLE_SIZE, low: float = SCALE_LOWER_BOUND, high: float = SCALE_TABLE_MAX
) -> torch.Tensor:
    """``size`` scales log-spaced from ``low`` to ``high`` (float64)."""
    return torch.exp(torch.linspace(math.log(low), math.log(high), size, dtype=torch.float64))


def scale_thresholds(scales: torch.Tensor) -> torch.Tensor:
    """Where the index of the nearest table scale (in log scale) steps up, in units of 2**-16 (int64).

    ``t_k = ceil(2**16 sqrt(s_k s_k+1))`` in float64; index ``k`` is chosen for
    ``t_k-1 <= floor(2**16 sigma) < t_k``, exact for the multiples of 2**-16 the integer h_s gives.
    Nearest rather than the next larger scale: with 64
    scales (13 % apart) rounding sigma up cost 2-5 % of the latent's rate on photos, as
    low-entropy symbols (sigma < 1) are sensitive to an over-wide table.
    """
    s = scales.double()
    return torch.ceil(torch.sqrt(s[:-1] * s[1:]) * float(1 << THRESHOLD_BITS)).long()


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


def location_scale_tables(
    cumulative: Callable[[torch.Tensor], torch.Tensor],
    tail_quantile: float,
    scales: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(cdf, length, offset) of the discretized densities ``F(x / s) * U(-1/2, 1/2)``, one row per scale.

    ``cumulative`` is the standardized CDF F (symmetric: F(-x) = 1 - F(x)) and ``tail_quantile``
    ``F^-1(1 - tail_mass / 2)``. Row ``k`` covers ``|v| <= ceil(s_k * tail_quantile)``; the overflow
    bin holds both tails, ``2 F(-(radius + 1/2) / s)``.
    """
    scales = scales.double()
    radius = torch.ceil(scales * tail_quantile).long().clamp_(1, MAX_RADIUS)
    width = int(2 * radius.max()) + 2
    v = (torch.arange(width, dtype=torch.float64)[None] - radius[:, None]).abs()
    s = scales[:, None]
    pmf = cumulative((0.5 - v) / s) - cumulative((-0.5 - v) / s)
    overflow = 2.0 * cumulative(-(radius.double() + 0.5) / scales)
    length = 2 * radius + 2
    pmf = torch.where(torch.arange(width)[None] == (length - 1)[:, None], overflow[:, None], pmf)
    freq = quantize_pmfs(pmf, length)
    return cdf_rows(freq, length), length, -radius


def factorized_rows(
    logits_cumulative: Callable[[torch.Tensor], torch.Tensor], quantiles: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(cdf, length, offset) with one row per channel of a factorized density.

    ``logits_cumulative`` maps (C, 1, N) values to the logits of the cumulative; ``quantiles``
    (C, 1, 3) are each channel's lower tail, median and upper tail. Channel c covers the integers
    from ``-ceil(median - lower)`` to ``ceil(upper - median)`` around its median; the overflow bin
    gets both tails' mass.
    """
    quantiles = quantiles.detach().float().cpu()
    medians = quantiles[:, 0, 1]
    below = torch.ceil(medians - quantiles[:, 0, 0]).clamp(0, MAX_RADIUS).long()
    above = torch.ceil(quantiles[:, 0, 2] - medians).clamp(0, MAX_RADIUS).long()
    values = below + above + 1
    width = int(values.max()) + 1
    grid = torch.arange(width, dtype=torch.float32)[None] - below[:, None].float() + medians[:, None]
    lower = logits_cumulative(grid.unsqueeze(1) - 0.5)
    upper = logits_cumulative(grid.unsqueeze(1) + 0.5)
    sign = -torch.sign(lower + upper)
    pmf = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))[:, 0].double().cpu()
    lower, upper = lower[:, 0].double().cpu(), upper[:, 0].double().cpu()
    channels = torch.arange(pmf.shape[0])
    tails = torch.sigmoid(lower[:, 0]) + torch.sigmoid(-upper[channels, values - 1])
    length = values + 1
    pmf = torch.where(torch.arange(width)[None] == values[:, None], tails[:, None], pmf)
    freq = quantize_pmfs(pmf, length)
    return cdf_rows(freq, length), length, -below
