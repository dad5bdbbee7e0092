"""The rate chosen at encode time, for every rate-capable model: the ``rate`` section and the per-image searches.

A rate-capable model (``Capabilities.rate``, e.g. HiFiC with ``arch.rate_conditioning``) codes an image at any rate
R in [0, 1] (0: its lowest-rate anchor, 1: its highest); the file stores R in a ``rate`` section (.hfc version 3),
so that the decoder applies the same gains. On top of that the :class:`~hific_lit.models.base.Codec` interface
offers two per-image targets, searched here with the model's own rate estimate (cheap: a rate-capable model runs its
transforms once per image) and checked against the bytes of the real file:

- ``target_bpp=B``: a file within ±2 % of B bits per pixel, or the reachable end (R = 0 or 1) with a note;
- ``max_bytes=N``: the highest rate whose file fits N bytes (never more; within 5 % below N when some rate
  reaches it), or an error when even R = 0 does not fit.
"""

from __future__ import annotations

import dataclasses
import math
import struct
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol

import torch

from hific_lit.entropy.rate_gains import RATE_STEPS
from hific_lit.errors import BitstreamError, SettingError
from hific_lit.io.container import register_section

RATE_SECTION = "rate"
RATE_TAG = 2
"""The ``rate`` section of a .hfc file: R_q as uint16 little-endian, R = R_q / 65535 (docs/hfc-format.md)."""
register_section(RATE_TAG, RATE_SECTION)
_RATE = struct.Struct("<H")
TARGET_TOLERANCE = 0.02
"""``target_bpp``: a file within ±2 % of the target counts as on target."""
BUDGET_SLACK = 0.05
"""``max_bytes``: a file within 5 % below the budget is close enough (when a rate reaches it)."""
MAX_CODINGS = 8
"""Real codings (files written in memory) one search may make before it settles for its best file."""


@dataclasses.dataclass(frozen=True)
class RateRange:
    """The encode-time rate of a rate-capable model: R in [0, 1], ``anchors`` trained rates at R = k / (anchors − 1)
    (continuous in between), ``default`` when no rate or target is asked for."""

    anchors: int
    default: float = 0.5

    def steps(self, rate: float) -> int:
        """R (in 0..1, else :class:`SettingError`) as the integer stored in the file."""
        rate = float(rate)
        if not 0.0 <= rate <= 1.0:
            raise SettingError(f"rate {rate:g} is outside 0..1 (0: the model's lowest rate, 1: its highest)")
        return round(rate * RATE_STEPS)


def rate_of_steps(steps: int) -> float:
    """R of a stored R_q."""
    return steps / RATE_STEPS


def rate_section(steps: int) -> bytes:
    """The bytes of a ``rate`` section holding R_q."""
    return _RATE.pack(steps)


def section_rate_steps(sections: Mapping[str, bytes]) -> int | None:
    """R_q of a file's sections (None without a ``rate`` section); a malformed one is a :class:`BitstreamError`."""
    data = sections.get(RATE_SECTION)
    if data is None:
        return None
    if len(data) != _RATE.size:
        raise BitstreamError(f"the .hfc rate section holds {len(data)} bytes, not {_RATE.size} (corrupt)")
    return _RATE.unpack(data)[0]


class RateRequest(NamedTuple):
    """What the caller asked for: one fixed rate (``steps``), or a target (``target_bpp`` / ``max_bytes``)."""

    steps: int | None = None
    target_bpp: float | None = None
    max_bytes: int | None = None


def rate_request(
    capability: RateRange | None,
    rate: float | None = None,
    target_bpp: float | None = None,
    max_bytes: int | None = None,
    max_error: int | None = None,
) -> RateRequest | None:
    """The checked request of ``compress(rate=, target_bpp=, max_bytes=)``: ``None`` for a fixed-rate model asked for
    nothing; the default rate for a rate-capable one asked for nothing; a :class:`SettingError` for two of them at
    once, a value out of range, any of them for a model with one rate, or a target with ``max_error`` (the error
    bound's residual comes on top of the file the target is for)."""
    asked = {
        name: v for name, v in (("rate", rate), ("target_bpp", target_bpp), ("max_bytes", max_bytes)) if v is not None
    }
    if capability is None:
        if asked:
            raise SettingError(
                f"this model has one rate (trained without arch.rate_conditioning); drop {', '.join(asked)}"
            )
        return None
    if len(asked) > 1:
        raise SettingError(f"give one of rate, target_bpp and max_bytes, not {' and '.join(asked)}")
    if max_error is not None and (target_bpp is not None or max_bytes is not None):
        raise SettingError("max_error adds a residual on top of the file: use it with rate, not with a target size")
    if target_bpp is not None:
        if not (math.isfinite(target_bpp) and target_bpp > 0):
            raise SettingError(f"target_bpp must be a positive number of bits per pixel, got {target_bpp}")
        return RateRequest(target_bpp=float(target_bpp))
    if max_bytes is not None:
        if int(max_bytes) != max_bytes or max_bytes < 1:
            raise SettingError(f"max_bytes must be a positive whole number of bytes, got {max_bytes}")
        return RateRequest(max_bytes=int(max_bytes))
    return RateRequest(steps=capability.steps(capability.default if rate is None else rate))


