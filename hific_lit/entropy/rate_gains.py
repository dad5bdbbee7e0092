"""Gain units: one model for every rate, the rate R in [0, 1] chosen at encode time.

After Cui et al. 2021 ("Asymmetric Gained Deep Image Compression With Continuous Rate Adaptation", CVPR;
arXiv:2003.02012): K learned vectors of per-channel gains (the *anchors*, trained with K rate targets), a learned
inverse gain per anchor before synthesis (asymmetric: not tied to 1/gain; learned here as its ratio to 1/gain,
``g' = 2^b / g``, so that from the start the decoder undoes the gain and b learns only the reconstruction's
offset), and any rate between two anchors by exponential interpolation, ``g = g_k^(1-l) · g_k+1^l`` (linear in
log2 g). As QVRF (Tong et al. 2023) and Kamisli et al. 2024 (arXiv:2402.18930) scale the quantization step, the
gain here scales the residual that the mean-scale model codes, so that the hyperprior (h_a, h_s, the z tables) is
the same at every rate::

    symbols = round((y − μ) · g)        coded with the table of scale σ · g
    ŷ       = symbols · g' + μ          g' the inverse gain, before g_s

Anchor k sits at R = k / (K − 1). g_a, h_a and h_s run once per image; a rate only changes the elementwise
work after them, which makes searching a rate for a file size cheap (:mod:`hific_lit.models.rate`).

What the decoder needs before the symbols, the table index of σ · g, is computed in integers, so a file decodes
identically on any device (.hfc format 2's promise; docs/hfc-format.md, "The rate section"): R is stored as
``R_q = round(R · 65535)``; :meth:`RateGains.update` freezes each anchor's log2 gains into integers ``A`` in
1/256 octave and the mantissas ``M_r = round(2^30 · 2^(r/256))``; the gain of channel c at R_q is
``n_c = round((A_k·(65535 − f) + A_k+1·f) / 65535)`` 1/256 octaves (``R_q·(K − 1) = 65535·k + f``), the exact
number ``g_c = M_(n mod 256) · 2^(n div 256) / 2^30``, and the table index comes from
``floor(q_σ · g_c)`` (``q_σ`` = σ in units of 2^-16, exact from the integer h_s) by the same integer thresholds as
an unconditioned model's. The inverse gain ``g' = 2^b / g_c`` (b interpolated like the gains, from its float
anchors) only shapes pixels, like g_s, and is computed in floating point.
"""

from __future__ import annotations

import torch
from torch import nn

from hific_lit.entropy.ops import check_codable
from hific_lit.entropy.tables import THRESHOLD_BITS, CodingBuffers

RATE_STEPS = 65535
"""R is stored as an integer R_q in 0..65535 (R = R_q / 65535)."""
STEPS_PER_OCTAVE = 256
"""Frozen log2 gains are integers in units of 1/256 octave (0.27 % apart)."""
MAX_OCTAVES = 7
"""Frozen gains lie within 2^-7 .. 2^7 (a learned gain beyond is clipped when the tables are built)."""
MANTISSA_BITS = 30
SCALE_UNITS_MAX = (1 << 31) - 1
"""σ beyond 2^15 (in units of 2^-16) saturates: with gains of at least 2^-7 its index is the last one anyway."""


