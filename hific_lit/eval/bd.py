"""Bjøntegaard delta rate: the mean difference in bitrate between two rate-distortion curves at equal quality.

Bjøntegaard, "Calculation of average PSNR differences between RD-curves" (ITU-T VCEG-M33, 2001): over the quality
range both curves cover, log-rate is interpolated as a function of quality for each curve and the mean difference of
the two integrals gives the rate ratio. Here the interpolation is piecewise cubic and monotone (PCHIP) instead of
the original cubic polynomial fit, which needs four points per curve; three (HiFiC's low, med and high) suffice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator


def bd_rate(reference: Sequence[tuple[float, float]], tested: Sequence[tuple[float, float]]) -> float | None:
    """The tested curve's mean rate change against the reference at equal quality, as a fraction (+0.10: 10 % more
    bits); each curve is (rate, quality) points, quality rising with rate. ``None`` when the curves' quality ranges
    do not overlap, or a curve has fewer than two points."""
    curves = []
    for points in (reference, tested):
        points = sorted(points, key=lambda p: p[1])
        quality = np.array([q for _, q in points], dtype=np.float64)
        if len(points) < 2 or np.any(np.diff(quality) <= 0):
            return None
        curves.append((quality, np.log([r for r, _ in points])))
    low = max(curves[0][0][0], curves[1][0][0])
    high = min(curves[0][0][-1], curves[1][0][-1])
    if not high > low:
        return None
    areas = [PchipInterpolator(q, log_rate).integrate(low, high) for q, log_rate in curves]
    return math.expm1((areas[1] - areas[0]) / (high - low))
