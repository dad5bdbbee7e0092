"""How far a fully convolutional network looks (its receptive-field radius, read off its layers), and the
:class:`Stage` that tiling runs: a network with its halo, stride and scale.

Tiled processing is exact when every tile extends beyond the part of the output it keeps by at
least the receptive-field radius: then no kept output sees the tile's own (reflection or zero)
padding, only the same input pixels the whole image would give it.

Positions follow PyTorch's convolution arithmetic with top-left alignment: output ``i`` of a
stride-``s`` convolution sits at input position ``s * i``; output ``o`` of a stride-``s``
transposed convolution sits at input position ``o / s``. A conv with kernel ``k`` and dilation
``d`` then reaches ``d * (k - 1) / 2`` of its own input pixels either side; a transposed conv
reaches ``(k - 1) / 2`` of its output pixels, i.e. ``(k - 1) / (2 s)`` input pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from torch import nn

from hific_lit.nn.layers import ChannelNorm2d, ResidualBlock
from hific_lit.nn.port_layers import AsymmetricPadConv, TanhToUnit, UnitToSymmetric

PER_PIXEL = (
    ChannelNorm2d,
    nn.ReLU,
    nn.LeakyReLU,
    nn.Identity,
    nn.ReflectionPad2d,
    nn.ReplicationPad2d,
    UnitToSymmetric,
    TanhToUnit,
)
"""Layers that act on each pixel on their own (padding is accounted for by the conv after it).

ChannelNorm normalises over channels within a pixel (Mentzer et al. 2020, App. A.3), so a tile
sees no statistics of the rest of the image; instance norm would, and is refused.
"""


class Footprint:
    """Receptive-field radius (in input pixels) and scale (output pixels per input pixel) so far."""

    def __init__(self) -> None:
        self.radius = Fraction(0)
        self.scale = Fraction(1)

    def conv(self, kernel: int, stride: int, dilation: int) -> None:
        self.radius += Fraction(dilation * (kernel - 1), 2) / self.scale
        self.scale /= stride

    def conv_transpose(self, kernel: int, stride: int, dilation: int) -> None:
        self.scale *= stride
        self.radius += Fraction(dilation * (kernel - 1), 2) / self.scale


class NotTileableError(ValueError):
    """A network has a layer whose reach tiling cannot bound (or that uses per-image statistics)."""


def _square(value: int | tuple[int, ...], name: str, layer: nn.Module) -> int:
    values = (value,) if isinstance(value, int) else tuple(value)
    if len(set(values)) != 1:
        raise NotTileableError(f"tiling supports square {name}s only; {layer} has {name} {value}")
    return values[0]


def _off_centre_radius(layer: AsymmetricPadConv) -> int:
    """A centred radius that covers a convolution padded unevenly: the farthest it reaches on any side.

    With ``before`` pixels of padding on a side, output ``i`` reads inputs ``s*i - before`` to
    ``s*i - before + k - 1``, i.e. up to ``max(before, k - 1 - before)`` away from ``s*i``.
    """
    kernel = _square(layer.conv.kernel_size, "kernel_size", layer)
    return max(max(p, kernel - 1 - p) for p in layer.pad)


def _walk(module: nn.Module, fp: Footprint) -> None:
    if isinstance(module, AsymmetricPadConv):
        stride, dilation = (_square(getattr(module.conv, a), a, module) for a in ("stride", "dilation"))
        fp.conv(2 * _off_centre_radius(module) + 1, stride, dilation)
    elif isinstance(module, nn.Conv2d):
        fp.conv(*(_square(getattr(module, a), a, module) for a in ("kernel_size", "stride", "dilation")))
    elif isinstance(module, nn.ConvTranspose2d):
        fp.conv_transpose(*(_square(getattr(module, a), a, module) for a in ("kernel_size", "stride", "dilation")))
    elif isinstance(module, ResidualBlock):
        _walk(module.body, fp)  # the skip adds nothing to the reach
    elif isinstance(module, PER_PIXEL) or (isinstance(module, nn.BatchNorm2d) and not module.training):
        return
    elif isinstance(module, nn.Sequential):
        for child in module.children():
            _walk(child, fp)
    else:
        raise NotTileableError(
            f"cannot work out the receptive field of {type(module).__name__}: tiling supports convolutions, "
            "transposed convolutions, residual blocks and per-pixel layers (ChannelNorm, ReLU, eval-mode "
            "BatchNorm); norms with per-image statistics such as InstanceNorm make tiles differ from the whole image"
        )


def receptive_field(*layers: nn.Module) -> tuple[Fraction, Fraction]:
    """(radius in input pixels, output pixels per input pixel) of ``layers`` applied in order.

    Each layer is a convolution, a per-pixel layer, a residual block or an ``nn.Sequential`` of
    those (nested); skips that add a chain's input to its output add nothing to the reach.
    Examples (paper sizes, Mentzer et al. 2020, App. A.1): g_a reaches ``3 + 1 + 2 + 4 + 8 + 16 = 34``
    image pixels at scale 1/16; g_s's latent-resolution part (head conv and 9 residual blocks)
    reaches ``1 + 9 * 2 = 19`` latent pixels; its upsampling part ``1/2 + 1/4 + 1/8 + 1/16 + 3/16 = 9/8``.
    """
    fp = Footprint()
    for layer in layers:
        _walk(layer, fp)
    return fp.radius, fp.scale


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
