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

    ``scale`` is output pixels per input pixel; tiles start and end at multiples of ``align`` input
    pixels (the total stride, so that every tile's output grid lies on the whole image's). A tile
    reaches ``halo`` input pixels before its core and ``halo_after`` after it: the first output of a
    core, at input position ``a``, needs inputs from ``a - radius``; the last, at ``b - 1/scale``,
    needs them up to ``b - 1/scale + radius``; both rounded up to ``align``. (For g_a: 48 before,
    only 32 after.)
    """

    module: nn.Module
    name: str
    halo: int
    halo_after: int
    align: int
    scale: Fraction

    @property
    def overlap(self) -> int:
        """Input pixels a cut between two tiles adds: the halos on its two sides."""
        return self.halo + self.halo_after

    @classmethod
    def of(cls, name: str, module: nn.Module, *layers: nn.Module) -> Stage:
        """The stage ``name`` running ``module``, whose computation is ``layers`` in order (see ``receptive_field``)."""
        radius, scale = receptive_field(*layers)
        align = scale.denominator

        def aligned(pixels: int) -> int:
            return -(-pixels // align) * align

        before, after = aligned(math.ceil(radius)), aligned(math.floor(radius - 1 / scale) + 1)
        return cls(module, name, before, after, align, scale)
