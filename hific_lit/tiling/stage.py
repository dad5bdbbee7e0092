"""A fully convolutional network, with the numbers tiling needs: its halo, stride and scale."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from torch import nn

from hific_lit.tiling.receptive import receptive_field


@dataclass(frozen=True)
class Stage:
    """A fully convolutional network with what tiling needs to know about it.

    ``scale`` is output pixels per input pixel; tiles start at multiples of ``align`` input pixels
    (the total stride, so that every tile's output grid lies on the whole image's); ``halo`` is the
    receptive-field radius rounded up to a multiple of ``align``.
    """

    module: nn.Module
    halo: int
    align: int
    scale: Fraction

    @classmethod
    def of(cls, module: nn.Module, *layers: nn.Module) -> Stage:
        """The stage running ``module``, whose computation is ``layers`` in order (see ``receptive_field``)."""
        radius, scale = receptive_field(*layers)
        align = scale.denominator
        return cls(module, math.ceil(radius / align) * align, align, scale)
