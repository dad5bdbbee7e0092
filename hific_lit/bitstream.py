"""The .hfc container: a fixed little-endian header, then the hyperlatent and latent streams.

Byte layout of format version 1 (all integers little-endian; docs/hfc-format.md has the detail)::

    offset size  field
         0    4  magic b"HFIC"
         4    2  format version (uint16) = 1
         6    8  model fingerprint (see hific_lit.coding.model_fingerprint)
        14    4  image height (uint32)
        18    4  image width (uint32)
        22    2  latent channels (uint16)      24  4  latent height    28  4  latent width
        32    2  hyperlatent channels (uint16) 34  4  hyperlatent height 38  4  hyperlatent width
        42    4  hyperlatent stream length in bytes (uint32)
        46    4  latent stream length in bytes (uint32)
        50    4  CRC32 of the quantized symbols (z then y, as int64 little-endian)
        54    4  CRC32 of the payload (both streams)
        58    4  CRC32 of bytes 0..57 (the header above)
        62       hyperlatent stream, then latent stream

Any malformed input raises :class:`~hific_lit.errors.BitstreamError` with a message naming the
problem; :func:`read_hfc` and :func:`write_hfc` read and (atomically) write files.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import astuple, dataclass
from pathlib import Path

from hific_lit.errors import BitstreamError
from hific_lit.image_io import atomic_write_bytes

MAGIC = b"HFIC"
FORMAT_VERSION = 1
SUFFIX = ".hfc"
_FIELDS = struct.Struct("<4sH8sIIHIIHIIII")
_CRCS = struct.Struct("<II")
HEADER_SIZE = _FIELDS.size + _CRCS.size + 4
FINGERPRINT_SIZE = 8


@dataclass(frozen=True)
class Header:
    """The header fields of a .hfc file (magic, version and CRCs of header/payload aside)."""

    fingerprint: bytes
    height: int
    width: int
    y_shape: tuple[int, int, int]
    z_shape: tuple[int, int, int]
    z_length: int
    y_length: int
    symbols_crc: int


def pack(header: Header, z_stream: bytes, y_stream: bytes) -> bytes:
    """Header, CRCs and both streams as the bytes of a .hfc file."""
    if len(header.fingerprint) != FINGERPRINT_SIZE:
        raise ValueError(f"the fingerprint must be {FINGERPRINT_SIZE} bytes, not {len(header.fingerprint)}")
    if (header.z_length, header.y_length) != (len(z_stream), len(y_stream)):
        raise ValueError("the header's stream lengths do not match the streams")
    if max(header.z_length, header.y_length, header.height, header.width) >= 1 << 32:
        raise ValueError("the image or a stream is too large for format version 1 (4 GiB / 2**32 pixels a side)")
    fields = _FIELDS.pack(
        MAGIC,
        FORMAT_VERSION,
        header.fingerprint,
        header.height,
        header.width,
        *header.y_shape,
        *header.z_shape,
        header.z_length,
        header.y_length,
    )
    payload = z_stream + y_stream
    head = fields + _CRCS.pack(header.symbols_crc, zlib.crc32(payload))
    return head + struct.pack("<I", zlib.crc32(head)) + payload


def unpack(data: bytes) -> tuple[Header, bytes, bytes]:
    """Validate ``data`` and split it into (header, hyperlatent stream, latent stream).

    Checks, in order: length, magic, version, header CRC, sizes, stream lengths, payload CRC.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BitstreamError(f"expected the bytes of a .hfc file, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < 4 or data[:4] != MAGIC:
        raise BitstreamError(f"not a .hfc file: it does not start with the magic bytes {MAGIC!r}")
    if len(data) < HEADER_SIZE:
        raise BitstreamError(f"truncated .hfc file: {len(data)} bytes, shorter than the {HEADER_SIZE}-byte header")
    (version,) = struct.unpack_from("<H", data, 4)
    if version > FORMAT_VERSION:
        raise BitstreamError(
            f"the file uses .hfc format version {version}; this hific-lit reads up to version {FORMAT_VERSION}"
            " — upgrade hific-lit"
        )
    if version != FORMAT_VERSION:
        raise BitstreamError(f"unknown .hfc format version {version}")
    (header_crc,) = struct.unpack_from("<I", data, HEADER_SIZE - 4)
    if zlib.crc32(data[: HEADER_SIZE - 4]) != header_crc:
        raise BitstreamError("the .hfc header is corrupt (its CRC32 does not match)")
    fields = _FIELDS.unpack_from(data)
    symbols_crc, payload_crc = _CRCS.unpack_from(data, _FIELDS.size)
    _, _, fingerprint, height, width, yc, yh, yw, zc, zh, zw, z_length, y_length = fields
    header = Header(fingerprint, height, width, (yc, yh, yw), (zc, zh, zw), z_length, y_length, symbols_crc)
    if min(height, width, yc, yh, yw, zc, zh, zw) == 0:
        raise BitstreamError("the .hfc header has a zero image or latent size")
    payload = data[HEADER_SIZE:]
    if len(payload) != z_length + y_length:
        kind = "is truncated" if len(payload) < z_length + y_length else "has trailing bytes"
        raise BitstreamError(
            f"the .hfc file {kind}: the header announces {z_length + y_length} payload bytes, found {len(payload)}"
        )
    if zlib.crc32(payload) != payload_crc:
        raise BitstreamError("the .hfc payload is corrupt (its CRC32 does not match)")
    return header, payload[:z_length], payload[z_length:]


def header_fields(header: Header) -> dict[str, object]:
    """The header as a plain dict (for ``hific info``)."""
    names = ("fingerprint", "height", "width", "y_shape", "z_shape", "z_length", "y_length", "symbols_crc")
    fields = dict(zip(names, astuple(header), strict=True))
    fields["fingerprint"] = header.fingerprint.hex()
    fields["symbols_crc"] = f"{header.symbols_crc:08x}"
    return fields


def write_hfc(path: str | os.PathLike, data: bytes) -> None:
    """Write a .hfc file atomically (temporary file + rename)."""
    atomic_write_bytes(path, data)


def read_hfc(path: str | os.PathLike) -> bytes:
    """The bytes of a .hfc file, with a :class:`BitstreamError` when it cannot be read."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise BitstreamError(f"{path}: no such file") from None
    except OSError as exc:
        raise BitstreamError(f"{path}: cannot read ({exc.strerror or exc})") from None
