"""Library codecs that keep every pixel within K of the original: what the error bound is measured against.

At K = 0 the lossless codecs: PNG (Pillow, zlib level 9), lossless WebP (Pillow/libwebp, ``method=6``,
``quality=100``: its slowest, smallest setting), lossless JPEG-XL (libjxl, effort 7, its default), lossless
JPEG 2000 (OpenJPEG, 5/3 wavelet) and JPEG-LS (CharLS). At K >= 1 the near-lossless ones, each with a
guaranteed per-pixel bound: JPEG-LS with NEAR = K (ISO/IEC 14495-1), and JPEG-XL or WebP coding
``floor((x + K) / (2K + 1))``, the pixels quantized with step 2K + 1, losslessly (decoded as
``min(255, (2K + 1) q)``), the simplest near-lossless scheme. The lossless codecs also meet every K;
their rate does not change with it. JPEG-XL, JPEG 2000 and JPEG-LS come from the optional
``imagecodecs`` package (``pip install hific-lit[lossless]``); without it only PNG and WebP are offered.

Every encoding is decoded again and its maximum error measured (:func:`bounded_encodings`): a codec
whose decoding is beyond K is reported as such, never counted.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np
from PIL import Image, features


@functools.cache
def imagecodecs_module() -> ModuleType | None:
    """The optional imagecodecs package, or None."""
    try:
        import imagecodecs
    except ImportError:
        return None
    return imagecodecs


def _pillow(fmt: str, **options: object) -> Callable[[np.ndarray], bytes]:
    def encode(pixels: np.ndarray) -> bytes:
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, fmt, **options)
        return out.getvalue()

    return encode


def _pillow_decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


@dataclass(frozen=True)
class LibraryCodec:
    """One library codec: ``encode(pixels, K)`` gives a file whose ``decode`` is within K. ``near``: K >= 1
    changes its output (a lossless codec gives the same file at every K); ``quantizer``: a lossless codec of
    quantized pixels, left out at K = 0 where it is that codec itself."""

    name: str
    encode: Callable[[np.ndarray, int], bytes]
    decode: Callable[[bytes, int], np.ndarray]
    suffix: str
    near: bool = False
    quantizer: bool = False


def _quantized(encode: Callable[[np.ndarray], bytes]) -> Callable[[np.ndarray, int], bytes]:
    def run(pixels: np.ndarray, k: int) -> bytes:
        return encode(((pixels.astype(np.int32) + k) // (2 * k + 1)).astype(np.uint8))

    return run


def _dequantized(decode: Callable[[bytes], np.ndarray]) -> Callable[[bytes, int], np.ndarray]:
    def run(data: bytes, k: int) -> np.ndarray:
        return np.minimum(decode(data).astype(np.int32) * (2 * k + 1), 255).astype(np.uint8)

    return run


def _lossless(
    name: str, suffix: str, encode: Callable[[np.ndarray], bytes], decode: Callable[[bytes], np.ndarray]
) -> LibraryCodec:
    return LibraryCodec(name, lambda pixels, k: encode(pixels), lambda data, k: decode(data), suffix)


@functools.cache
def library_codecs() -> tuple[LibraryCodec, ...]:
    """The codecs available here (PNG and WebP always; the rest with ``imagecodecs``)."""
    webp = _pillow("WEBP", lossless=True, quality=100, method=6, exact=True)
    codecs = [_lossless("png", ".png", _pillow("PNG", optimize=True, compress_level=9), _pillow_decode)]
    if features.check("webp"):
        codecs.append(_lossless("webp", ".webp", webp, _pillow_decode))
    ic = imagecodecs_module()
    if ic is not None:
        jxl = functools.partial(ic.jpegxl_encode, lossless=True, effort=7)
        codecs += [
            _lossless("jpegxl", ".jxl", jxl, ic.jpegxl_decode),
            _lossless(
                "jpeg2000", ".jp2", functools.partial(ic.jpeg2k_encode, level=0, reversible=True), ic.jpeg2k_decode
            ),
            LibraryCodec(
                "jpegls",
                lambda pixels, k: ic.jpegls_encode(pixels, level=k),
                lambda d, k: ic.jpegls_decode(d),
                ".jls",
                near=True,
            ),
            LibraryCodec("jpegxl-q", _quantized(jxl), _dequantized(ic.jpegxl_decode), ".q.jxl", True, True),
        ]
    if features.check("webp"):
        codecs.append(LibraryCodec("webp-q", _quantized(webp), _dequantized(_pillow_decode), ".q.webp", True, True))
    return tuple(codecs)


@dataclass(frozen=True)
class BoundedEncoding:
    """One codec's file for one image at one K: its size, the largest error of its decoding, the file and the
    decoding themselves."""

    codec: str
    max_error: int
    num_bytes: int
    measured_error: int
    suffix: str = ""
    data: bytes = field(default=b"", repr=False)
    decoded: np.ndarray | None = field(default=None, repr=False)

    def bpp(self, height: int, width: int) -> float:
        """Bits per pixel of the file."""
        return 8.0 * self.num_bytes / (height * width)


def bounded_encodings(
    pixels: np.ndarray, max_error: int, codecs: tuple[str, ...] | None = None
) -> list[BoundedEncoding]:
    """Each library codec's encoding of (H, W, 3) uint8 ``pixels`` at ``max_error``, decoded and measured.

    At K = 0 the quantizing schemes are left out (they are their lossless codecs there).
    """
    out = []
    for codec in library_codecs():
        if (codecs is not None and codec.name not in codecs) or (codec.quantizer and max_error == 0):
            continue
        data = codec.encode(np.ascontiguousarray(pixels), max_error)
        decoded = codec.decode(data, max_error)
        error = int(np.abs(decoded.astype(np.int16) - pixels.astype(np.int16)).max())
        out.append(BoundedEncoding(codec.name, max_error, len(data), error, codec.suffix, data, decoded))
    return out