class RateCoder(Protocol):
    """One image's latent, ready to be coded at any rate (what a rate-capable model's ``rate_coder`` returns)."""

    def estimate_bits(self, steps: int) -> float:
        """The model's estimate of the coded latent in bits at R_q = ``steps`` (cheap)."""

    def code(self, steps: int) -> Any:
        """The :class:`~hific_lit.models.base.LatentCode` at R_q = ``steps`` (with its ``rate`` section)."""


class FileEstimate(float):
    """What ``Codec.compress_to_file`` returns: the model's estimate of the file in bits (a float), with the rate R
    the file was coded at (``rate``, rate-conditioned models) and a note when a target was out of reach (``note``)."""

    rate: float | None
    note: str | None

    def __new__(cls, bits: float, rate: float | None = None, note: str | None = None) -> FileEstimate:
        obj = super().__new__(cls, bits)
        obj.rate, obj.note = rate, note
        return obj


class RateChoice(NamedTuple):
    """A search's result: the file's bytes, its R_q, the model's estimate in bits, and a note (or None)."""

    data: bytes
    steps: int
    bits: float
    note: str | None = None


Estimate = Callable[[int], float]
"""R_q -> the model's estimate of the latent's size in bits (ideal coding), cheap."""
Encode = Callable[[int], tuple[bytes, float]]
"""R_q -> (the bytes of the whole .hfc file, the estimate in bits) at that rate: a real coding."""


class _Search:
    """Caches of one image's estimates and codings, and the step solver both searches use."""

    def __init__(self, estimate: Estimate, encode: Encode) -> None:
        self._estimate, self._encode = estimate, encode
        self.estimates: dict[int, float] = {}
        self.files: dict[int, tuple[bytes, float]] = {}

    def estimate(self, steps: int) -> float:
        if steps not in self.estimates:
            self.estimates[steps] = self._estimate(steps)
        return self.estimates[steps]

    def size(self, steps: int) -> int:
        """Bytes of the real file at R_q (coded once)."""
        if steps not in self.files:
            self.files[steps] = self._encode(steps)
        return len(self.files[steps][0])

    def choice(self, steps: int, note: str | None = None) -> RateChoice:
        data, bits = self.files[steps]
        return RateChoice(data, steps, bits, note)

    def predicted_bytes(self, steps: int) -> float:
        """The file's size predicted from the estimate, corrected by the coded file nearest in R (its bytes over
        its estimate: the header, the CRCs and the coder's overhead)."""
        if not self.files:
            return self.estimate(steps) / 8
        nearest = min(self.files, key=lambda s: abs(s - steps))
        ratio = len(self.files[nearest][0]) / max(self.estimate(nearest) / 8, 1.0)
        return ratio * self.estimate(steps) / 8

    def solve(self, goal: float, low: int, high: int) -> int:
        """The R_q in [low, high] whose predicted size is nearest ``goal`` bytes (predicted sizes grow with R):
        regula falsi in (R_q, log size), Illinois-modified, down to one step or 0.2 %."""
        log_goal = math.log(goal)

        def f(steps: int) -> float:
            return math.log(max(self.predicted_bytes(steps), 1e-9)) - log_goal

        f_low, f_high = f(low), f(high)
        if f_low >= 0:
            return low
        if f_high <= 0:
            return high
        side = 0
        while high - low > 1:
            guess = low + (high - low) * f_low / (f_low - f_high)
            mid = min(high - 1, max(low + 1, round(guess)))
            f_mid = f(mid)
            if abs(f_mid) < 0.002:
                return mid
            if f_mid < 0:
                low, f_low = mid, f_mid
                f_high = f_high / 2 if side == -1 else f_high
                side = -1
            else:
                high, f_high = mid, f_mid
                f_low = f_low / 2 if side == 1 else f_low
                side = 1
        return low if -f(low) <= f(high) else high


