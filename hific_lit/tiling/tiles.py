"""Tiles: how much memory a network needs per pixel, which tiles fit a budget, and running on them.

**Memory.** A budget is parsed from ``256M`` / ``2G`` / ``none``; what a network needs per pixel is measured.

The peak is measured, not guessed: the network runs once on a small probe tile, on its own device,
under a function mode that adds up the bytes of every tensor storage while it is alive. That is
exact for the tensors the network's Python code creates, for any architecture, dtype, device and
batch size, and it scales with the tile's area. Kernels' private scratch space and allocator slack
come on top; :data:`MEMORY_SAFETY` covers them (measured on CPU, ``scripts/bench_tiling.py``: the
resident set of a whole-image pass grows by 0.8-1.35x the counted bytes for hific's g_a and g_s
upsampling over several runs, and by up to 1.57x for the narrower ``small`` preset, whose transposed
convolutions' scratch space weighs more against its few channels).
(The ``meta`` device would spare the probe's arithmetic, but its kernels for some ops import
torch._dynamo, ~140 MB of resident memory.)

**Plans.** Tiles are chosen so that as few pixels as possible are computed, each tile's working
memory within a budget.

A cut between two tiles costs a halo on either side of it, so the plan that computes the fewest
pixels is not always square tiles: a long thin image gets long thin tiles, and a 1024² image under
a budget that fits half of it gets two halves rather than four quarters.

**Running.** The network runs on overlapping tiles, and the tiles' valid centres are stitched.

Each tile is a *core* (the part of the output it keeps) grown by a *halo* on every side that does
not touch the image border (its size: :class:`~hific_lit.tiling.receptive.Stage`). With halos that
cover the network's receptive field, every kept output sees exactly the input pixels the whole
image would give it, so the stitched result equals whole-image processing up to float rounding
(convolution kernels may sum in another order on another tile shape). At the image border a tile
ends where the image ends, so it pads exactly as the whole image does.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Iterator
from fractions import Fraction
from typing import NamedTuple

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten
from tqdm.auto import tqdm

from hific_lit.errors import SettingError
from hific_lit.io.files import parse_size
from hific_lit.nn.padding import padded_indices
from hific_lit.tiling.receptive import Stage

MEMORY_SAFETY = 1.6
"""Resident bytes per tensor byte counted on the probe: the largest measured ratio (1.57), rounded up."""

DEFAULT_MAX_MEMORY = 384 * 2**20
"""Default working-memory budget of the tiled transforms, per tile.

Small enough that hific codes a 4000x4000 image within 3 GB of resident memory (weights and
whole-image buffers included, ``scripts/bench_tiling.py``), large enough that a 1024² image
needs only 4 tiles for g_a and for g_s's upsampling, and none for g_s's trunk.
"""


class MemoryBudgetError(SettingError):
    """A memory budget is malformed, or too small for even the smallest tile."""


def parse_memory_budget(text: str) -> int | None:
    """A working-memory budget: a size as :func:`hific_lit.io.files.parse_size` reads it, or ``none`` for no tiling."""
    if text.strip().lower() in ("none", "off", "unlimited"):
        return None
    try:
        return parse_size(text)
    except SettingError as exc:
        raise MemoryBudgetError(f"memory budget: {exc}") from None


def format_bytes(size: float) -> str:
    """``size`` in MiB or GiB, for messages."""
    return f"{size / 2**30:.2f} GiB" if size >= 2**30 else f"{size / 2**20:.1f} MiB"


class _LiveBytes(TorchFunctionMode):
    """Tracks the bytes of tensor storages alive during the ops it sees, and their maximum."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._alive: dict[int, weakref.ref] = {}

    def _release(self, key: int, size: int) -> None:
        self.live -= size
        self._alive.pop(key, None)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, torch.Tensor):
                continue
            storage = tensor.untyped_storage()
            key, size = id(storage), storage.nbytes()
            if key not in self._alive:
                self.live += size
                self._alive[key] = weakref.ref(storage, lambda _, k=key, n=size: self._release(k, n))
        self.peak = max(self.peak, self.live)
        return out


