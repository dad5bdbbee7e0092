"""Reading images into float RGB tensors and writing reconstructions, with explicit conversions.

Every input becomes 8-bit-equivalent RGB in [0, 1]: EXIF orientation is applied, grayscale is
replicated to three channels, alpha is dropped (reported through ``notes``), palette images are
expanded, and 16-bit images are scaled from 0..65535.

Images are opened lazily and their size is checked before their pixels are decoded: a 110 kB
PNG can claim 30000 x 30000 pixels (a decompression bomb: 2.7 GB as 8-bit RGB, 10.8 GB as float).
Above ``max_pixels`` (default :data:`DEFAULT_MAX_PIXELS`) reading fails with
:class:`ImageTooLargeError`, whose one-line message names the limit and the option that raises it.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from hific_lit.errors import ImageReadError
from hific_lit.io.files import atomic_write, atomic_write_bytes

EXIF_ORIENTATION = 0x0112
DEFAULT_MAX_PIXELS = 1 << 28
"""268,435,456 pixels (16384 x 16384): larger images are refused unless the limit is raised."""


class ImageTooLargeError(ImageReadError):
    """An image has more pixels than the decompression-bomb limit allows."""


@contextlib.contextmanager
def _pillow_size_check_off() -> Iterator[None]:
    """Pillow's own bomb check off (its limit is global); the caller checks the size itself."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def open_image(
    source: str | os.PathLike | bytes,
    label: str | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    option: str = "--max-pixels N",
    decode: bool = True,
) -> Image.Image:
    """Open an image file or encoded bytes, refusing more than ``max_pixels`` before decoding the pixels.

    The one image opener of the package (command line, training data, shards, evaluation).
    ``decode=False`` returns the image lazily (size and format known, pixels not yet read).
    Raises :class:`ImageTooLargeError` naming the size, the limit and ``option`` (how the user raises
    it), or :class:`ImageReadError` when ``source`` is missing or not a readable image; ``label``
    names the source in messages (default: the path). ``max_pixels=None`` accepts any size.
    """
    label = label or str(source)
    if not isinstance(source, bytes) and not Path(source).is_file():
        raise ImageReadError(f"{label}: no such image file")
    try:
        with _pillow_size_check_off():
            img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{label}: not a readable image ({exc})") from None
    width, height = img.size
    if max_pixels is not None and width * height > max_pixels:
        img.close()
        raise ImageTooLargeError(
            f"{label}: {width}x{height} = {width * height:,} pixels is over the limit of {max_pixels:,} pixels "
            f"(a guard against decompression bombs); raise it with {option} if the image is genuine"
        )
    if decode:
        try:
            with _pillow_size_check_off():
                img.load()
        except (OSError, SyntaxError, ValueError) as exc:
            img.close()
            raise ImageReadError(f"{label}: not a readable image ({exc})") from None
    return img


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".ppm")


def pil_to_tensor(img: Image.Image, notes: list[str] | None = None, uint8: bool = False) -> torch.Tensor:
    """Convert a PIL image to a (3, H, W) float32 tensor in [0, 1]; append conversions made to ``notes``.

    ``uint8``: 8-bit images come back as (3, H, W) uint8 (a quarter of the memory; the codec converts
    them tile by tile); 16-bit and float images still come back as float32, keeping their precision.
    """
    notes = notes if notes is not None else []
    if img.getexif().get(EXIF_ORIENTATION, 1) != 1:
        img = ImageOps.exif_transpose(img)
        notes.append("applied EXIF orientation")
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I") else max(1.0, float(arr.max()))
        arr = np.clip(arr / top, 0.0, 1.0)[..., None].repeat(3, axis=2)
        notes.append(f"converted {mode} grayscale to RGB (scaled from 0..{int(top)})")
        return torch.from_numpy(arr.astype(np.float32)).permute(2, 0, 1).contiguous()
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        notes.append("dropped the alpha channel")
    elif mode in ("L", "1"):
        notes.append("converted grayscale to RGB")
    elif mode != "RGB":
        notes.append(f"converted {mode} to RGB")
    rgb = img if mode == "RGB" else img.convert("RGB")
    pixels = torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1)  # one copy; (3, H, W) view of HWC
    return pixels if uint8 else pixels.float().div_(255.0)