def search_target_bpp(estimate: Estimate, encode: Encode, pixels: int, target_bpp: float) -> RateChoice:
    """The file nearest ``target_bpp`` (within ±:data:`TARGET_TOLERANCE` when some R reaches it): solve for R with the
    estimate, code, correct the estimate by the file's bytes, repeat; at the end of the range, that end with a note."""
    search = _Search(estimate, encode)
    goal = target_bpp * pixels / 8
    below, above = -1, RATE_STEPS + 1  # the rates known to give too small / too large a file
    for _ in range(MAX_CODINGS):
        if above - below <= 1:
            break
        steps = search.solve(goal, below + 1, above - 1)
        size = search.size(steps)
        if abs(size / goal - 1) <= TARGET_TOLERANCE:
            return search.choice(steps)
        below, above = (steps, above) if size < goal else (below, steps)
    best = min(search.files, key=lambda s: abs(len(search.files[s][0]) - goal))
    bpp = 8 * len(search.files[best][0]) / pixels
    if best == 0 and bpp > target_bpp:
        note = f"target {target_bpp:g} bpp is below this model's lowest rate for this image: {bpp:.4f} bpp at rate 0"
    elif best == RATE_STEPS and bpp < target_bpp:
        note = f"target {target_bpp:g} bpp is above this model's highest rate for this image: {bpp:.4f} bpp at rate 1"
    else:
        note = f"no rate gives {target_bpp:g} bpp within ±{TARGET_TOLERANCE:.0%} for this image: nearest {bpp:.4f} bpp"
    return search.choice(best, note)


def search_max_bytes(estimate: Estimate, encode: Encode, max_bytes: int) -> RateChoice:
    """The file of the highest rate found that fits ``max_bytes`` (never over it; within :data:`BUDGET_SLACK` below
    it unless even R = 1 is smaller, then with a note); a :class:`SettingError` when even R = 0 does not fit."""
    search = _Search(estimate, encode)
    goal = max_bytes * (1 - BUDGET_SLACK / 3)  # aim inside the window, away from both of its ends
    fits, over = -1, RATE_STEPS + 1  # the highest rate known to fit, the lowest known not to
    for _ in range(MAX_CODINGS):
        if over - fits <= 1:
            break
        steps = search.solve(goal, fits + 1, over - 1)
        if search.size(steps) > max_bytes:
            over = steps
            continue
        fits = steps
        if search.size(steps) >= (1 - BUDGET_SLACK) * max_bytes:
            break
    if fits < 0:
        if search.size(0) > max_bytes:
            raise SettingError(
                f"max_bytes {max_bytes}: the smallest file this model makes of this image is {search.size(0)} bytes"
                " (rate 0)"
            )
        fits = 0
    note = None
    if fits == RATE_STEPS and search.size(fits) < (1 - BUDGET_SLACK) * max_bytes:
        note = f"the highest rate fits max_bytes {max_bytes} with room: {search.size(fits)} bytes at rate 1"
    return search.choice(fits, note)


def search_rate(request: RateRequest, estimate: Estimate, encode: Encode, pixels: int) -> RateChoice:
    """The file for ``request``: at its fixed rate, or searched for its target."""
    if request.steps is not None:
        data, bits = encode(request.steps)
        return RateChoice(data, request.steps, bits)
    if request.target_bpp is not None:
        return search_target_bpp(estimate, encode, pixels, request.target_bpp)
    return search_max_bytes(estimate, encode, request.max_bytes)


class RateControlled:
    """What the :class:`~hific_lit.models.base.Codec` interface gets for the encode-time rate: the hook a
    rate-conditioned model implements (:meth:`rate_coder`) and the coding of one latent at a request."""

    def rate_coder(self, latent: torch.Tensor) -> RateCoder:
        """One latent (1, ...) of ``analysis``, ready to be coded at any rate (rate-conditioned models only)."""
        raise NotImplementedError(f"this {self.kind} model has one rate")

    def rate_choice(self, latent: torch.Tensor, height: int, width: int, request: RateRequest) -> RateChoice:
        """The file of ``latent`` (an image of ``height`` x ``width``) at the rate of ``request``, or searched for its
        target, each candidate a whole file in memory (``file_bytes``)."""
        coder = self.rate_coder(latent)

        def encode(steps: int) -> tuple[bytes, float]:
            code = coder.code(steps)
            return self.file_bytes(code, height, width), code.bits

        return search_rate(request, coder.estimate_bits, encode, height * width)
