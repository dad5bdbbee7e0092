"""Real coding of images with a :class:`~hific_lit.codec.HiFiC` model into .hfc bytes and back.

::

    encode: x ─pad─► analysis ─y─► h_a ─z─► round(z - median) ─► z-stream
                                   z_hat ─► h_s ─► (mu, sigma) ─► round(y - mu), scale index ─► y-stream
    decode: z-stream ─► z_hat ─► h_s ─► (mu, sigma) ─► y-stream ─► y_hat = symbols + mu ─► synthesis ─► crop

The hyper path (h_s, scale indexes, tables, coder) runs in float32 whatever the dtype of g_a and
g_s (DESIGN decision 7); the CRC32 of the symbols in the header tells the decoder when it went
out of step with the encoder (another device, model or library version).
"""

from __future__ import annotations

import hashlib
import json
import math
import zlib
from typing import TYPE_CHECKING, NamedTuple

import torch

from hific_lit.bitstream import FINGERPRINT_SIZE, Header, pack, unpack
from hific_lit.entropy.coder import StreamReader, StreamWriter, chunk_bounds
from hific_lit.entropy.tables import factorized_tables, gaussian_tables, scale_indexes
from hific_lit.errors import BitstreamError, CheckpointError
from hific_lit.padding import crop, pad_to_multiple, padded_size

if TYPE_CHECKING:
    from hific_lit.codec import HiFiC

_SYMBOL_LIMIT = float(1 << 62)
_MAX_SYMBOLS_PER_BYTE = 1 << 18
"""A symbol costs at least -log2(65534 / 65536) bits with 16-bit tables: < 181,000 symbols per byte.
A header claiming more is corrupt; checking it avoids allocating latents for a bogus image size."""


class Encoded(NamedTuple):
    """What :func:`encode_image` returns: the .hfc bytes, the model's rate estimate and y_hat."""

    data: bytes
    estimated_bits: float
    y_hat: torch.Tensor


def build_tables(model: HiFiC, force: bool = False) -> None:
    """Build the latent and hyperlatent coding tables into the model's buffers (once, unless ``force``)."""
    if model.y_tables.built and model.z_tables.built and not force:
        return
    model.y_tables.assign(*gaussian_tables())
    model.z_tables.assign(*factorized_tables(model.entropy_bottleneck))


def require_tables(model: HiFiC) -> None:
    """Raise :class:`CheckpointError` unless the model's coding tables were built."""
    if not (model.y_tables.built and model.z_tables.built):
        raise CheckpointError(
            "this model has no coding tables: call model.update() after training, or load a checkpoint "
            "exported with hific_lit.checkpoint.save_inference_checkpoint"
        )


def _fingerprint_parts(model: HiFiC) -> list[tuple[str, torch.Tensor]]:
    parts = [(f"y_tables.{k}", v) for k, v in model.y_tables.state_dict().items()]
    parts += [(f"z_tables.{k}", v) for k, v in model.z_tables.state_dict().items()]
    parts.append(("medians", model.entropy_bottleneck.quantiles[:, 0, 1].float()))
    for name in ("h_s_mu", "h_s_sigma"):
        parts += [(f"{name}.{k}", v.float()) for k, v in getattr(model, name).state_dict().items()]
    parts += [(f"g_s.{k}", v.to(torch.bfloat16)) for k, v in model.g_s.state_dict().items() if v.is_floating_point()]
    return parts


def model_fingerprint(model: HiFiC) -> bytes:
    """8-byte BLAKE2b of what decoding depends on: the tables, the medians of z, h_s and g_s.

    Tables, medians and h_s enter exactly (float32); g_s enters rounded to bfloat16, so that a
    bf16 copy of a model shares the fingerprint of its float32 original; the architecture
    enters as JSON. Cached until a weight changes in place or is replaced.
    """
    sources = [*model.y_tables.buffers(), *model.z_tables.buffers(), model.entropy_bottleneck.quantiles]
    sources += [*model.h_s_mu.state_dict().values(), *model.h_s_sigma.state_dict().values()]
    sources += list(model.g_s.state_dict().values())
    key = tuple((t.data_ptr(), t._version, t.dtype, str(t.device)) for t in sources)
    cached = model.__dict__.get("_fingerprint_cache")
    if cached is not None and cached[0] == key:
        return cached[1]
    digest = hashlib.blake2b(digest_size=FINGERPRINT_SIZE)
    digest.update(json.dumps(model.arch.to_dict(), sort_keys=True).encode())
    for name, tensor in _fingerprint_parts(model):
        digest.update(name.encode())
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    model.__dict__["_fingerprint_cache"] = (key, digest.digest())
    return digest.digest()