def load_image(
    path: str | os.PathLike,
    notes: list[str] | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    option: str = "--max-pixels N",
    uint8: bool = False,
) -> torch.Tensor:
    """Read an image file (PNG, JPEG, WebP, TIFF, ...) as a (3, H, W) float tensor in [0, 1]
    (``uint8``: 8-bit files as a uint8 tensor, see :func:`pil_to_tensor`).

    Raises :class:`ImageReadError` naming the file when it is missing or not a readable image, and
    :class:`ImageTooLargeError` above ``max_pixels`` (see :func:`open_image`).
    """
    with open_image(path, str(path), max_pixels, option, decode=False) as img:
        pixels = _decode_rgb8_png(path) if img.format == "PNG" and _plain_rgb8_png(path) else None
        if pixels is None:
            with _pillow_size_check_off():
                try:
                    img.load()
                except (OSError, SyntaxError, ValueError) as exc:
                    raise ImageReadError(f"{path}: not a readable image ({exc})") from None
            return pil_to_tensor(img, notes, uint8)
    pixels = torch.from_numpy(pixels).permute(2, 0, 1)
    return pixels if uint8 else pixels.float().div_(255.0)


def _plain_rgb8_png(path: str | os.PathLike) -> bool:
    """Whether the PNG is 8-bit truecolour (IHDR depth 8, colour type 2) with no EXIF chunk (so no rotation
    to apply), read from the chunk headers alone (Pillow's ``getexif`` would decode the pixels to look)."""
    with open(path, "rb") as f:
        head = f.read(33)
        if len(head) < 33 or head[12:16] != b"IHDR" or head[24:26] != b"\x08\x02":
            return False
        while len(header := f.read(8)) == 8 and header[4:] != b"IEND":
            if header[4:] == b"eXIf":
                return False
            f.seek(int.from_bytes(header[:4], "big") + 4, os.SEEK_CUR)
    return True


def _decode_rgb8_png(path: str | os.PathLike) -> np.ndarray | None:
    """The (H, W, 3) uint8 pixels of an 8-bit RGB PNG by libspng (``pyspng``), straight into one array:
    Pillow holds RGB at 4 bytes a pixel and then copies it (a 144 MP photo: 1 GB more at the peak).
    None when pyspng is not installed or the file does not decode (Pillow then reads it and reports)."""
    try:
        import pyspng
    except ImportError:
        return None
    try:
        pixels = pyspng.load(Path(path).read_bytes(), format="RGB")
    except (RuntimeError, ValueError):
        return None
    return pixels if pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3 else None


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) or (1, 3, H, W) float in [0, 1] (or already uint8) -> (H, W, 3) uint8, rounding to nearest."""
    if x.dim() == 4:
        x = x[0]
    if x.dtype == torch.uint8:
        return x.permute(1, 2, 0).cpu().numpy()
    return x.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def encode_image(pixels: np.ndarray, fmt: str = "PNG", **options: object) -> bytes:
    """The bytes of an image file (Pillow format ``fmt``, e.g. PNG, JPEG, WEBP, with its ``options``) holding an
    (H, W, 3) uint8 image: reconstructions, baselines and viewers all encode through this."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt, **options)
    return buf.getvalue()


PNG_ROWS_PER_BAND = 16
"""Rows filtered at a time by :func:`write_png` (a 12000-pixel-wide band: 0.6 MB of pixels, ~10 MB of filter work)."""
_PNG_IDAT_BYTES = 1 << 20
_PNG_COMPRESS_LEVEL = 6
"""zlib level 6 with the Z_FILTERED strategy and memory level 9, as Pillow writes PNGs by default."""


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))


