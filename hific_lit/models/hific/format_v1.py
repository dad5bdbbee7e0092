"""Format version 1 of .hfc files: read (and, to compare, write) files whose scale indexes come from float h_s.

Version 1 computed (mu, sigma) with h_s in float32 on the coding device and took the index of
the nearest table scale through a float logarithm, so that a file decoded only where h_s rounds
as it did when encoding; version 2 (:mod:`hific_lit.models.hific.model`) computes them exactly in integers.
Version-1 files (e.g. ``tests/expected/golden_tiny.hfc``) still decode with the model that made
them; :func:`encode_latent` writes them, for measuring what version 2 costs
(``scripts/bench_portable.py``) and for the negative control of the tests.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import TYPE_CHECKING

import torch

from hific_lit.entropy.coder import StreamReader, StreamWriter, chunk_bounds
from hific_lit.errors import BitstreamError
from hific_lit.io.container import FINGERPRINT_SIZE, Header, pack

if TYPE_CHECKING:
    from hific_lit.models.hific.model import HiFiC

V1_ARCH_FIELDS = (
    "encoder_widths",
    "latent_channels",
    "generator_widths",
    "residual_blocks",
    "hyper_filters",
    "discriminator_widths",
    "discriminator_context",
    "norm",
    "padding",
)
"""The architecture fields a version-1 fingerprint covers (those ArchConfig had when version 2 came)."""
_TABLE_BUFFERS = ("cdf", "length", "offset", "scales")


def scale_indexes(sigma: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Index of the table scale nearest to sigma in log scale (0 below 0.11 and for NaN), int64.

    ``clamp(floor((ln max(sigma, s_0) - ln s_0) * (K - 1) / (ln s_K-1 - ln s_0) + 1/2), 0, K - 1)`` in
    float32: the rounding of the logarithm is the device's, which is what version 2 removes.
    """
    low, high, size = math.log(scales[0].item()), math.log(scales[-1].item()), scales.numel()
    position = torch.log(sigma.float().clamp_min(scales[0].item())).sub_(low).mul_((size - 1) / (high - low))
    return position.add_(0.5).floor_().clamp_(0, size - 1).long().clamp_(0, size - 1)


def fingerprint(model: HiFiC) -> bytes:
    """8-byte BLAKE2b of what version-1 decoding depends on: tables, medians of z, h_s (float32), g_s (bfloat16).

    The architecture enters as JSON of :data:`V1_ARCH_FIELDS`; tables under the names
    ``y_tables.*`` / ``z_tables.*`` they had in version 1.
    """
    arch = {k: v for k, v in model.arch.to_dict().items() if k in V1_ARCH_FIELDS}
    digest = hashlib.blake2b(digest_size=FINGERPRINT_SIZE)
    digest.update(json.dumps(arch, sort_keys=True).encode())
    parts: list[tuple[str, torch.Tensor]] = []
    for prefix, tables in (("y_tables", model.conditional.tables), ("z_tables", model.entropy_bottleneck.tables)):
        parts += [(f"{prefix}.{name}", _as_stored(getattr(tables, name))) for name in _TABLE_BUFFERS]
    parts.append(("medians", model.entropy_bottleneck.quantiles[:, 0, 1].float()))
    for name in ("h_s_mu", "h_s_sigma"):
        parts += [(f"{name}.{k}", v.float()) for k, v in getattr(model, name).state_dict().items()]
    parts += [(f"g_s.{k}", v.to(torch.bfloat16)) for k, v in model.g_s.state_dict().items() if v.is_floating_point()]
    for name, tensor in parts:
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.digest()


def _as_stored(tensor: torch.Tensor) -> torch.Tensor:
    """Float buffers as the float32 that version 1 stored (a float64 copy of a model keeps its fingerprint)."""
    return tensor.float() if tensor.is_floating_point() else tensor


