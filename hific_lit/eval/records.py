"""What an evaluation writes: per-image rows (CSV and JSON), means, and the summary JSON.

The summary records how the numbers were made: the command line, the resolved config, the
versions of every library and codec involved, and which metrics were skipped and why.
"""

from __future__ import annotations

import csv
import io
import json
import math
import platform
import shlex
import subprocess
import sys
from dataclasses import asdict, dataclass, fields
from importlib import metadata
from pathlib import Path

from PIL import features

from hific_lit.io.files import atomic_write_bytes
from hific_lit.version import __version__

QUALITY_METRICS = ("psnr", "ms_ssim", "lpips", "delta_e")


@dataclass
class ImageResult:
    """One image coded by one method (ours with one checkpoint, or a baseline at its bpp).

    ``bpp`` is the file's size in bits (header included) over the image's pixels; ``quality`` is the
    baseline's quality setting (None for ours); ``matched`` is false when a baseline could not reach
    our bpp even at its highest quality; ``encode_s``/``decode_s`` time our codec (None for baselines);
    ``beta`` is set for rows of a realism-conditioned model decoded at several β (same file, same bpp).
    """

    checkpoint: str
    image: str
    method: str
    width: int
    height: int
    bytes: int
    bpp: float
    psnr: float
    ms_ssim: float | None
    lpips: float | None
    file: str
    delta_e: float | None = None
    """Colour error: mean CIEDE2000 of 8x8-block means (:func:`hific_lit.eval.metrics.colour_error`)."""
    quality: int | None = None
    matched: bool = True
    encode_s: float | None = None
    decode_s: float | None = None
    beta: float | None = None
    """The realism weight our reconstruction was decoded at (realism-conditioned models, ``realism_betas``)."""
    max_error: int | None = None
    """The largest difference of a pixel value from the original (``max_error`` runs: ours and the library codecs)."""
    rate: float | None = None
    """The rate R our file was coded at (rate-conditioned models: the one asked for, or found for a target bpp)."""


def mean_of(rows: list[ImageResult], key: str) -> float | None:
    """Mean of a field over rows; None when any row lacks it (a metric that was skipped)."""
    values = [getattr(r, key) for r in rows]
    return None if not values or any(v is None for v in values) else math.fsum(values) / len(values)


def means(rows: list[ImageResult]) -> dict[str, float | int | None]:
    """Means over images of bpp and each quality metric, the image count, and how many images a
    baseline could not bring up to our bpp (``unmatched``)."""
    out: dict[str, float | int | None] = {key: mean_of(rows, key) for key in ("bpp", *QUALITY_METRICS)}
    out["images"] = len(rows)
    out["unmatched"] = sum(not r.matched for r in rows)
    errors = [r.max_error for r in rows if r.max_error is not None]
    if errors:
        out["max_error"] = max(errors)
    if any(r.rate is not None for r in rows):
        out["rate"] = mean_of(rows, "rate")
    return out


def _write_json(path: Path, obj: object) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, allow_nan=True) + "\n").encode("utf-8"))


def write_rows(rows: list[ImageResult], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``per_image.csv`` and ``per_image.json`` into ``out_dir``; return both paths."""
    out_dir = Path(out_dir)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[f.name for f in fields(ImageResult)], lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(r) for r in rows)
    csv_path, json_path = out_dir / "per_image.csv", out_dir / "per_image.json"
    atomic_write_bytes(csv_path, buf.getvalue().encode("utf-8"))
    _write_json(json_path, [asdict(r) for r in rows])
    return csv_path, json_path


def _git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def environment_versions() -> dict[str, str | None]:
    """Versions of Python, the libraries that make the numbers, the image codecs and this code."""
    versions: dict[str, str | None] = {"python": platform.python_version(), "platform": platform.platform()}
    versions["hific_lit"] = __version__
    for package in ("torch", "torchvision", "torchmetrics", "torch-fidelity", "lpips", "torchac"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    versions["pillow"] = metadata.version("pillow")
    for codec in ("jpg", "webp", "avif"):
        versions[f"lib{codec}"] = features.version(codec)
    versions["git_commit"] = _git_commit()
    return versions


def command_line() -> str:
    """The command that started this process, quoted so that it can be pasted into a shell."""
    return shlex.join([sys.executable, *sys.argv])


def write_summary(summary: dict, out_dir: str | Path) -> Path:
    """Write ``summary.json`` into ``out_dir`` and return its path."""
    path = Path(out_dir) / "summary.json"
    _write_json(path, summary)
    return path
