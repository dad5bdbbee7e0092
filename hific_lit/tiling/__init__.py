"""Images of any size in bounded memory: g_a and g_s on overlapping tiles, stitched exactly.

Only the transforms are tiled; the latent is whole, so the bitstream is one stream for the whole
image and does not depend on the tiling. See :mod:`hific_lit.tiling.transforms` for the receptive
fields and :mod:`hific_lit.tiling.memory` for how the working memory is measured.
"""

from hific_lit.tiling.memory import (
    DEFAULT_MAX_MEMORY,
    MEMORY_SAFETY,
    MemoryBudgetError,
    activation_peak_bytes,
    format_bytes,
    parse_memory_budget,
    parse_memory_size,
)
from hific_lit.tiling.plan import TilePlan, bytes_per_pixel, plan_tiles, split_axis
from hific_lit.tiling.receptive import NotTileableError, receptive_field
from hific_lit.tiling.stage import Stage
from hific_lit.tiling.tiles import run_tiled
from hific_lit.tiling.transforms import analysis_stage, synthesis_stages, tiled_analysis, tiled_synthesis

__all__ = [
    "DEFAULT_MAX_MEMORY",
    "MEMORY_SAFETY",
    "MemoryBudgetError",
    "NotTileableError",
    "Stage",
    "TilePlan",
    "activation_peak_bytes",
    "analysis_stage",
    "bytes_per_pixel",
    "format_bytes",
    "parse_memory_budget",
    "parse_memory_size",
    "plan_tiles",
    "receptive_field",
    "run_tiled",
    "split_axis",
    "synthesis_stages",
    "tiled_analysis",
    "tiled_synthesis",
]
