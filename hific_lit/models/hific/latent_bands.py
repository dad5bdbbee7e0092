"""The latent path of HiFiC's coding in bands of latent rows, so that its memory does not grow with float64s.

The integer h_s gives the means and scales as float64 (exact multiples of 2**-16, see
:mod:`hific_lit.entropy.integer`); for a whole 144-megapixel image that is 8 bytes per latent
element for each, plus int64 indexes and symbols. Here h_s runs on windows of z_hat rows (with
the halo its receptive field needs, computed like tiling's), and each band of latent rows is
reduced at once to what coding keeps: 1-byte table indexes, 16-bit symbols (wider only if a
value needs it) and, when decoding, float32 y_hat. The integers are exact, so every band equals
the whole-image computation bit for bit; the symbols are coded in the same flat, channel-major
order as before (.hfc format 2 is unchanged).
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch

from hific_lit.entropy.coder import widened_to_hold
from hific_lit.entropy.rate_gains import AppliedGains, scale_units
from hific_lit.tiling.receptive import NotTileableError, Stage
from hific_lit.tiling.tiles import RowSource, run_tiled

if TYPE_CHECKING:
    from hific_lit.models.hific.model import HiFiC

BAND_ELEMENTS = 1 << 20
"""Latent elements (channels x rows x width) per band: float64 means and scales of 8 MiB each."""
HYPER_ANALYSIS_MEMORY = 64 << 20
"""Working memory of h_a's tiles: its first layer runs at latent resolution (a 144 MP image: 0.2 GiB whole)."""
Y_HAT_CHUNK_BYTES = 16 << 20
"""Least bytes of a chunk of y_hat handed to g_s (:func:`decode_latent_rows`), above glibc's mmap threshold."""


def _halo(model: HiFiC) -> tuple[int, int, int]:
    """(z rows before, z rows after, latent rows per z row) that a band of h_s outputs needs."""
    stage = Stage.of("h_s", model.h_s_mu_int, model.h_s_mu.net)
    if stage.scale.denominator != 1:
        raise ValueError(f"h_s must upsample by an integer factor, not {stage.scale}")
    return stage.halo, stage.halo_after, int(stage.scale)


