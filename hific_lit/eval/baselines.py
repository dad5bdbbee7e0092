"""Classical codecs at a matched rate: JPEG, WebP and (when Pillow has it) AVIF, all through Pillow.

For each image the quality setting is searched so that the file's bits per pixel come closest to
a target from at or above it, the usual way to compare against a learned codec at "the same bpp".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import PIL
from PIL import features

from hific_lit.io.files import bits_per_pixel
from hific_lit.io.images import encode_image, open_image

# name -> (Pillow format, file suffix, MIME type, lowest quality, highest quality)
_CODECS = {
    "jpeg": ("JPEG", ".jpg", "image/jpeg", 1, 100),
    "webp": ("WEBP", ".webp", "image/webp", 0, 100),
    "avif": ("AVIF", ".avif", "image/avif", 0, 100),
}


def available_baselines() -> list[str]:
    """The baseline codecs this Pillow build can encode."""
    return [name for name in _CODECS if name == "jpeg" or features.check(name)]


def pillow_version() -> str:
    """The Pillow version that encodes the baselines."""
    return PIL.__version__


def suffix(codec: str) -> str:
    """File suffix of a baseline's files."""
    return _CODECS[codec][1]


def mime_type(codec: str) -> str:
    """MIME type of a baseline's files."""
    return _CODECS[codec][2]


def encode(image: np.ndarray, codec: str, quality: int) -> bytes:
    """Encode an (H, W, 3) uint8 image with ``codec`` at ``quality``; the bytes of a complete file."""
    if codec not in available_baselines():
        raise ValueError(f"baseline {codec!r} is not available here; available: {', '.join(available_baselines())}")
    fmt = _CODECS[codec][0]
    options = {"quality": int(quality)}
    if codec == "jpeg":
        options["subsampling"] = "4:2:0"
    return encode_image(image, fmt, **options)


def decode(data: bytes) -> np.ndarray:
    """Decode a baseline file's bytes to (H, W, 3) uint8."""
    with open_image(data, "baseline file", max_pixels=None) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


@dataclass(frozen=True)
class MatchedBaseline:
    """A baseline encoding chosen for a target rate; ``matched`` is false when even the highest
    quality stays below the target (then the highest quality is used); ``encodes`` counts the tries."""

    codec: str
    quality: int
    bpp: float
    data: bytes
    matched: bool
    encodes: int


def match_bpp(image: np.ndarray, codec: str, target_bpp: float) -> MatchedBaseline:
    """Encode ``image`` at the quality whose bpp is closest to ``target_bpp`` from at or above.

    Binary search over the quality range (file size grows with quality); every tried setting is
    kept, and the smallest bpp at or above the target among them wins, so that a local
    non-monotonicity cannot pick a worse setting than one already seen.
    """
    *_, low, high = _CODECS[codec]
    height, width = image.shape[:2]
    tried: dict[int, bytes] = {}

    def rate(quality: int) -> float:
        if quality not in tried:
            tried[quality] = encode(image, codec, quality)
        return bits_per_pixel(len(tried[quality]), height, width)

    lo, hi = low, high
    while lo < hi:
        mid = (lo + hi) // 2
        if rate(mid) >= target_bpp:
            hi = mid
        else:
            lo = mid + 1
    rate(lo)
    above = [q for q in tried if rate(q) >= target_bpp]
    quality = min(above, key=rate) if above else max(tried)
    return MatchedBaseline(codec, quality, rate(quality), tried[quality], bool(above), len(tried))
