"""Turn a folder of images into WebDataset tar shards plus a JSON manifest (``scripts/make_shards.py``).

Each sample is ``<key>.<ext>`` (the image) and ``<key>.json`` (source path and sizes), with keys
numbered in sorted path order. Images are checked by decoding them in parallel worker processes;
unreadable ones are skipped, counted and listed in the manifest. Images whose shorter side exceeds
``max_short_side`` are downscaled (Lanczos) and stored as PNG; the others are stored byte for byte.
Tar headers carry no time stamps or owners, so the same inputs and settings give byte-identical
shards. Shards and manifest are written to temporary names and renamed when complete
(:func:`hific_lit.io.files.atomic_file`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import multiprocessing
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from hific_lit.data.image_files import find_images
from hific_lit.errors import ImageReadError
from hific_lit.io.files import atomic_file, atomic_write_bytes
from hific_lit.io.images import (
    DEFAULT_MAX_PIXELS,
    ImageTooLargeError,
    encode_image,
    open_image,
    pil_to_tensor,
    to_uint8,
)

FORMAT_SUFFIX = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "TIFF": "tif", "BMP": "bmp", "PPM": "ppm"}


@dataclass(frozen=True)
class ShardSettings:
    """Limits per shard and the optional pre-downscale; ``max_short_side=None`` keeps every image as is."""

    max_count: int = 10_000
    max_bytes: int = 1 << 30
    max_short_side: int | None = None
    prefix: str = "train"
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    """Larger images are skipped (decompression bombs), with a reason naming the limit."""


@dataclass(frozen=True)
class PreparedSample:
    """One image ready to be written: its encoded bytes, suffix and metadata, or why it was skipped."""

    source: str
    data: bytes = b""
    suffix: str = ""
    meta: bytes = b""
    error: str = ""
    downscaled: bool = False


def prepare_sample(
    path: Path, root: Path, max_short_side: int | None, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> PreparedSample:
    """Decode ``path`` to check it, downscale it when too large, and return what goes into the shard.

    An image of more than ``max_pixels`` pixels is skipped without being decoded.
    """
    source = path.relative_to(root).as_posix()
    try:
        data = path.read_bytes()
        with open_image(data, source, max_pixels, "make_shards.py --max-pixels N") as img:
            fmt, size = img.format, img.size
            downscale = max_short_side is not None and min(size) > max_short_side
            if downscale:
                data = _downscaled_png(img, max_short_side)
                fmt = "PNG"
    except ImageTooLargeError as exc:
        return PreparedSample(source, error=str(exc).removeprefix(f"{source}: "))
    except ImageReadError:
        return PreparedSample(source, error="not a recognised image format")
    except (OSError, SyntaxError, ValueError) as exc:
        return PreparedSample(source, error=f"{type(exc).__name__}: {exc}")
    if fmt not in FORMAT_SUFFIX:
        return PreparedSample(source, error=f"unsupported image format {fmt}")
    with open_image(data, source, max_pixels=None, decode=False) as check:
        stored_size = check.size
    meta = {"source": source, "size": list(size), "stored_size": list(stored_size)}
    return PreparedSample(source, data, FORMAT_SUFFIX[fmt], json.dumps(meta, sort_keys=True).encode(), "", downscale)


def _downscaled_png(img: Image.Image, short_side: int) -> bytes:
    rgb = Image.fromarray(to_uint8(pil_to_tensor(img)))
    scale = short_side / min(rgb.size)
    size = (max(short_side, round(rgb.width * scale)), max(short_side, round(rgb.height * scale)))
    return encode_image(np.asarray(rgb.resize(size, Image.Resampling.LANCZOS)))


def _prepare_star(args: tuple[Path, Path, int | None, int | None]) -> PreparedSample:
    return prepare_sample(*args)


def _member_bytes(data: bytes) -> int:
    """A tar member's size on disk: one 512-byte header plus the data padded to 512-byte blocks."""
    return 512 + -(-len(data) // 512) * 512


def _tar_bytes(members: int) -> int:
    """A tar file's size: its members, two 512-byte end blocks, rounded up to tarfile's 10240-byte records."""
    return -(-(members + 1024) // tarfile.RECORDSIZE) * tarfile.RECORDSIZE


class _ShardSink:
    """Writes numbered shards under size/count limits, each to a temporary name renamed on close."""

    def __init__(self, out_dir: Path, settings: ShardSettings) -> None:
        self.out_dir = out_dir
        self.settings = settings
        self.shards: list[dict] = []
        self._tar: tarfile.TarFile | None = None
        self._file = contextlib.ExitStack()
        self._count = 0
        self._bytes = 0

    def _member(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = len(data), 0, 0o644, 0, 0, "", ""
        self._tar.addfile(info, io.BytesIO(data))

    def add(self, key: str, sample: PreparedSample) -> None:
        size = _member_bytes(sample.data) + _member_bytes(sample.meta)
        if self._tar is not None and (
            self._count >= self.settings.max_count or _tar_bytes(self._bytes + size) > self.settings.max_bytes
        ):
            self.close()
        if self._tar is None:
            name = f"{self.settings.prefix}-{len(self.shards):06d}.tar"
            target = self._file.enter_context(atomic_file(self.out_dir / name))
            self._tar = tarfile.open(fileobj=target, mode="w", format=tarfile.USTAR_FORMAT)  # noqa: SIM115 (close())
            self.shards.append({"name": name, "samples": 0, "bytes": 0, "sha256": ""})
        self._member(f"{key}.{sample.suffix}", sample.data)
        self._member(f"{key}.json", sample.meta)
        self._count += 1
        self._bytes += size

    def close(self) -> None:
        """Finish the current shard: its end blocks, then the rename to its name."""
        if self._tar is None:
            return
        self._tar.close()
        self._file.close()
        entry = self.shards[-1]
        data = (self.out_dir / entry["name"]).read_bytes()
        entry.update(samples=self._count, bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
        self._tar, self._count, self._bytes = None, 0, 0

    def abort(self) -> None:
        """Drop the current shard's temporary file (called while an exception is being handled)."""
        if self._tar is not None:
            self._tar = None
            self._file.__exit__(*sys.exc_info())


def write_shards(
    src_dir: str | Path, out_dir: str | Path, settings: ShardSettings, workers: int = 1, progress: bool = True
) -> dict:
    """Write the shards and ``<prefix>-manifest.json`` into ``out_dir``; return the manifest.

    Shards of an earlier run with the same prefix beyond the new count are removed, so that the
    folder holds exactly the shards the manifest lists.
    """
    src, out = Path(src_dir).expanduser(), Path(out_dir).expanduser()
    paths = find_images(src)
    out.mkdir(parents=True, exist_ok=True)
    sink = _ShardSink(out, settings)
    skipped, downscaled, written = [], 0, 0
    jobs = [(p, src, settings.max_short_side, settings.max_pixels) for p in paths]
    pool = multiprocessing.get_context().Pool(workers) if workers > 1 else None
    try:
        results = pool.imap(_prepare_star, jobs, chunksize=8) if pool else map(_prepare_star, jobs)
        for sample in tqdm(results, total=len(jobs), desc="shards", unit="img", disable=not progress):
            if sample.error:
                skipped.append({"source": sample.source, "reason": sample.error})
                tqdm.write(f"skipped {sample.source}: {sample.error}", file=sys.stderr)
                continue
            downscaled += sample.downscaled
            sink.add(f"{written:09d}", sample)
            written += 1
        sink.close()
    except BaseException:
        sink.abort()
        raise
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    manifest = _manifest(src, settings, sink.shards, skipped, downscaled)
    atomic_write_bytes(out / f"{settings.prefix}-manifest.json", json.dumps(manifest, indent=1).encode() + b"\n")
    _remove_stale_shards(out, settings.prefix, len(sink.shards))
    return manifest


def _manifest(src: Path, settings: ShardSettings, shards: list[dict], skipped: list[dict], downscaled: int) -> dict:
    last = max(len(shards) - 1, 0)
    return {
        "format": "webdataset",
        "source": str(src),
        "pattern": f"{settings.prefix}-{{000000..{last:06d}}}.tar",
        "settings": {
            "max_count": settings.max_count,
            "max_bytes": settings.max_bytes,
            "max_short_side": settings.max_short_side,
        },
        "samples": sum(s["samples"] for s in shards),
        "bytes": sum(s["bytes"] for s in shards),
        "downscaled": downscaled,
        "skipped": skipped,
        "shards": shards,
    }


def _remove_stale_shards(out: Path, prefix: str, count: int) -> None:
    for path in sorted(out.glob(f"{prefix}-[0-9][0-9][0-9][0-9][0-9][0-9].tar")):
        if int(path.stem.rsplit("-", 1)[1]) >= count:
            path.unlink()