def _filtered_rows(rows: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """PNG scanlines (filter byte + filtered bytes) of ``rows`` (n, W * 3) uint8 below the row ``previous``.

    Each row gets the filter among none, up, sub and Paeth (PNG 1.2, sec. 6) whose output has the least
    sum of absolute values taken as signed bytes, the first of them on a tie: Pillow's choice (its
    ``ZipEncode.c``, after libpng; the average filter only with ``optimize``).
    """
    x = rows.astype(np.int16)
    up = np.concatenate([previous[None].astype(np.int16), x[:-1]])
    left = np.zeros_like(x)
    left[:, 3:] = x[:, :-3]
    up_left = np.zeros_like(x)
    up_left[:, 3:] = up[:, :-3]
    pa, pb, pc = np.abs(up - up_left), np.abs(left - up_left), np.abs(left + up - 2 * up_left)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
    candidates = np.stack([x, x - up, x - left, x - paeth]).astype(np.uint8)
    best = np.abs(candidates.view(np.int8).astype(np.int16)).sum(axis=2, dtype=np.int64).argmin(axis=0)
    out = np.empty((rows.shape[0], rows.shape[1] + 1), dtype=np.uint8)
    out[:, 0] = np.array([0, 2, 1, 4], dtype=np.uint8)[best]
    out[:, 1:] = candidates[best, np.arange(rows.shape[0])]
    return out


def write_png(f: BinaryIO, x: torch.Tensor) -> None:
    """Write the 8-bit RGB image ``x`` ((3, H, W) or (1, 3, H, W), uint8, any strides) to ``f`` as a PNG.

    Rows are filtered and deflated a band of :data:`PNG_ROWS_PER_BAND` at a time and written as they
    are compressed, so nothing image-sized is allocated: Pillow would hold the image at 4 bytes a pixel
    and then the whole file (a 144-megapixel image: ~1 GB more than the 8-bit image).
    """
    x = x[0] if x.dim() == 4 else x
    if x.dtype != torch.uint8 or x.dim() != 3 or x.shape[0] != 3:
        raise ValueError(f"write_png takes a (3, H, W) uint8 image, got {tuple(x.shape)} {x.dtype}")
    _, height, width = x.shape
    f.write(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
    deflate = zlib.compressobj(_PNG_COMPRESS_LEVEL, zlib.DEFLATED, 15, 9, zlib.Z_FILTERED)
    pending = bytearray()
    previous = np.zeros(3 * width, dtype=np.uint8)
    for r0 in range(0, height, PNG_ROWS_PER_BAND):
        band = x[:, r0 : r0 + PNG_ROWS_PER_BAND].permute(1, 2, 0).cpu().numpy().reshape(-1, 3 * width)
        pending += deflate.compress(_filtered_rows(band, previous))
        previous = band[-1].copy()
        if len(pending) >= _PNG_IDAT_BYTES:
            f.write(_png_chunk(b"IDAT", bytes(pending)))
            pending.clear()
    pending += deflate.flush()
    f.write(_png_chunk(b"IDAT", bytes(pending)) + _png_chunk(b"IEND", b""))


def save_image(x: torch.Tensor, path: str | os.PathLike) -> None:
    """Save a (3, H, W) or (1, 3, H, W) image (float in [0, 1], or uint8) atomically; the format follows the suffix.

    A uint8 image saved as PNG is written by :func:`write_png`, band by band (large images in little
    memory); other formats and float images go through Pillow.
    """
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ImageReadError(f"{path}: unknown image format {path.suffix!r}; use .png, .jpg, .webp or .tiff")
    if fmt == "PNG" and x.dtype == torch.uint8:
        atomic_write(path, lambda f: write_png(f, x))
    else:
        atomic_write_bytes(path, encode_image(to_uint8(x), fmt))