def _float_hyper_synthesis(model: HiFiC, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dtype = next(model.h_s_mu.parameters()).dtype
    z_hat = z_hat.to(dtype)
    return model.h_s_mu(z_hat).float(), model.h_s_sigma(z_hat).float()


def _write(writer: StreamWriter, symbols: torch.Tensor, indexes: torch.Tensor) -> None:
    flat_symbols, flat_indexes = symbols.reshape(-1), indexes.reshape(-1)
    for start, end in chunk_bounds(flat_symbols.numel()):
        writer.add_chunk(flat_symbols[start:end], flat_indexes[start:end])


@torch.no_grad()
def encode_latent(model: HiFiC, y: torch.Tensor, height: int, width: int) -> tuple[bytes, float]:
    """A version-1 file of the latent y (1, C, h, w) of an image of ``height`` x ``width``, and its estimated bits."""
    prior, conditional = model.entropy_bottleneck, model.conditional
    z = model.h_a(y.to(next(model.h_a.parameters()).dtype)).float()
    z_symbols = prior.symbols(z)
    z_hat = z_symbols.float() + prior.medians().float().to(z.device)
    mu, sigma = _float_hyper_synthesis(model, z_hat)
    y_symbols = conditional.symbols(y.float(), mu)
    y_hat = y_symbols.float() + mu
    bits = prior.estimate_bits(z_hat) + conditional.estimate_bits(y_hat, mu, sigma)
    z_writer = StreamWriter(prior.tables)
    _write(z_writer, z_symbols, torch.arange(z.shape[1]).view(1, -1, 1, 1).expand(z.shape))
    y_writer = StreamWriter(conditional.tables, z_writer.crc)
    _write(y_writer, y_symbols, scale_indexes(sigma, conditional.tables.scales))
    z_stream, y_stream = z_writer.getvalue(), y_writer.getvalue()
    shapes = (tuple(y.shape[1:]), tuple(z.shape[1:]))
    header = Header(fingerprint(model), height, width, *shapes, len(z_stream), len(y_stream), 1, 0, y_writer.crc)
    return pack(header, z_stream, y_stream), bits


@torch.no_grad()
def decode_latent(model: HiFiC, header: Header, z_stream: bytes, y_stream: bytes) -> torch.Tensor:
    """y_hat (1, C, h, w) of a version-1 file whose header was checked (shapes, fingerprint)."""
    expected = fingerprint(model)
    if header.fingerprint != expected:
        raise BitstreamError(
            f"the file was made by another model (fingerprint {header.fingerprint.hex()}, this model's "
            f"version-1 fingerprint is {expected.hex()}); decode it with the checkpoint that encoded it"
        )
    prior, conditional = model.entropy_bottleneck, model.conditional
    device = prior.quantiles.device
    z_reader = StreamReader(z_stream, prior.tables, "hyperlatent")
    z_symbols = _read(z_reader, _channel_plane_indexes(header.z_shape))
    z_hat = z_symbols.view(1, *header.z_shape).to(device).float() + prior.medians().float()
    mu, sigma = _float_hyper_synthesis(model, z_hat)
    y_reader = StreamReader(y_stream, conditional.tables, "latent", z_reader.crc)
    y_symbols = _read(y_reader, scale_indexes(sigma, conditional.tables.scales).reshape(-1).cpu())
    if y_reader.crc != header.symbols_crc:
        raise BitstreamError(
            "the decoded symbols do not match the encoder's (symbol CRC32 mismatch): the decoder went out of "
            "step — a version-1 file decodes only where h_s rounds as where it was made (same device type); "
            "files of format version 2 decode anywhere"
        )
    return y_symbols.view(mu.shape).to(device).float() + mu


def _channel_plane_indexes(shape: tuple[int, int, int]) -> torch.Tensor:
    return torch.arange(shape[0]).view(-1, 1, 1).expand(shape).reshape(-1)


def _read(reader: StreamReader, indexes: torch.Tensor) -> torch.Tensor:
    symbols = torch.empty(indexes.numel(), dtype=torch.int64)
    for start, end in chunk_bounds(symbols.numel()):
        symbols[start:end] = reader.read_chunk(indexes[start:end])
    reader.finish()
    return symbols
