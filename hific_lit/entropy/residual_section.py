"""The residual section of a .hfc file (format version 3): the bound K, what x_hat must be, the residual stream.

Layout (little-endian), docs/hfc-format.md::

    0   uint8    K, the maximum error per pixel value (0 .. 127)
    1   uint8    precision the encoder decoded x_hat in: 0 fp32, 1 bf16, 2 fp16, 3 fp64
    2   uint8    device kind the encoder decoded x_hat on: 0 cpu, 1 cuda, 2 other
    3   uint8    reserved, 0
    4   8 bytes  fingerprint of the residual coder (ResidualCoder.fingerprint)
    12  uint32   CRC32 of x_hat as the encoder decoded it: its 8-bit pixels in row-major (H, W, RGB) order
    16  ...      the residual stream (ResidualCoder.encode: chunks, then the CRC32 of its symbols)

The decoder compares its own x_hat with the CRC before adding the residual: the bound holds only for
the encoder's x_hat, and g_s runs in floating point, so another precision, device or library may
round a pixel differently. It then refuses (:class:`XHatMismatchError`), naming the encoder's settings.
"""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

import torch

from hific_lit.errors import BitstreamError

HEADER = struct.Struct("<BBBB8sI")
PRECISION_CODES = {"fp32": 0, "bf16": 1, "fp16": 2, "fp64": 3}
DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16", torch.float64: "fp64"}
DEVICE_CODES = {"cpu": 0, "cuda": 1}


class XHatMismatchError(BitstreamError):
    """The decoder's x_hat is not the encoder's, so the residual would not keep the error bound."""


class ResidualSection(NamedTuple):
    """A parsed residual section."""

    max_error: int
    precision: str
    device: str
    coder_fingerprint: bytes
    x_hat_crc: int
    stream: bytes


def x_hat_checksum(x_hat: torch.Tensor) -> int:
    """CRC32 of a (3, H, W) uint8 image's pixels in row-major (H, W, RGB) order, as a PNG stores them."""
    if x_hat.dtype != torch.uint8:
        raise ValueError(f"x_hat must be uint8, got {x_hat.dtype}")
    return zlib.crc32(x_hat.permute(1, 2, 0).contiguous().cpu().numpy().tobytes())


def pack_section(
    max_error: int, dtype: torch.dtype, device: torch.device, coder_fingerprint: bytes, x_hat_crc: int, stream: bytes
) -> bytes:
    """The bytes of a residual section."""
    precision = PRECISION_CODES[DTYPE_NAMES.get(dtype, "fp32")]
    device_code = DEVICE_CODES.get(torch.device(device).type, 2)
    return HEADER.pack(max_error, precision, device_code, 0, coder_fingerprint, x_hat_crc) + stream


def unpack_section(data: bytes) -> ResidualSection:
    """Parse a residual section; :class:`BitstreamError` names what is malformed."""
    if len(data) < HEADER.size + 4:
        raise BitstreamError(f"residual section: {len(data)} bytes, too short (truncated)")
    max_error, precision, device, reserved, fingerprint, crc = HEADER.unpack_from(data)
    names = {v: k for k, v in PRECISION_CODES.items()}
    if max_error > 127 or precision not in names or device > 2 or reserved:
        raise BitstreamError("residual section: invalid bound, precision or device field (corrupt or newer file)")
    device_name = {0: "cpu", 1: "cuda", 2: "another device"}[device]
    return ResidualSection(max_error, names[precision], device_name, fingerprint, crc, data[HEADER.size :])


def check_x_hat(section: ResidualSection, x_hat: torch.Tensor, ckpt_hint: str = "the same checkpoint") -> None:
    """Refuse (one line, with how to decode instead) when ``x_hat`` is not the one the encoder coded against."""
    if x_hat_checksum(x_hat) != section.x_hat_crc:
        raise XHatMismatchError(
            f"this decoding of the image differs from the encoder's (x_hat checksum mismatch), so the error bound "
            f"K={section.max_error} cannot be kept: decode on {section.device} with --precision {section.precision} "
            f"and {ckpt_hint} (docs/error-bound.md lists the settings that reproduce x_hat), or pass --no-residual "
            "for the model's decoding without the bound"
        )
