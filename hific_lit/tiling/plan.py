"""Choosing tiles: as few pixels computed as possible, each tile's working memory within a budget.

A cut between two tiles costs a halo on either side of it, so the plan that computes the fewest
pixels is not always square tiles: a long thin image gets long thin tiles, and a 1024² image under
a budget that fits half of it gets two halves rather than four quarters.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import torch

from hific_lit.tiling.memory import MEMORY_SAFETY, MemoryBudgetError, activation_peak_bytes, format_bytes
from hific_lit.tiling.stage import Stage


class TilePlan(NamedTuple):
    """Core intervals along rows and columns (input pixels); the tiles are their product."""

    rows: list[tuple[int, int]]
    cols: list[tuple[int, int]]

    @property
    def count(self) -> int:
        return len(self.rows) * len(self.cols)


def split_axis(length: int, parts: int, align: int) -> list[tuple[int, int]]:
    """Cut ``length`` into ``parts`` intervals starting at multiples of ``align``, as equal as that allows."""
    units = length // align
    cuts = [(k * units // parts) * align for k in range(parts + 1)]
    return list(itertools.pairwise(cuts))


def largest_extent(length: int, parts: int, stage: Stage) -> int:
    """Span of the largest tile (core plus halos, within the axis) when ``length`` is cut in ``parts``."""
    core = -(-(length // stage.align) // parts) * stage.align
    halos = {1: 0, 2: max(stage.halo, stage.halo_after)}.get(parts, stage.overlap)
    return min(length, core + halos)


def fewest_parts(length: int, limit: int, stage: Stage) -> int | None:
    """Fewest parts whose largest tile spans at most ``limit``; ``None`` if no cut achieves it."""
    for parts in (1, 2):
        if largest_extent(length, parts, stage) <= limit:
            return parts
    per = (limit - stage.overlap) // stage.align
    if per <= 0:
        return None
    return max(3, -(-(length // stage.align) // per))


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
    key = (type(stage.module).__name__, shapes, stage.scale, batch, channels, dtype, device)
    if key not in _PER_PIXEL_CACHE:
        side = 8 * stage.align
        peak = activation_peak_bytes(stage.module, (batch, channels, side, side), dtype)
        _PER_PIXEL_CACHE[key] = MEMORY_SAFETY * peak / side**2
    return _PER_PIXEL_CACHE[key]


def plan_tiles(stage: Stage, shape: torch.Size, dtype: torch.dtype, max_memory: int | None) -> TilePlan:
    """The tiling of an input of ``shape`` that computes the fewest pixels within ``max_memory`` bytes per tile.

    ``None`` means no budget: one tile, the whole input. Every number of rows is tried with the
    fewest columns that then fit; ties go to fewer tiles.
    """
    batch, channels, height, width = shape
    if height % stage.align or width % stage.align:
        raise ValueError(f"input {height}x{width} is not a multiple of the stage's stride {stage.align}")
    if max_memory is None:
        return TilePlan([(0, height)], [(0, width)])
    per_pixel = bytes_per_pixel(stage, batch, channels, dtype)
    area = int(max_memory / per_pixel)
    best: tuple[int, int, int, int] | None = None
    for rows in range(1, height // stage.align + 1):
        extent_h = largest_extent(height, rows, stage)
        cols = fewest_parts(width, area // extent_h, stage) if extent_h <= area else None
        if cols is None:
            continue
        computed = (height + stage.overlap * (rows - 1)) * (width + stage.overlap * (cols - 1))
        candidate = (computed, rows * cols, rows, cols)
        best = candidate if best is None or candidate < best else best
    if best is None:
        smallest = per_pixel * (stage.align + stage.overlap) ** 2
        raise MemoryBudgetError(
            f"a memory budget of {format_bytes(max_memory)} is too small: the smallest tile of "
            f"{stage.name} needs about {format_bytes(smallest)}"
        )
    _, _, rows, cols = best
    return TilePlan(split_axis(height, rows, stage.align), split_axis(width, cols, stage.align))
