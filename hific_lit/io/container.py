"""The .hfc container: a fixed little-endian header, then the hyperlatent and latent streams (and sections).

Byte layout of format version 2 (all integers little-endian; docs/hfc-format.md has the detail)::

    offset size  field
         0    4  magic b"HFIC"
         4    2  format version (uint16) = 2
         6    8  model fingerprint (see HiFiC.fingerprint)
        14    1  latent likelihood (0 Gaussian, 1 logistic)
        15    1  model kind (0 HiFiC, 1 GC2018; was reserved, 0, so every earlier file is HiFiC)
        16    4  image height (uint32)
        20    4  image width (uint32)
        24    2  latent channels (uint16)      26  4  latent height      30  4  latent width
        34    2  hyperlatent channels (uint16) 36  4  hyperlatent height 40  4  hyperlatent width
        44    4  hyperlatent stream length in bytes (uint32)
        48    4  latent stream length in bytes (uint32)
        52    4  CRC32 of the payload (both streams)
        56    4  CRC32 of bytes 0..55 (the header above)
        60       hyperlatent stream, then latent stream (each ends with the CRC32 of its symbols)

Version 3 is version 2 with typed **sections** after the latent stream, for what a file holds beyond the
latent: its header has one more field before the payload CRC, ``52  4  sections length in bytes (uint32)``
(so the payload CRC is at 56, the header CRC at 60, the payload at 64), and the payload CRC covers the
sections too. Each section is ``tag (uint8), length (uint32), bytes``; :data:`SECTION_TAGS` names the tags
(a tag this hific-lit does not know is refused: a newer writer). A file without sections is written as
version 2, byte for byte as before sections existed.

Version 1 (still read) has no likelihood byte and holds the CRC32 of all symbols in the header
instead of each stream. Any malformed input raises :class:`~hific_lit.errors.BitstreamError` with
a message naming the problem; :func:`read_hfc` and :func:`write_hfc` read and (atomically) write files.
"""

from __future__ import annotations

import dataclasses
import io
import os
import struct
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

from hific_lit.errors import BitstreamError
from hific_lit.io.files import atomic_write_bytes

MAGIC = b"HFIC"
FORMAT_VERSION = 3
"""The newest version: what a file with sections is written in (one without is written as version 2)."""
PLAIN_VERSION = 2
"""The version of a file without sections."""
READABLE_VERSIONS = (1, 2, 3)
SUFFIX = ".hfc"
FINGERPRINT_SIZE = 8
_FIELDS = {
    1: struct.Struct("<4sH8sIIHIIHIIIII"),
    2: struct.Struct("<4sH8sBBIIHIIHIIII"),
    3: struct.Struct("<4sH8sBBIIHIIHIIIII"),
}
"""The header up to the payload CRC; version 1's ends with the symbols' CRC32, version 3's with the sections' length."""
HEADER_SIZES = {version: fields.size + 8 for version, fields in _FIELDS.items()}
"""Header bytes, both CRCs included: 62 in version 1, 60 in version 2, 64 in version 3."""
HEADER_SIZE = HEADER_SIZES[PLAIN_VERSION]
SECTION_TAGS: dict[int, str] = {}
"""Tag (uint8) -> name of each kind of section a file may hold (rate, residual, ...): registered by the models
that write them, with :func:`register_section`."""
_SECTION_HEAD = struct.Struct("<BI")
MODEL_KINDS = {0: "hific", 1: "gc2018"}
"""Byte 15 of a version-2 header: the model that wrote the file. A GC2018 file (:mod:`hific_lit.models.gc2018`) has
no hyperlatent: its z shape is (0, 0, 0) and its hyperlatent stream is empty."""


@dataclass(frozen=True)
class Header:
    """The header fields of a .hfc file (magic and the CRCs of header and payload aside).

    ``likelihood`` is the latent likelihood's code (version 2; version 1 files are Gaussian);
    ``symbols_crc`` is the CRC32 of all symbols (version 1 only; version 2 streams check themselves);
    ``kind`` the model kind (:data:`MODEL_KINDS`, version 2; version 1 files are HiFiC);
    ``sections_length`` the bytes of the sections after the latent stream (version 3).
    """

    fingerprint: bytes
    height: int
    width: int
    y_shape: tuple[int, int, int]
    z_shape: tuple[int, int, int]
    z_length: int
    y_length: int
    version: int = PLAIN_VERSION
    likelihood: int = 0
    symbols_crc: int | None = None
    kind: int = 0
    sections_length: int = 0


def register_section(tag: int, name: str) -> None:
    """Name the section ``tag`` (1..255) of version-3 files; one tag per name and one name per tag."""
    known = SECTION_TAGS.get(tag)
    if not 1 <= tag <= 255 or known not in (None, name) or (known is None and name in SECTION_TAGS.values()):
        raise ValueError(f"section tag {tag} ({name!r}) clashes with the registered ones {SECTION_TAGS}")
    SECTION_TAGS[tag] = name


