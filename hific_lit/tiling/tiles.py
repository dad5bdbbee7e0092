"""Run a fully convolutional network on overlapping tiles and stitch the tiles' valid centres.

Each tile is a *core* (the part of the output it keeps) grown by a *halo* on every side that does
not touch the image border (its size: :class:`~hific_lit.tiling.stage.Stage`). With halos that
cover the network's receptive field, every kept output sees exactly the input pixels the whole
image would give it, so the stitched result equals whole-image processing up to float rounding
(convolution kernels may sum in another order on another tile shape). At the image border a tile
ends where the image ends, so it pads exactly as the whole image does.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import torch
from tqdm.auto import tqdm

from hific_lit.padding import padded_indices
from hific_lit.tiling.plan import plan_tiles
from hific_lit.tiling.stage import Stage


def _scaled(value: int, scale: Fraction) -> int:
    scaled = value * scale
    assert scaled.denominator == 1, f"{value} px at scale {scale} is not a whole number of pixels"
    return int(scaled)


def _window(x: torch.Tensor, rows: torch.Tensor | None, cols: torch.Tensor | None, r: slice, c: slice) -> torch.Tensor:
    """Rows ``r`` and columns ``c`` of ``x``, or of ``x`` padded through the index maps ``rows`` / ``cols``."""
    if rows is None or cols is None:
        return x[..., r, c]
    return x.index_select(-2, rows[r].to(x.device)).index_select(-1, cols[c].to(x.device))


def run_tiled(
    stage: Stage,
    x: torch.Tensor,
    max_memory: int | None,
    progress: bool | None = False,
    pad_multiple: int | None = None,
) -> torch.Tensor:
    """``stage.module(x)`` computed tile by tile, each tile's working memory within ``max_memory`` bytes.

    Tiles move to the module's device and their outputs back to ``x``'s, so an image held in host
    memory can be processed by a network on a GPU. Inference only (runs without autograd).
    ``progress``: a progress bar over the tiles; ``None`` shows one only on a terminal.
    ``pad_multiple``: ``x`` stands for itself padded to that multiple (:func:`hific_lit.padding.pad_to_multiple`);
    each tile gathers its padded rows and columns, so the padded image never exists whole.
    """
    row_index = col_index = None
    if pad_multiple is not None:
        row_index, col_index = padded_indices(x.shape[-2], pad_multiple), padded_indices(x.shape[-1], pad_multiple)
    batch, channels = x.shape[:2]
    height, width = x.shape[-2:] if row_index is None else (len(row_index), len(col_index))
    plan = plan_tiles(stage, torch.Size((batch, channels, height, width)), x.dtype, max_memory)
    device = next(stage.module.parameters()).device
    before, after, s = stage.halo, stage.halo_after, stage.scale
    out: torch.Tensor | None = None
    tiles = itertools.product(plan.rows, plan.cols)
    with torch.no_grad():
        if plan.count == 1:
            return stage.module(_window(x, row_index, col_index, slice(None), slice(None)).to(device)).to(x.device)
        hidden = True if progress is False else (None if progress is None else False)
        for (r0, r1), (c0, c1) in tqdm(
            tiles, total=plan.count, desc=f"{stage.name} tiles", disable=hidden, leave=False
        ):
            e0, f0 = max(0, r0 - before), max(0, c0 - before)
            window = _window(
                x, row_index, col_index, slice(e0, min(height, r1 + after)), slice(f0, min(width, c1 + after))
            )
            tile = window.to(device).contiguous()
            result = stage.module(tile)
            if out is None:
                size = (batch, result.shape[1], _scaled(height, s), _scaled(width, s))
                out = torch.empty(size, dtype=result.dtype, device=x.device)
            rows = slice(_scaled(r0 - e0, s), _scaled(r1 - e0, s))
            cols = slice(_scaled(c0 - f0, s), _scaled(c1 - f0, s))
            out[..., _scaled(r0, s) : _scaled(r1, s), _scaled(c0, s) : _scaled(c1, s)] = result[..., rows, cols]
    assert out is not None
    return out
