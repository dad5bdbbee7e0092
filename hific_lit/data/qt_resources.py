"""Read the files inside a Qt binary resource archive (``.rcc``, as ``rcc -binary`` writes it).

Some Debian packages ship their photos inside such archives (GCompris: ``usr/share/gcompris-qt/rcc/*.rcc``).
The layout (Qt's ``rcc.cpp`` and ``qresource.cpp``, format versions 1-3): a header ``qres``, then the format
version, the offsets of the tree, the data and the names (and, from version 3, a flags word), all big-endian
32-bit. The tree is a table of nodes (14 bytes each, 22 from version 2 with a 64-bit modification time): a name
offset, 16-bit flags, then either a child count and the index of the first child (directories) or a territory,
a language and a data offset (files). A name is a 16-bit length, a 32-bit hash and UTF-16BE characters; a file's
data is a 32-bit length and its bytes, which are a zlib stream after a 32-bit uncompressed length when the node's
compressed flag is set (``qCompress``).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

from hific_lit.errors import DatasetError

MAGIC = b"qres"
COMPRESSED, DIRECTORY, COMPRESSED_ZSTD = 0x01, 0x02, 0x04


def _u16(data: bytes, offset: int) -> int:
    return struct.unpack_from(">H", data, offset)[0]


def _u32(data: bytes, offset: int) -> int:
    return struct.unpack_from(">I", data, offset)[0]


def resource_files(path: Path) -> Iterator[tuple[str, bytes]]:
    """Each file in the archive at ``path``: its resource path (``a/b/c.webp``, no leading ``/``) and its bytes.

    Raises :class:`DatasetError` when ``path`` is not a Qt resource archive, is truncated, or holds a file
    compressed with zstd (not read here).
    """
    data = Path(path).read_bytes()
    if len(data) < 20 or data[:4] != MAGIC:
        raise DatasetError(f"{path} is not a Qt resource archive (no 'qres' header)")
    version, tree, payload, names = (_u32(data, offset) for offset in (4, 8, 12, 16))
    if version not in (1, 2, 3):
        raise DatasetError(f"{path}: Qt resource format version {version} is not read here (1-3 are)")
    node_size = 14 if version == 1 else 22

    def name(node: int) -> str:
        offset = names + _u32(data, tree + node * node_size)
        length = _u16(data, offset)
        return data[offset + 6 : offset + 6 + 2 * length].decode("utf-16-be")

    def walk(node: int, parent: str) -> Iterator[tuple[str, bytes]]:
        base = tree + node * node_size
        here, flags = parent + name(node) if node else "", _u16(data, base + 4)  # the root node has no name
        if flags & DIRECTORY:
            count, first = _u32(data, base + 6), _u32(data, base + 10)
            for child in range(first, first + count):
                yield from walk(child, f"{here}/" if here else "")
            return
        offset = payload + _u32(data, base + 10)
        size = _u32(data, offset)
        blob = data[offset + 4 : offset + 4 + size]
        if len(blob) != size:
            raise DatasetError(f"{path} is truncated: {here} needs {size} bytes, {len(blob)} are left")
        if flags & COMPRESSED_ZSTD:
            raise DatasetError(f"{path}: {here} is zstd-compressed, which is not read here")
        if flags & COMPRESSED:
            blob = zlib.decompress(blob[4:])
        yield here, blob

    try:
        yield from walk(0, "")
    except (struct.error, zlib.error, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path} is a damaged Qt resource archive ({exc})") from exc