def activation_peak_bytes(module: nn.Module, input_shape: tuple[int, ...], dtype: torch.dtype) -> int:
    """Peak bytes of the tensors ``module`` creates on an input of ``input_shape`` (weights excluded).

    Runs ``module`` once on zeros of that shape on the module's device; keep the probe small.
    """
    device = next(module.parameters()).device
    x = torch.zeros(input_shape, dtype=dtype, device=device)
    with torch.no_grad(), _LiveBytes() as tracker:
        module(x)
    return tracker.peak


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
    measured once per process for each structure (parameter shapes and layouts: channels_last
    runs ChannelNorm with fewer temporaries), input and device.
    """
    device = next(stage.module.parameters()).device
    shapes = tuple((tuple(p.shape), p.stride()) for p in stage.module.parameters())
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


def _scaled(value: int, scale: Fraction) -> int:
    scaled = value * scale
    assert scaled.denominator == 1, f"{value} px at scale {scale} is not a whole number of pixels"
    return int(scaled)


class RowSource:
    """An input given by bands of rows, in order (``bands`` yields (first row, end row, those rows)), for a tiled
    stage that asks for them in increasing order: each band is dropped once the stage has moved past it. The
    output of another tiled stage (:meth:`of_stage`; g_s's trunk output, 192-960 channels at latent
    resolution) or a latent decoded in bands then never exists whole. Holds ``shape``, ``dtype``, ``device``."""

    def __init__(self, bands: Iterator[tuple[int, int, torch.Tensor]], height: int) -> None:
        first = next(bands)
        self._bands = bands
        self.shape = torch.Size((*first[2].shape[:2], height, first[2].shape[-1]))
        self.dtype, self.device = first[2].dtype, first[2].device
        self._held = [first]

    @classmethod
    def of_stage(
        cls, stage: Stage, x: torch.Tensor | RowSource, max_memory: int | None, progress: bool | None = False
    ) -> RowSource:
        """``stage.module(x)``, made a row of tiles at a time as they are asked for (:func:`tile_rows`)."""
        return cls(tile_rows(stage, x, max_memory, progress), _scaled(x.shape[-2], stage.scale))

    def window(self, r: slice, c: slice) -> torch.Tensor:
        """Rows ``r`` and columns ``c``; no later call may ask for rows before ``r.start``."""
        r0, r1 = r.start, r.stop
        self._held = [band for band in self._held if band[1] > r0]
        while not self._held or self._held[-1][1] < r1:
            # what is still needed of the bands held is copied out, so that they go before the next one is made
            self._held = [(r0, b1, band[..., r0 - b0 :, :].clone()) if b0 < r0 else (b0, b1, band)
                          for b0, b1, band in self._held]  # fmt: skip
            self._held.append(next(self._bands))
        pieces = [band[..., max(r0, b0) - b0 : min(r1, b1) - b0, c] for b0, b1, band in self._held if b0 < r1]
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=-2)


def _window(
    x: torch.Tensor | RowSource, rows: torch.Tensor | None, cols: torch.Tensor | None, r: slice, c: slice
) -> torch.Tensor:
    """Rows ``r`` and columns ``c`` of ``x``, or of ``x`` padded through the index maps ``rows`` / ``cols``."""
    if isinstance(x, RowSource):
        return x.window(r, c)
    if rows is None or cols is None:
        return x[..., r, c]
    return x.index_select(-2, rows[r].to(x.device)).index_select(-1, cols[c].to(x.device))


class _Input(NamedTuple):
    """What a tiled stage reads: ``x`` (or a :class:`RowSource`), padded through the index maps when they are given."""

    x: torch.Tensor | RowSource
    rows: torch.Tensor | None
    cols: torch.Tensor | None

    @classmethod
    def of(cls, x: torch.Tensor | RowSource, pad_multiple: int | None) -> _Input:
        if pad_multiple is None:
            return cls(x, None, None)
        return cls(x, padded_indices(x.shape[-2], pad_multiple), padded_indices(x.shape[-1], pad_multiple))

    @property
    def shape(self) -> torch.Size:
        size = self.x.shape[-2:] if self.rows is None else (len(self.rows), len(self.cols))
        return torch.Size((*self.x.shape[:2], *size))

    def window(self, r: slice, c: slice) -> torch.Tensor:
        return _window(self.x, self.rows, self.cols, r, c)


def _plan(stage: Stage, source: _Input, max_memory: int | None) -> TilePlan:
    return plan_tiles(stage, source.shape, source.x.dtype, max_memory)


def _tile_outputs(
    stage: Stage, source: _Input, plan: TilePlan, progress: bool | None
) -> Iterator[tuple[tuple[int, int, int, int], torch.Tensor]]:
    """Each tile's kept output in order, rows of tiles one after the other: (its (first row, end row,
    first column, end column) in the output, the output), on the module's device."""
    device = next(stage.module.parameters()).device
    before, after, s = stage.halo, stage.halo_after, stage.scale
    height, width = source.shape[-2:]
    hidden = True if progress is False else (None if progress is None else False)
    tiles = itertools.product(plan.rows, plan.cols)
    for (r0, r1), (c0, c1) in tqdm(tiles, total=plan.count, desc=f"{stage.name} tiles", disable=hidden, leave=False):
        e0, f0 = max(0, r0 - before), max(0, c0 - before)
        window = source.window(slice(e0, min(height, r1 + after)), slice(f0, min(width, c1 + after)))
        with torch.no_grad():  # not around the yield: a generator must not hold a grad mode while suspended
            result = stage.module(window.to(device).contiguous())
        rows = slice(_scaled(r0 - e0, s), _scaled(r1 - e0, s))
        cols = slice(_scaled(c0 - f0, s), _scaled(c1 - f0, s))
        yield (_scaled(r0, s), _scaled(r1, s), _scaled(c0, s), _scaled(c1, s)), result[..., rows, cols]