def as_image_batch(x: torch.Tensor) -> torch.Tensor:
    """Check that ``x`` is one or more RGB float images (3, H, W) / (B, 3, H, W); return it 4-D."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected an image tensor, got {type(x).__name__}")
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or x.shape[1] != 3 or x.shape[-1] < 1 or x.shape[-2] < 1:
        raise ValueError(f"expected an RGB image of shape (3, H, W) or (B, 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"expected a float image in [0, 1], got dtype {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("the image contains NaN or infinite values")
    return x


def _hyper_decode(model: HiFiC, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dtype = next(model.h_s_mu.parameters()).dtype
    mu, sigma = model.hyper_decode(z_hat.to(dtype))
    return mu.float(), sigma.float()


def _crc(symbols: torch.Tensor, crc: int) -> int:
    return zlib.crc32(symbols.cpu().numpy().astype("<i8").tobytes(), crc)


def _check_codable(rounded: torch.Tensor, name: str) -> None:
    """Refuse symbols that are not finite or beyond +-2**62 (the escape code's range)."""
    if not bool((rounded.abs() < _SYMBOL_LIMIT).all()):
        raise ValueError(f"the {name} has values that are not finite or beyond +-2**62; the model diverged")


def _channel_indexes(start: int, end: int, plane: int) -> torch.Tensor:
    return torch.arange(start, end, dtype=torch.int64) // plane


@torch.no_grad()
def encode_latent(model: HiFiC, y: torch.Tensor, height: int, width: int) -> Encoded:
    """Code one latent y (1, C, h, w), float32, of an image of ``height`` x ``width``."""
    require_tables(model)
    z = model.h_a(y.to(next(model.h_a.parameters()).dtype)).float()
    medians = model.entropy_bottleneck.medians().float()
    z_rounded = torch.round(z - medians)
    _check_codable(z_rounded, "hyperlatent z")
    z_hat = z_rounded + medians
    mu, sigma = _hyper_decode(model, z_hat)
    bits = -torch.log2(model.entropy_bottleneck.likelihood(z_hat)).sum().item()
    z_writer, y_writer = StreamWriter(model.z_tables), StreamWriter(model.y_tables)
    z_flat, plane = z_rounded.reshape(-1), z.shape[-1] * z.shape[-2]
    crc = 0
    for start, end in chunk_bounds(z_flat.numel()):
        symbols = z_flat[start:end].long()
        z_writer.add_chunk(symbols, _channel_indexes(start, end, plane))
        crc = _crc(symbols, crc)
    y_hat = torch.empty_like(y)
    y_flat, mu_flat, sigma_flat, y_hat_flat = y.reshape(-1), mu.reshape(-1), sigma.reshape(-1), y_hat.view(-1)
    for start, end in chunk_bounds(y_flat.numel()):
        mu_c, sigma_c = mu_flat[start:end], sigma_flat[start:end]
        rounded = torch.round(y_flat[start:end] - mu_c)
        _check_codable(rounded, "latent y")
        symbols = rounded.long()
        y_writer.add_chunk(symbols, scale_indexes(sigma_c, model.y_tables.scales))
        crc = _crc(symbols, crc)
        y_hat_flat[start:end] = rounded + mu_c
        p = model.gaussian_conditional.likelihood(y_hat_flat[start:end], mu_c, sigma_c)
        bits -= torch.log2(p).sum().item()
    z_stream, y_stream = z_writer.getvalue(), y_writer.getvalue()
    shapes = (tuple(y.shape[1:]), tuple(z.shape[1:]))
    header = Header(model_fingerprint(model), height, width, *shapes, len(z_stream), len(y_stream), crc)
    return Encoded(pack(header, z_stream, y_stream), bits, y_hat)


@torch.no_grad()
def encode_image(model: HiFiC, x: torch.Tensor) -> Encoded:
    """Compress one image (3, H, W) or (1, 3, H, W) in [0, 1]; also return the rate estimate and y_hat."""
    x = as_image_batch(x)
    if x.shape[0] != 1:
        raise ValueError(f"encode_image codes one image; got a batch of {x.shape[0]} (use compress_batch)")
    require_tables(model)
    device = model.y_tables.cdf.device
    y = model.analysis(pad_to_multiple(x.to(device))).float()
    return encode_latent(model, y, x.shape[-2], x.shape[-1])


def _check_shapes(model: HiFiC, header: Header) -> None:
    yh, yw = padded_size(header.height) // 16, padded_size(header.width) // 16
    expected_y = (model.arch.latent_channels, yh, yw)
    expected_z = (model.arch.hyper_filters, math.ceil(yh / 4), math.ceil(yw / 4))
    if header.y_shape != expected_y or header.z_shape != expected_z:
        raise BitstreamError(
            f"the header's latent shapes {header.y_shape} / {header.z_shape} do not fit a "
            f"{header.height}x{header.width} image coded by this model ({expected_y} / {expected_z})"
        )
    for name, shape, length in (("hyperlatent", expected_z, header.z_length), ("latent", expected_y, header.y_length)):
        if math.prod(shape) > _MAX_SYMBOLS_PER_BYTE * length:
            raise BitstreamError(
                f"the header claims a {header.height}x{header.width} image, but its {name} stream of {length} bytes "
                f"cannot hold {math.prod(shape)} symbols (corrupt header)"
            )


@torch.no_grad()
def decode_latent(model: HiFiC, data: bytes) -> tuple[Header, torch.Tensor]:
    """Parse and check ``data``, then decode y_hat (1, C, h, w); any malformed input raises BitstreamError."""
    header, z_stream, y_stream = unpack(data)
    require_tables(model)
    fingerprint = model_fingerprint(model)
    if header.fingerprint != fingerprint:
        raise BitstreamError(
            f"the file was made by another model (fingerprint {header.fingerprint.hex()}, "
            f"this model's is {fingerprint.hex()}); decode it with the checkpoint that encoded it"
        )
    _check_shapes(model, header)
    device = model.y_tables.cdf.device
    z_reader = StreamReader(z_stream, model.z_tables, "hyperlatent")
    z_rounded = torch.empty(header.z_shape, dtype=torch.int64)
    z_flat, plane = z_rounded.view(-1), header.z_shape[1] * header.z_shape[2]
    crc = 0
    for start, end in chunk_bounds(z_flat.numel()):
        z_flat[start:end] = z_reader.read_chunk(_channel_indexes(start, end, plane))
        crc = _crc(z_flat[start:end], crc)
    z_reader.finish()
    z_hat = z_rounded[None].to(device).float() + model.entropy_bottleneck.medians().float()
    mu, sigma = _hyper_decode(model, z_hat)
    y_reader = StreamReader(y_stream, model.y_tables, "latent")
    y_hat = torch.empty_like(mu)
    y_hat_flat, mu_flat, sigma_flat = y_hat.view(-1), mu.reshape(-1), sigma.reshape(-1)
    for start, end in chunk_bounds(y_hat_flat.numel()):
        symbols = y_reader.read_chunk(scale_indexes(sigma_flat[start:end], model.y_tables.scales))
        crc = _crc(symbols, crc)
        y_hat_flat[start:end] = symbols.to(device).float() + mu_flat[start:end]
    y_reader.finish()
    if crc != header.symbols_crc:
        raise BitstreamError(
            "the decoded symbols do not match the encoder's (symbol CRC32 mismatch): the decoder went out of "
            "step — was the file made on another device or library version with a differently rounding h_s?"
        )
    return header, y_hat


@torch.no_grad()
def decode_image(model: HiFiC, data: bytes) -> torch.Tensor:
    """Decompress .hfc bytes into a (1, 3, H, W) float image in [0, 1]."""
    header, y_hat = decode_latent(model, data)
    return crop(model.synthesis(y_hat), header.height, header.width).float().clamp_(0.0, 1.0)