class FrozenGains(CodingBuffers):
    """The integers the decoder's table indexes depend on: ``anchors`` (K, C) log2 gains in 1/256 octave and
    ``mantissas`` (256,) = ``round(2^30 · 2^(r/256))``; built by :meth:`RateGains.update`, int64."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("anchors", torch.zeros(0, 0, dtype=torch.int64))
        self.register_buffer("mantissas", torch.zeros(0, dtype=torch.int64))

    @property
    def built(self) -> bool:
        return self.mantissas.numel() == STEPS_PER_OCTAVE


def rate_steps_of(rate: float) -> int:
    """R in [0, 1] as the integer R_q stored in a file (``round(R · 65535)``)."""
    return round(float(rate) * RATE_STEPS)


def _interpolation(steps: int, anchors: int) -> tuple[int, int]:
    """(k, f): R_q lies ``f / 65535`` of the way from anchor k to anchor k + 1 (integers, exact)."""
    if not 0 <= steps <= RATE_STEPS:
        raise ValueError(f"rate step {steps} is outside 0..{RATE_STEPS}")
    position = steps * (anchors - 1)
    k = min(position // RATE_STEPS, anchors - 2)
    return k, position - k * RATE_STEPS


class AppliedGains:
    """The gains of one rate R_q: the exact per-channel gain (float64 values of the rationals above), the steps
    ``n_c``, and the inverse gains ``2^b / g``; what coding and decoding one file at that rate use."""

    def __init__(self, steps: torch.Tensor, mantissas: torch.Tensor, ratio: torch.Tensor, rate_steps: int) -> None:
        self.rate_steps, self.steps = rate_steps, steps
        octaves = torch.div(steps, STEPS_PER_OCTAVE, rounding_mode="floor")
        self.mantissa = mantissas[steps - octaves * STEPS_PER_OCTAVE]
        self.shift = MANTISSA_BITS - octaves
        self.gain = torch.ldexp(self.mantissa.double(), -self.shift)
        self.inverse = torch.exp2(ratio.double()) / self.gain

    @staticmethod
    def _per_channel(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return values.to(like.device)[None, :, None, None]

    def residual(self, y: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
        """What the symbols quantize, before the gain: ``float32(y − μ)`` (μ exact, from the integer h_s)."""
        return (y.to(means.device, torch.float64) - means.double()).float()

    def symbols(self, residual: torch.Tensor) -> torch.Tensor:
        """``round(residual · g)`` (int64) for a residual (B, C, h, w) of :meth:`residual`, checked to be codable."""
        rounded = torch.round(residual.double() * self._per_channel(self.gain, residual))
        check_codable(rounded, "latent y")
        return rounded.long()

    def scaled_units(self, units: torch.Tensor) -> torch.Tensor:
        """``floor(q_σ · g)``, int64, exact: ``(q_σ · M) >> (30 − octaves)`` with q_σ saturated at 2^31 − 1."""
        units = units.long().clamp(0, SCALE_UNITS_MAX)
        return torch.bitwise_right_shift(
            units * self._per_channel(self.mantissa, units), self._per_channel(self.shift, units)
        )

    def indexes(self, units: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
        """The table row of each scale σ · g from q_σ (:func:`scale_units`): the nearest table scale in log scale,
        by the integer ``thresholds`` of the conditional's tables (int64)."""
        return torch.bucketize(self.scaled_units(units), thresholds.to(units.device), right=True)

    def dequantize(self, symbols: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
        """ŷ = symbols · g' + μ, in float64, rounded once to float32 (only the pixels depend on g')."""
        inverse = self._per_channel(self.inverse, means)
        return (symbols.to(means.device, torch.float64) * inverse + means.double()).float()


def scale_units(scales: torch.Tensor) -> torch.Tensor:
    """q_σ: the scales from the integer h_s (float64 multiples of 2^-16) as exact integers, saturated (int64)."""
    units = torch.nan_to_num(scales.double(), nan=0.0).clamp(0.0, SCALE_UNITS_MAX / (1 << THRESHOLD_BITS))
    return torch.floor(units * float(1 << THRESHOLD_BITS)).long()


class RateGains(nn.Module):
    """K anchors of learned per-channel log2 gains g and log2 ratios b of the inverse gain to 1/g (g' = 2^b / g);
    their frozen integers for coding (:class:`FrozenGains`). At first b = 0 (the decoder undoes the gain) and the
    log2 gains are 0 (gains 1: the model starts as the fixed-rate one it may be warm-started from), or, with
    ``spread`` octaves, evenly from ``-spread / 2`` at the first anchor to ``+spread / 2`` at the last."""

    def __init__(self, anchors: int, channels: int, spread: float = 0.0) -> None:
        super().__init__()
        if anchors < 2:
            raise ValueError(f"a rate-conditioned model needs at least 2 anchors, got {anchors}")
        start = (torch.linspace(0.0, 1.0, anchors) - 0.5) * spread
        self.log_gain = nn.Parameter(start[:, None].expand(anchors, channels).clone())
        self.log_inverse_ratio = nn.Parameter(torch.zeros(anchors, channels))
        self.frozen = FrozenGains()

    @property
    def anchors(self) -> int:
        return self.log_gain.shape[0]

    def positions(self) -> torch.Tensor:
        """R of each anchor, k / (K − 1) (float32)."""
        return torch.linspace(0.0, 1.0, self.anchors)

    def draw(self, batch: int, device: torch.device) -> torch.Tensor:
        """One anchor's R per image, uniformly over the anchors (training: every image trains one anchor)."""
        return self.positions().to(device)[torch.randint(self.anchors, (batch,), device=device)]

    def anchor_index(self, rate: torch.Tensor) -> torch.Tensor:
        """The nearest anchor of each R (int64), e.g. to decide each anchor's rate weight."""
        return torch.round(rate.float() * (self.anchors - 1)).long()

    def forward(self, rate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(gain g, inverse gain 2^b / g), each (B, C, 1, 1), at R (B,) in [0, 1], interpolated exponentially between
        the neighbouring anchors (differentiable; exactly 2^log_gain at an anchor)."""
        position = rate.float().clamp(0.0, 1.0) * (self.anchors - 1)
        k = position.floor().long().clamp(max=self.anchors - 2)
        weight = (position - k)[:, None]

        def interpolate(table: torch.Tensor) -> torch.Tensor:
            log2 = table[k] * (1.0 - weight) + table[k + 1] * weight
            return torch.exp2(log2)[:, :, None, None]

        gain = interpolate(self.log_gain)
        return gain, interpolate(self.log_inverse_ratio) / gain

    @torch.no_grad()
    def update(self, force: bool = False) -> None:
        """Freeze the anchors' log2 gains into integers (1/256 octave, within ±7 octaves) and build the mantissas."""
        if self.frozen.built and not force:
            return
        device = self.log_gain.device
        limit = MAX_OCTAVES * STEPS_PER_OCTAVE
        self.frozen.anchors = (
            torch.round(self.log_gain.detach().double() * STEPS_PER_OCTAVE).long().clamp(-limit, limit)
        )
        r = torch.arange(STEPS_PER_OCTAVE, dtype=torch.float64)
        self.frozen.mantissas = torch.round(torch.exp2(r / STEPS_PER_OCTAVE) * 2.0**MANTISSA_BITS).long().to(device)

    def at(self, rate_steps: int) -> AppliedGains:
        """The gains of the rate R_q (``rate_steps``) from the frozen integers (and the float inverse ratios)."""
        k, f = _interpolation(rate_steps, self.anchors)
        anchors = self.frozen.anchors.cpu()
        steps = _round_div(anchors[k] * (RATE_STEPS - f) + anchors[k + 1] * f, RATE_STEPS)
        weight = f / RATE_STEPS
        ratio = self.log_inverse_ratio.detach().double().cpu()
        return AppliedGains(
            steps, self.frozen.mantissas.cpu(), ratio[k] * (1.0 - weight) + ratio[k + 1] * weight, rate_steps
        )


def _round_div(numerator: torch.Tensor, denominator: int) -> torch.Tensor:
    """``round(numerator / denominator)`` of int64 values, halves up, exact."""
    return torch.div(2 * numerator + denominator, 2 * denominator, rounding_mode="floor")
