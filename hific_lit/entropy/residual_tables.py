"""Coding tables of the quantized residual: discretized logistics by scale and by the fraction of their mean.

The residual ``r = x - x_hat`` (integers) is quantized with step ``2K + 1`` to ``q`` (see
:mod:`hific_lit.entropy.residual`). Its model is a logistic density in pixel units, mean ``m`` and
scale ``b``, integrated over the pixels each ``q`` stands for, ``[(2K+1) q - K - 1/2, (2K+1) q + K + 1/2]``
(the discretized logistic of PixelCNN++, Salimans et al. 2017, eq. 2, and of L3C / RC, Mentzer et al.
2019, 2020). Divided by ``2K + 1`` this is the unit-bin discretization of a logistic of mean
``m / (2K+1)`` and scale ``b / (2K+1)``, as ``(K + 1/2) / (2K + 1) = 1/2``: one set of tables serves
every K.

A symbol is ``q - c`` with ``c`` the integer nearest the q-domain mean; the row is chosen by the
q-domain scale (``RESIDUAL_SCALES`` log-spaced scales, nearest in log scale) and by which of
``MEAN_BUCKETS`` equal intervals of ``[-1/2, 1/2)`` the mean's remaining fraction lies in (the row is
built for the interval's middle). Everything that maps a prediction to a row is integer
arithmetic on multiples of ``2**-16``, and every constant it uses is stored with the model (built
once by :func:`build_tables`), so that the encoder and any decoder pick the same rows.
"""

from __future__ import annotations

import functools
import math

import torch

from hific_lit.entropy.tables import MAX_RADIUS, cdf_rows, quantize_pmfs

RESIDUAL_SCALES = 48
SCALE_LOW = 0.05
SCALE_HIGH = 64.0
"""q-domain logistic scales 0.05 .. 64 (15.5 % apart). At 0.05 a symbol at the mean costs 0.0004 bits; a
residual of 8-bit pixels never needs a scale above 64 (a logistic of scale 64 has a standard deviation of 116)."""
MEAN_BUCKETS = 8
"""The mean's fraction in 8 steps of 1/8: at the smallest scales the worst bucket costs about 0.03 bits a symbol."""
TAIL_MASS = 1e-9
RADIUS_LIMIT = 512
"""Rows cover at most |q - c| <= 512: |q| <= 255 for 8-bit pixels, the rest goes through the escape code."""
UNITS = 1 << 16
"""Means, log-scales and channel coefficients are integers in units of 2**-16."""
MAX_ERROR_LIMIT = 127
"""The largest supported K: step 255 leaves q in {-1, 0, 1}."""


def logistic_tail_quantile(tail_mass: float = TAIL_MASS) -> float:
    """F^-1(1 - tail_mass / 2) of the standard logistic: rows cover ``|v| <= ceil(s * this)``."""
    return math.log(2.0 / tail_mass - 1.0)


def scale_grid() -> torch.Tensor:
    """The q-domain table scales (float64), log-spaced from ``SCALE_LOW`` to ``SCALE_HIGH``."""
    return torch.exp(torch.linspace(math.log(SCALE_LOW), math.log(SCALE_HIGH), RESIDUAL_SCALES, dtype=torch.float64))


def bucket_centres() -> torch.Tensor:
    """The mean fraction each bucket's rows are built for: the middles of the 8 intervals of [-1/2, 1/2)."""
    return (torch.arange(MEAN_BUCKETS, dtype=torch.float64) + 0.5) / MEAN_BUCKETS - 0.5


@functools.cache
def build_tables() -> tuple[torch.Tensor, ...]:
    """(cdf, length, offset, log_thresholds, log_steps) of the residual's coding.

    Row ``scale * MEAN_BUCKETS + bucket`` covers the symbols ``|v| <= radius(scale)`` of the logistic
    centred at ``bucket_centres()[bucket]``: ``p(v) = F((v + 1/2 - d) / s) - F((v - 1/2 - d) / s)``, the
    tails in the overflow bin. ``log_thresholds`` (RESIDUAL_SCALES - 1, int64) are the log-scale
    midpoints between neighbouring scales and ``log_steps`` (MAX_ERROR_LIMIT + 1, int64) ``ln(2K + 1)``,
    both in units of 2**-16 (see :func:`rows`). Built once per process; callers copy what they keep.
    """
    scales = scale_grid()
    radius = torch.ceil(scales * logistic_tail_quantile()).long().clamp_(1, min(RADIUS_LIMIT, MAX_RADIUS))
    radius = radius.repeat_interleave(MEAN_BUCKETS)
    s = scales.repeat_interleave(MEAN_BUCKETS)[:, None]
    d = bucket_centres().repeat(RESIDUAL_SCALES)[:, None]
    width = int(2 * radius.max()) + 2
    v = torch.arange(width, dtype=torch.float64)[None] - radius[:, None]
    pmf = torch.sigmoid((v + 0.5 - d) / s) - torch.sigmoid((v - 0.5 - d) / s)
    inside = torch.sigmoid((radius[:, None] + 0.5 - d) / s) - torch.sigmoid((-radius[:, None] - 0.5 - d) / s)
    length = 2 * radius + 2
    pmf = torch.where(torch.arange(width)[None] == (length - 1)[:, None], (1.0 - inside).clamp_min(0.0), pmf)
    pmf = torch.where(torch.arange(width)[None] < length[:, None], pmf, 0.0)
    freq = quantize_pmfs(pmf, length)
    log_scales = torch.log(scales)
    log_thresholds = torch.ceil((log_scales[:-1] + log_scales[1:]) / 2 * UNITS).long()
    log_steps = torch.round(torch.log(2.0 * torch.arange(MAX_ERROR_LIMIT + 1, dtype=torch.float64) + 1) * UNITS)
    return cdf_rows(freq, length), length, -radius, log_thresholds, log_steps.long()


def rows(
    mean: torch.Tensor, log_scale: torch.Tensor, step: int, log_thresholds: torch.Tensor, log_step: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(centre c, table row) of each symbol, from int64 pixel-domain ``mean`` and natural ``log_scale``.

    In units of 2**-16, with ``u = step * 2**16`` the q-domain unit: ``c = floor((mean + u/2) / u)``,
    the mean's fraction ``mean + u/2 - c u`` in ``[0, u)`` falls in bucket ``floor(8 (mean + u/2 - c u) / u)``;
    the scale index counts the thresholds ``log_thresholds + ln(step)`` at or below ``log_scale``
    (the nearest table scale to ``b / step`` in log scale). Exact integer arithmetic throughout.
    """
    unit = step * UNITS
    shifted = mean + unit // 2
    centre = torch.div(shifted, unit, rounding_mode="floor")
    bucket = torch.div((shifted - centre * unit) * MEAN_BUCKETS, unit, rounding_mode="floor")
    scale = torch.bucketize(log_scale, log_thresholds.to(log_scale.device) + log_step, right=True)
    return centre, scale * MEAN_BUCKETS + bucket