def hyper_bands(
    model: HiFiC, z_hat: torch.Tensor, means: bool = True, scales: bool = True, band_elements: int | None = None
) -> Iterator[tuple[int, int, torch.Tensor | None, torch.Tensor | None]]:
    """``(r0, r1, mu, sigma)`` for consecutive bands of latent rows ``[r0, r1)``, from the integer h_s.

    Each band runs the integer networks on the z_hat rows it depends on (plus the halo) and keeps
    the rows it owns; ``means`` / ``scales`` False skips that network (its entry is None).
    """
    before, after, up = _halo(model)
    z_rows, z_width = z_hat.shape[-2:]
    channels = model.arch.latent_channels
    step = max(1, (band_elements or BAND_ELEMENTS) // max(1, channels * z_width * up * up))
    for z0 in range(0, z_rows, step):
        z1 = min(z_rows, z0 + step)
        a, b = max(0, z0 - before), min(z_rows, z1 + after)
        window = z_hat[:, :, a:b]
        own = slice((z0 - a) * up, (z1 - a) * up)
        mu = model.h_s_mu_int(window)[:, :, own] if means else None
        sigma = model.h_s_sigma_int(window)[:, :, own] if scales else None
        yield z0 * up, z1 * up, mu, sigma


def hyper_analysis(model: HiFiC, y: torch.Tensor) -> torch.Tensor:
    """z = h_a(y), float32, in tiles of :data:`HYPER_ANALYSIS_MEMORY` (whole if h_a cannot be tiled)."""
    y = y.to(next(model.h_a.parameters()).dtype)
    try:
        stage = Stage.of("h_a", model.h_a, model.h_a.net)
    except NotTileableError:
        return model.h_a(y).float()
    return run_tiled(stage, y, HYPER_ANALYSIS_MEMORY).float()


def _store(out: torch.Tensor, rows: slice, values: torch.Tensor) -> torch.Tensor:
    """Write int64 ``values`` into ``out[:, :, rows]``, widening ``out`` first (int16, int32, int64) if they need it."""
    out = widened_to_hold(out, values)
    out[:, :, rows] = values
    return out


def quantize_latent(model: HiFiC, y: torch.Tensor, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """What the y-stream of ``y`` (1, C, h, w) given ``z_hat`` codes: the symbols (int16 on the CPU, wider only
    if a value needs it) and their table indexes (uint8), and the ideal size of y_hat in bits."""
    conditional = model.conditional
    indexes = torch.empty(y.shape, dtype=torch.uint8)
    symbols = torch.empty(y.shape, dtype=torch.int16)
    bits = 0.0
    for r0, r1, mu, sigma in hyper_bands(model, z_hat):
        indexes[:, :, r0:r1] = conditional.indexes(sigma)
        rounded = conditional.symbols(y[:, :, r0:r1], mu)
        symbols = _store(symbols, slice(r0, r1), rounded)
        bits += conditional.estimate_bits(conditional.dequantize(rounded, mu), mu, sigma)
    return symbols, indexes, bits


def _y_hat_bands(
    model: HiFiC, stream: bytes, z_hat: torch.Tensor, shape: tuple[int, ...], gains: AppliedGains | None = None
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """y_hat band by band from a y-stream of :func:`quantize_latent`'s symbols: the table indexes from the scales
    band by band, the symbols, then (first row, end row, y_hat of those rows) from the means band by band. With
    ``gains`` (a rate-conditioned model's, at the file's rate), the indexes are those of the scales times the gains
    and y_hat = symbols · inverse gain + mean (:mod:`hific_lit.entropy.rate_gains`)."""
    conditional = model.conditional
    indexes = torch.empty(shape, dtype=torch.uint8)
    for r0, r1, _, sigma in hyper_bands(model, z_hat, means=False):
        if gains is None:
            indexes[:, :, r0:r1] = conditional.indexes(sigma)
        else:
            indexes[:, :, r0:r1] = gains.indexes(scale_units(sigma), conditional.tables.thresholds)
    symbols = conditional.decompress_symbols(stream, indexes)
    del indexes
    dequantize = conditional.dequantize if gains is None else gains.dequantize
    for r0, r1, mu, _ in hyper_bands(model, z_hat, scales=False):
        yield r0, r1, dequantize(symbols[:, :, r0:r1], mu)


def decode_latent(
    model: HiFiC, stream: bytes, z_hat: torch.Tensor, shape: tuple[int, ...], gains: AppliedGains | None = None
) -> torch.Tensor:
    """y_hat (float32, ``shape``, on the device of the means) from a y-stream of :func:`quantize_latent`'s symbols
    (or, with ``gains``, of a rate-conditioned model's)."""
    y_hat: torch.Tensor | None = None
    for r0, r1, band in _y_hat_bands(model, stream, z_hat, shape, gains):
        if y_hat is None:
            y_hat = torch.empty(shape, dtype=torch.float32, device=band.device)
        y_hat[:, :, r0:r1] = band
    return y_hat


def decode_latent_rows(
    model: HiFiC,
    stream: bytes,
    z_hat: torch.Tensor,
    shape: tuple[int, ...],
    like: torch.Tensor,
    gains: AppliedGains | None = None,
) -> RowSource:
    """:func:`decode_latent`'s y_hat as a :class:`~hific_lit.tiling.tiles.RowSource` for g_s, in the dtype and on the
    device of ``like``: in chunks of :data:`Y_HAT_CHUNK_BYTES` or more (whole bands; large enough that the
    allocator gives each back to the system when it goes), each dropped once g_s's trunk has passed it."""
    chunks: collections.deque[tuple[int, int, torch.Tensor]] = collections.deque()
    for r0, r1, band in _y_hat_bands(model, stream, z_hat, shape, gains):
        if not chunks or r0 >= chunks[-1][1]:
            row_bytes = band[:, :, :1].numel() * like.element_size()
            end = min(shape[-2], r0 + -(-Y_HAT_CHUNK_BYTES // (row_bytes * (r1 - r0))) * (r1 - r0))
            chunks.append((r0, end, like.new_empty((*shape[:2], end - r0, shape[-1]))))
        c0, _, chunk = chunks[-1]
        chunk[:, :, r0 - c0 : r1 - c0] = band
    return RowSource(_drained(chunks), shape[-2])


def _drained(chunks: collections.deque) -> Iterator[tuple[int, int, torch.Tensor]]:
    while chunks:
        yield chunks.popleft()