def pack(header: Header, z_stream: bytes, y_stream: bytes, sections: Mapping[str, bytes] | None = None) -> bytes:
    """Header, CRCs, both streams and the sections as the bytes of a .hfc file (through :func:`write_container`)."""
    if (header.z_length, header.y_length) != (len(z_stream), len(y_stream)):
        raise ValueError("the header's stream lengths do not match the streams")
    out = io.BytesIO()
    write_container(out, header, z_stream, lambda write: write(y_stream), sections)
    return out.getvalue()


def pack_header(header: Header, payload_crc: int) -> bytes:
    """The header of a .hfc file (of ``header.version``) whose payload (both streams) has the CRC32 ``payload_crc``:
    :data:`HEADER_SIZES` bytes, its own CRC32 last. The payload follows it in the file."""
    if len(header.fingerprint) != FINGERPRINT_SIZE:
        raise ValueError(f"the fingerprint must be {FINGERPRINT_SIZE} bytes, not {len(header.fingerprint)}")
    if max(header.z_length, header.y_length, header.height, header.width) >= 1 << 32:
        raise ValueError("the image or a stream is too large for the .hfc format (4 GiB / 2**32 pixels a side)")
    sizes = (header.height, header.width, *header.y_shape, *header.z_shape, header.z_length, header.y_length)
    if header.version == 1:
        if header.symbols_crc is None:
            raise ValueError("format version 1 needs the symbols' CRC32 in the header")
        fields = _FIELDS[1].pack(MAGIC, 1, header.fingerprint, *sizes, header.symbols_crc)
    elif header.version == 2:
        fields = _FIELDS[2].pack(MAGIC, 2, header.fingerprint, header.likelihood, header.kind, *sizes)
    elif header.version == 3:
        if header.sections_length >= 1 << 32:
            raise ValueError("the sections are too large for the .hfc format (4 GiB)")
        extra = (header.sections_length,)
        fields = _FIELDS[3].pack(MAGIC, 3, header.fingerprint, header.likelihood, header.kind, *sizes, *extra)
    else:
        raise ValueError(f"cannot write .hfc format version {header.version}")
    head = fields + struct.pack("<I", payload_crc)
    return head + struct.pack("<I", zlib.crc32(head))