def tile_rows(
    stage: Stage, x: torch.Tensor | RowSource, max_memory: int | None, progress: bool | None = False
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """:func:`run_tiled`'s output a row of tiles at a time: (first row, end row, those rows of the output)."""
    source = _Input.of(x, None)
    plan = _plan(stage, source, max_memory)
    if plan.count == 1:
        with torch.no_grad():
            whole = stage.module(
                source.window(slice(0, source.shape[-2]), slice(0, source.shape[-1])).to(_device(stage))
            )
        yield 0, whole.shape[-2], whole.to(x.device)
        return
    band: torch.Tensor | None = None
    for (r0, r1, c0, c1), core in _tile_outputs(stage, source, plan, progress):
        if c0 == 0:
            size = (core.shape[0], core.shape[1], r1 - r0, _scaled(source.shape[-1], stage.scale))
            band = torch.empty(size, dtype=core.dtype, device=x.device)
        band[..., c0:c1] = core
        if c1 == band.shape[-1]:
            yield r0, r1, band


def _device(stage: Stage) -> torch.device:
    return next(stage.module.parameters()).device


def run_tiled(
    stage: Stage,
    x: torch.Tensor | RowSource,
    max_memory: int | None,
    progress: bool | None = False,
    pad_multiple: int | None = None,
) -> torch.Tensor:
    """``stage.module(x)`` computed tile by tile, each tile's working memory within ``max_memory`` bytes.

    Tiles move to the module's device and their outputs back to ``x``'s, so an image held in host
    memory can be processed by a network on a GPU. Inference only (runs without autograd).
    ``progress``: a progress bar over the tiles; ``None`` shows one only on a terminal.
    ``pad_multiple``: ``x`` stands for itself padded to that multiple (:func:`hific_lit.nn.padding.pad_to_multiple`);
    each tile gathers its padded rows and columns, so the padded image never exists whole.
    ``x`` may be a :class:`RowSource`: the rows of another stage's output, made as the tiles need them.
    """
    source = _Input.of(x, pad_multiple)
    plan = _plan(stage, source, max_memory)
    height, width = source.shape[-2:]
    out: torch.Tensor | None = None
    with torch.no_grad():
        if plan.count == 1:
            return stage.module(source.window(slice(0, height), slice(0, width)).to(_device(stage))).to(x.device)
        for (r0, r1, c0, c1), core in _tile_outputs(stage, source, plan, progress):
            if out is None:
                size = (core.shape[0], core.shape[1], _scaled(height, stage.scale), _scaled(width, stage.scale))
                out = torch.empty(size, dtype=core.dtype, device=x.device)
            out[..., r0:r1, c0:c1] = core
    assert out is not None
    return out
