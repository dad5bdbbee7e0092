"""Images of any size in bounded memory: g_a and g_s on overlapping tiles, stitched exactly.

Only the transforms are tiled; the latent is whole, so the bitstream is one stream for the whole
image and does not depend on the tiling. Three files: this one runs g_a and g_s of HiFiC on tiles
(:func:`tiled_analysis`, :func:`tiled_synthesis`); :mod:`hific_lit.tiling.receptive` reads a
network's receptive field off its layers; :mod:`hific_lit.tiling.tiles` measures the working memory,
chooses the tiles for a budget and runs a network on them.

Receptive fields (paper sizes, Mentzer et al. 2020, App. A.1; any preset has the same layout):

* g_a reaches 34 image pixels either side (7x7 conv: 3, four stride-2 3x3 convs: 1+2+4+8, the
  final 3x3 conv at /16: 16). A tile starts 48 pixels (3 latent pixels, on the /16 grid) before
  its core and ends 32 after it: the core's last latent pixel sits 16 pixels before its end.
* g_s is run in two stages. Its *trunk* at latent resolution (ChannelNorm, 3x3 conv, 9 residual
  blocks of two 3x3 convs) reaches 1 + 9 * 2 = 19 latent pixels: a halo of 19. It costs ~88 % of
  g_s's arithmetic but little memory per pixel (960 channels at 1/256 of the pixels), so its tiles
  are large, and for images up to a few megapixels it runs whole. Its *upsampling* part (four
  stride-2 transposed 3x3 convs and a 7x7 conv) reaches 9/8 latent pixels: a halo of 2, on tiles
  sized to the budget (it holds 60 channels at full resolution).
  The trunk's output (960 channels at latent resolution, 15 bytes per image pixel in float32) is
  never whole: its rows of tiles are made as the upsampling's tiles reach them and dropped once they
  are passed (:class:`~hific_lit.tiling.tiles.RowSource`; the tiles, and so the result, are the same).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from hific_lit.nn import Encoder, Generator
from hific_lit.nn.padding import pad_to_multiple
from hific_lit.tiling.receptive import NotTileableError, Stage, receptive_field
from hific_lit.tiling.tiles import (
    DEFAULT_MAX_MEMORY,
    MEMORY_SAFETY,
    MemoryBudgetError,
    RowSource,
    TilePlan,
    activation_peak_bytes,
    bytes_per_pixel,
    format_bytes,
    parse_memory_budget,
    plan_tiles,
    run_tiled,
    split_axis,
    tile_rows,
)

__all__ = [
    "DEFAULT_MAX_MEMORY",
    "MEMORY_SAFETY",
    "MemoryBudgetError",
    "NotTileableError",
    "RowSource",
    "Stage",
    "TilePlan",
    "activation_peak_bytes",
    "analysis_stage",
    "bytes_per_pixel",
    "format_bytes",
    "parse_memory_budget",
    "plan_tiles",
    "receptive_field",
    "run_tiled",
    "split_axis",
    "synthesis_stages",
    "tile_rows",
    "tiled_analysis",
    "tiled_synthesis",
]


class GeneratorTrunk(nn.Module):
    """g_s up to its upsampling: ``h = head(y_hat)``, then ``h + blocks(h)`` (shares the generator's layers)."""

    def __init__(self, g_s: Generator) -> None:
        super().__init__()
        self.head, self.blocks = g_s.head, g_s.blocks

    def forward(self, y_hat: torch.Tensor) -> torch.Tensor:
        h = self.head(y_hat)
        return h + self.blocks(h)


class ImageInput(nn.Module):
    """g_a fed with tiles of the image as stored: an 8-bit tile becomes floats in [0, 1], in g_a's
    precision, only as it is cut, so that a large image never exists whole in float."""

    def __init__(self, g_a: Encoder) -> None:
        super().__init__()
        self.g_a = g_a

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = next(self.g_a.parameters()).dtype
        return self.g_a(x.to(dtype).div_(255.0) if x.dtype == torch.uint8 else x.to(dtype))


class Uint8Output(nn.Module):
    """g_s's upsampling with its output rounded to 8 bits per tile (clamped to [0, 1], times 255)."""

    def __init__(self, up: nn.Module) -> None:
        super().__init__()
        self.up = up

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.up(h).float().clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)


def analysis_stage(g_a: Encoder) -> Stage:
    """g_a as one tiled stage: image (padded to a multiple of 16, float or 8-bit) -> latent at /16."""
    return Stage.of("g_a", ImageInput(g_a), g_a.net)


def synthesis_stages(g_s: Generator, uint8: bool = False) -> tuple[Stage, Stage]:
    """g_s as two tiled stages: the trunk at latent resolution, then the upsampling to the image
    (``uint8``: rounded to 8 bits per tile)."""
    trunk = GeneratorTrunk(g_s)
    up = Uint8Output(g_s.up) if uint8 else g_s.up
    return Stage.of("g_s trunk", trunk, g_s.head, g_s.blocks), Stage.of("g_s upsampling", up, g_s.up)


def _untiled(network: nn.Module, x: torch.Tensor, max_memory: int | None, reason: Exception) -> torch.Tensor:
    if max_memory is not None:
        warnings.warn(f"{type(network).__name__} runs on the whole image, untiled: {reason}", stacklevel=3)
    with torch.no_grad():
        return network(x.to(next(network.parameters()).device)).to(x.device)


def tiled_analysis(
    g_a: Encoder,
    x: torch.Tensor,
    max_memory: int | None = DEFAULT_MAX_MEMORY,
    progress: bool | None = False,
    pad_multiple: int | None = None,
) -> torch.Tensor:
    """``g_a(x)`` on tiles whose working memory stays within ``max_memory`` bytes (``None``: whole image).

    ``x`` is (B, 3, H, W) with H and W multiples of 16 (the codec pads to 64), float in [0, 1] or
    uint8 (converted tile by tile); the result is on ``x``'s device, in g_a's precision. With
    ``pad_multiple``, ``x`` may have any size and is padded to that multiple tile by tile
    (:func:`hific_lit.nn.padding.pad_to_multiple`, never whole).
    A network that cannot be tiled exactly (e.g. instance norm) runs whole, with a warning.
    """
    try:
        stage = analysis_stage(g_a)
    except NotTileableError as exc:
        return _untiled(
            ImageInput(g_a), x if pad_multiple is None else pad_to_multiple(x, pad_multiple), max_memory, exc
        )
    return run_tiled(stage, x, max_memory, progress, pad_multiple)


def tiled_synthesis(
    g_s: Generator,
    y_hat: torch.Tensor | RowSource,
    max_memory: int | None = DEFAULT_MAX_MEMORY,
    progress: bool | None = False,
    uint8: bool = False,
) -> torch.Tensor:
    """``g_s(y_hat)`` on tiles whose working memory stays within ``max_memory`` bytes (``None``: whole latent).

    ``uint8``: the image comes back rounded to 8 bits (converted tile by tile), a quarter of float32's memory.
    ``y_hat`` may be a :class:`RowSource` (a latent decoded in bands, in g_s's precision): bands go once used.
    """
    try:
        trunk, up = synthesis_stages(g_s, uint8)
    except NotTileableError as exc:
        if isinstance(y_hat, RowSource):
            y_hat = y_hat.window(slice(0, y_hat.shape[-2]), slice(0, y_hat.shape[-1]))
        return _untiled(Uint8Output(g_s) if uint8 else g_s, y_hat, max_memory, exc)
    return run_tiled(up, RowSource.of_stage(trunk, y_hat, max_memory, progress), max_memory, progress)