class _Payload:
    """Passes bytes on to a file, counting them and their CRC32."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.size, self.crc = f, 0, 0

    def write(self, data: bytes) -> None:
        self.f.write(data)
        self.size += len(data)
        self.crc = zlib.crc32(data, self.crc)


def write_container(
    f: BinaryIO,
    header: Header,
    z_stream: bytes,
    write_y: Callable[[Callable[[bytes], None]], None],
    sections: Mapping[str, bytes] | None = None,
) -> int:
    """Write a .hfc file (of ``header.version``) at ``f``'s position (``f`` seekable; left at the end of the file);
    the bytes written. The one writer of .hfc files (:func:`pack` writes through it into memory).

    The header goes first in the file but is written last, over a placeholder, once the stream lengths and the
    payload's CRC32 are known (``header``'s lengths are replaced): ``write_y(write)`` codes the latent stream
    into ``write`` piece by piece, so a large image's stream (~60 MB for a 144-megapixel photo with the
    ``small`` model) never exists whole in memory, nor do the copies that joining header and streams makes.
    ``sections`` (name -> bytes, names from :data:`SECTION_TAGS`) follow the latent stream; with any, the file is
    written in version 3, else in ``header.version``.
    """
    tags = {name: tag for tag, name in SECTION_TAGS.items()}
    unknown = sorted(set(sections or {}) - set(tags))
    if unknown:
        raise ValueError(f"unknown .hfc sections {unknown}; known: {sorted(tags)}")
    if sections:
        header = dataclasses.replace(header, version=FORMAT_VERSION)
    start = f.tell()
    f.write(bytes(HEADER_SIZES[header.version]))
    payload = _Payload(f)
    payload.write(z_stream)
    write_y(payload.write)
    y_end = payload.size
    for name, data in (sections or {}).items():
        payload.write(_SECTION_HEAD.pack(tags[name], len(data)))
        payload.write(data)
    lengths = {"z_length": len(z_stream), "y_length": y_end - len(z_stream), "sections_length": payload.size - y_end}
    header = dataclasses.replace(header, **lengths)
    end = f.tell()
    f.seek(start)
    f.write(pack_header(header, payload.crc))
    f.seek(end)
    return end - start


class Unpacked(NamedTuple):
    """A checked .hfc file: its header, hyperlatent and latent streams, and its sections by name (version 3)."""

    header: Header
    z_stream: bytes
    y_stream: bytes
    sections: dict[str, bytes]


def unpack(data: bytes) -> Unpacked:
    """Validate ``data`` and split it into (header, hyperlatent stream, latent stream, sections).

    Checks, in order: length, magic, version, header CRC, sizes, stream lengths, payload CRC, sections.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BitstreamError(f"expected the bytes of a .hfc file, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < 4 or data[:4] != MAGIC:
        raise BitstreamError(f"not a .hfc file: it does not start with the magic bytes {MAGIC!r}")
    if len(data) < 6:
        raise BitstreamError(f"truncated .hfc file: {len(data)} bytes, too short to hold its format version")
    (version,) = struct.unpack_from("<H", data, 4)
    if version > max(READABLE_VERSIONS):
        raise BitstreamError(
            f"the file uses .hfc format version {version}; this hific-lit reads up to version {max(READABLE_VERSIONS)}"
            " — upgrade hific-lit"
        )
    if version not in READABLE_VERSIONS:
        raise BitstreamError(f"unknown .hfc format version {version}")
    size = HEADER_SIZES[version]
    if len(data) < size:
        raise BitstreamError(f"truncated .hfc file: {len(data)} bytes, shorter than the {size}-byte header")
    (header_crc,) = struct.unpack_from("<I", data, size - 4)
    if zlib.crc32(data[: size - 4]) != header_crc:
        raise BitstreamError("the .hfc header is corrupt (its CRC32 does not match)")
    fields = _FIELDS[version].unpack_from(data)
    (payload_crc,) = struct.unpack_from("<I", data, size - 8)
    sections_length = 0
    if version == 1:
        _, _, fingerprint, height, width, yc, yh, yw, zc, zh, zw, z_length, y_length, symbols_crc = fields
        likelihood = kind = 0
    else:
        _, _, fingerprint, likelihood, kind, height, width, yc, yh, yw, zc, zh, zw, z_length, y_length = fields[:15]
        sections_length = fields[15] if version == 3 else 0
        symbols_crc = None
        if kind not in MODEL_KINDS:
            raise BitstreamError(
                f"the .hfc header's model kind (byte 15, reserved before GC2018) is {kind}, an unknown kind"
                " (corrupt or a newer writer)"
            )
    shapes = ((yc, yh, yw), (zc, zh, zw))
    header = Header(
        fingerprint, height, width, *shapes, z_length, y_length, version, likelihood, symbols_crc, kind, sections_length
    )
    z_sizes = (zc, zh, zw) if MODEL_KINDS[kind] == "hific" else (1,)
    if min(height, width, yc, yh, yw, *z_sizes) == 0:
        raise BitstreamError("the .hfc header has a zero image or latent size")
    payload = data[size:]
    announced = z_length + y_length + sections_length
    if len(payload) != announced:
        kind = "is truncated" if len(payload) < announced else "has trailing bytes"
        raise BitstreamError(
            f"the .hfc file {kind}: the header announces {announced} payload bytes, found {len(payload)}"
        )
    if zlib.crc32(payload) != payload_crc:
        raise BitstreamError("the .hfc payload is corrupt (its CRC32 does not match)")
    y_end = z_length + y_length
    sections = _split_sections(payload[y_end:])
    return Unpacked(header, payload[:z_length], payload[z_length:y_end], sections)


def _split_sections(data: bytes) -> dict[str, bytes]:
    """The sections of a version-3 payload by name; a malformed list or an unknown tag is a :class:`BitstreamError`."""
    sections: dict[str, bytes] = {}
    offset = 0
    while offset < len(data):
        if offset + _SECTION_HEAD.size > len(data):
            raise BitstreamError("the .hfc sections are malformed (a section header is cut off)")
        tag, length = _SECTION_HEAD.unpack_from(data, offset)
        offset += _SECTION_HEAD.size
        if tag not in SECTION_TAGS:
            raise BitstreamError(
                f"the .hfc file holds a section of unknown tag {tag} (a newer writer?) — upgrade hific-lit"
            )
        if offset + length > len(data) or SECTION_TAGS[tag] in sections:
            raise BitstreamError(f"the .hfc section {SECTION_TAGS[tag]!r} is malformed (cut off or repeated)")
        sections[SECTION_TAGS[tag]] = data[offset : offset + length]
        offset += length
    return sections


LIKELIHOOD_NAMES = {0: "gaussian", 1: "logistic"}
"""Names of the latent likelihood codes (as :data:`hific_lit.entropy.CONDITIONALS` numbers them)."""


def header_fields(header: Header) -> dict[str, object]:
    """The header as a plain dict (for ``hific info``)."""
    fields: dict[str, object] = {"version": header.version, "fingerprint": header.fingerprint.hex()}
    if header.version >= 2:
        fields["model"] = MODEL_KINDS[header.kind]
        if MODEL_KINDS[header.kind] == "hific":  # GC2018 has no conditional likelihood
            fields["likelihood"] = LIKELIHOOD_NAMES.get(header.likelihood, f"unknown ({header.likelihood})")
    fields.update(height=header.height, width=header.width, y_shape=header.y_shape, z_shape=header.z_shape)
    fields.update(z_length=header.z_length, y_length=header.y_length)
    if header.version >= 3:
        fields["sections_length"] = header.sections_length
    if header.symbols_crc is not None:
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
    except IsADirectoryError:
        raise BitstreamError(f"{path}: is a folder, not a .hfc file") from None
    except OSError as exc:
        raise BitstreamError(f"{path}: cannot read ({exc.strerror or exc})") from None
