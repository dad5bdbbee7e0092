"""Bjøntegaard delta rate (VCEG-M33): zero for the same curve, the rate ratio for a curve scaled in rate, and the
sign of a curve that is better at every quality."""

from __future__ import annotations

import math

import pytest

from hific_lit.eval.bd import bd_rate

REFERENCE = [(0.14, 27.0), (0.30, 29.5), (0.45, 30.8)]


def test_the_same_curve_has_no_rate_difference() -> None:
    assert bd_rate(REFERENCE, REFERENCE) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("factor", [0.8, 1.1, 1.5])
def test_a_curve_scaled_in_rate_differs_by_that_factor(factor: float) -> None:
    tested = [(rate * factor, quality) for rate, quality in REFERENCE]
    assert bd_rate(REFERENCE, tested) == pytest.approx(factor - 1, rel=1e-9)


def test_a_curve_with_more_points_and_the_same_shape_in_log_rate() -> None:
    # quality linear in log rate: any points of that line, at any density, give the analytic rate ratio
    line = [(math.exp((q - 30.0) / 4.0), q) for q in (26.0, 28.0, 30.0, 32.0)]
    denser = [(1.07 * math.exp((q - 30.0) / 4.0), q) for q in (25.0, 26.5, 27.0, 29.0, 31.0, 33.0)]
    assert bd_rate(line, denser) == pytest.approx(0.07, rel=1e-9)


def test_curves_that_do_not_overlap_or_are_too_short_have_none() -> None:
    assert bd_rate(REFERENCE, [(1.0, 40.0), (2.0, 42.0)]) is None
    assert bd_rate(REFERENCE, [(0.3, 29.0)]) is None
