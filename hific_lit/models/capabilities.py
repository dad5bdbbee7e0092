"""What a model declares it can do beyond coding at one operating point: callers ask this, never the model's class."""

from __future__ import annotations

import dataclasses

from hific_lit.errors import SettingError
from hific_lit.models.rate import RateRange


@dataclasses.dataclass(frozen=True)
class RealismRange:
    """Realism chosen at decode time (MRIC, Agustsson et al. 2023): β in [0, ``beta_max``], ``default_beta``
    when none is asked for. The same file decodes at any β."""

    beta_max: float
    default_beta: float

    def beta(self, realism: float) -> float:
        """The β of a realism in 0..1 (0: lowest distortion, 1: ``beta_max``)."""
        if not 0.0 <= realism <= 1.0:
            raise SettingError(f"realism {realism} is outside 0..1 (0: beta 0, the lowest distortion; 1: beta_max)")
        return realism * self.beta_max


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What a model can do beyond coding at its one operating point; callers ask this, never the model's class.

    ``realism``: the decode-time realism range of a realism-conditioned model (``None``: one operating point).
    ``error_bound``: the largest K that ``compress(max_error=K)`` keeps on every 8-bit pixel value (``None``: no
    residual coder attached; :mod:`hific_lit.models.error_bound`).
    ``rate``: the encode-time rate range of a rate-conditioned model (``None``: one rate; :mod:`hific_lit.models.rate`).
    """

    realism: RealismRange | None = None
    error_bound: int | None = None
    rate: RateRange | None = None
