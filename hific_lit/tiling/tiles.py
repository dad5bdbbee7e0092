"""Run a fully convolutional network on overlapping tiles and stitch the tiles' valid centres.

Each tile is a *core* (the part of the output it keeps) grown by a *halo* on every side that
does not touch the image border. With a halo of at least the network's receptive-field radius,
every kept output sees exactly the input pixels the whole image would give it, so the stitched
result equals whole-image processing up to float rounding (convolution kernels may sum in another
order on another tile shape). At the image border a tile ends where the image ends, so it pads
exactly as the whole image does.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple

import torch
from torch import nn
from tqdm.auto import tqdm

from hific_lit.tiling.memory import MEMORY_SAFETY, MemoryBudgetError, activation_peak_bytes, format_bytes
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


class TilePlan(NamedTuple):
    """Core intervals along rows and columns (input pixels); the tiles are their product."""

    rows: list[tuple[int, int]]
    cols: list[tuple[int, int]]

    @property
    def count(self) -> int:
        return len(self.rows) * len(self.cols)


def split_axis(length: int, core: int, align: int) -> list[tuple[int, int]]:
    """Cut ``length`` into the fewest intervals of at most ``core``, as equal as ``align`` allows."""
    units, per = length // align, max(1, core // align)
    n = -(-units // per)
    cuts = [(k * units // n) * align for k in range(n + 1)]
    return list(itertools.pairwise(cuts))


_PER_PIXEL_CACHE: dict[tuple, float] = {}


def bytes_per_pixel(stage: Stage, batch: int, channels: int, dtype: torch.dtype) -> float:
    """Working memory per input pixel of a tile, measured on a probe tile and scaled by the safety margin.

    The probe is 8 strides square: small enough to cost little arithmetic (hific's trunk: ~10 GMAC,
    the largest), large enough that the border (padding copies) adds only a little, on the safe
    side, to the per-pixel figure. The figure depends on the network's structure only, so it is
    measured once per process for each structure (parameter shapes), input and device.
    """
    device = next(stage.module.parameters()).device
    shapes = tuple(tuple(p.shape) for p in stage.module.parameters())
    key = (type(stage.module).__name__, shapes, stage.scale, stage.halo, batch, channels, dtype, device)
    if key not in _PER_PIXEL_CACHE:
        side = 8 * stage.align
        peak = activation_peak_bytes(stage.module, (batch, channels, side, side), dtype)
        _PER_PIXEL_CACHE[key] = MEMORY_SAFETY * peak / side**2
    return _PER_PIXEL_CACHE[key]


def _core(length: int, extent: int, halo: int, align: int) -> int:
    """Largest core along an axis whose tile (core plus a halo either side) spans at most ``extent``."""
    return length if extent >= length else (extent - 2 * halo) // align * align


def plan_tiles(stage: Stage, shape: torch.Size, dtype: torch.dtype, max_memory: int | None) -> TilePlan:
    """The fewest, largest tiles of an input of ``shape`` whose working memory fits ``max_memory`` bytes.

    ``None`` means no budget: one tile, the whole input. Tiles are square unless the input is
    narrower than that: then the short side is taken whole and the budget goes to the long one.
    """
    batch, channels, height, width = shape
    if height % stage.align or width % stage.align:
        raise ValueError(f"input {height}x{width} is not a multiple of the stage's stride {stage.align}")
    if max_memory is None:
        return TilePlan([(0, height)], [(0, width)])
    per_pixel = bytes_per_pixel(stage, batch, channels, dtype)
    area = int(max_memory / per_pixel)
    short, long = sorted((height, width))
    extent_short = min(short, math.isqrt(area))
    core_short = _core(short, extent_short, stage.halo, stage.align)
    core_long = _core(long, area // max(extent_short, 1), stage.halo, stage.align)
    core_h, core_w = (core_short, core_long) if height <= width else (core_long, core_short)
    if core_w <= 0 or core_h <= 0:
        smallest = per_pixel * (stage.align + 2 * stage.halo) ** 2
        raise MemoryBudgetError(
            f"a memory budget of {format_bytes(max_memory)} is too small: the smallest tile of "
            f"{type(stage.module).__name__} needs about {format_bytes(smallest)}"
        )
    return TilePlan(split_axis(height, core_h, stage.align), split_axis(width, core_w, stage.align))


def _scaled(value: int, scale: Fraction) -> int:
    scaled = value * scale
    assert scaled.denominator == 1, f"{value} px at scale {scale} is not a whole number of pixels"
    return int(scaled)


def run_tiled(
    stage: Stage,
    x: torch.Tensor,
    max_memory: int | None,
    progress: bool | None = False,
    desc: str = "tiles",
) -> torch.Tensor:
    """``stage.module(x)`` computed tile by tile, each tile's working memory within ``max_memory`` bytes.

    Tiles move to the module's device and their outputs back to ``x``'s, so an image held in host
    memory can be processed by a network on a GPU. Inference only (runs without autograd).
    ``progress``: a progress bar over the tiles; ``None`` shows one only on a terminal.
    """
    batch, _, height, width = x.shape
    plan = plan_tiles(stage, x.shape, x.dtype, max_memory)
    device = next(stage.module.parameters()).device
    halo, s = stage.halo, stage.scale
    out: torch.Tensor | None = None
    tiles = itertools.product(plan.rows, plan.cols)
    with torch.no_grad():
        hidden = True if plan.count == 1 or progress is False else (None if progress is None else False)
        for (r0, r1), (c0, c1) in tqdm(tiles, total=plan.count, desc=desc, disable=hidden, leave=False):
            e0, f0 = max(0, r0 - halo), max(0, c0 - halo)
            tile = x[..., e0 : min(height, r1 + halo), f0 : min(width, c1 + halo)].to(device).contiguous()
            result = stage.module(tile)
            if out is None:
                size = (batch, result.shape[1], _scaled(height, s), _scaled(width, s))
                out = torch.empty(size, dtype=result.dtype, device=x.device)
            rows = slice(_scaled(r0 - e0, s), _scaled(r1 - e0, s))
            cols = slice(_scaled(c0 - f0, s), _scaled(c1 - f0, s))
            out[..., _scaled(r0, s) : _scaled(r1, s), _scaled(c0, s) : _scaled(c1, s)] = result[..., rows, cols]
    assert out is not None
    return out
