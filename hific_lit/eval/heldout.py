"""The bundled model on the held-out photos, next to JPEG at the same rate: what `make demo` and
``scripts/bench_bundled.py`` show.

Each held-out photo (the manifest's ``heldout`` role, Debian's ``mate-backgrounds``: never trained or validated
on) is shrunk once so that its shorter side is at most ``max_short_side`` (the scale the model trained at),
coded into a real ``.hfc`` file and decoded from it (bpp from the file's size), and JPEG (Pillow, 4:2:0) is
encoded at the lowest quality whose rate is at or above that bpp. Both get PSNR and colour error
(:func:`~hific_lit.eval.metrics.colour_error`, mean CIEDE2000 of 8x8-block means).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from hific_lit.data.photo_set import photo_paths
from hific_lit.data.sample import shrink, upright
from hific_lit.eval.baselines import decode, match_bpp
from hific_lit.eval.metrics import colour_error, psnr_uint8
from hific_lit.eval.runner import code_with_model
from hific_lit.eval.viewer import ViewerImage, ViewerVariant
from hific_lit.io.files import bits_per_pixel
from hific_lit.models.base import Codec

TRAINING_SHORT_SIDE = 512
"""The shorter side the training photos are shrunk to (``data.max_short_side`` of ``data=photos``)."""


@dataclass(frozen=True)
class HeldOutRow:
    """One photo: its size, our file's bpp, PSNR and colour error, and JPEG's at the same rate."""

    photo: str
    width: int
    height: int
    bpp: float
    psnr: float
    delta_e: float
    jpeg_quality: int
    jpeg_bpp: float
    jpeg_psnr: float
    jpeg_delta_e: float
    encode_s: float
    decode_s: float

    def as_dict(self) -> dict[str, float | int | str]:
        """The row as plain JSON-able values."""
        return asdict(self)


def heldout_photos(
    max_short_side: int = TRAINING_SHORT_SIDE, folder: Path | None = None
) -> list[tuple[str, np.ndarray]]:
    """(name, uint8 RGB array) of each held-out photo, shrunk to ``max_short_side`` (checked against the manifest)."""
    photos = []
    for path in photo_paths("heldout", folder):
        with Image.open(path) as image:
            photos.append((path.stem, np.array(shrink(upright(image), max_short_side), dtype=np.uint8)))
    return photos


def _png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def code_next_to_jpeg(
    model: Codec, name: str, original: np.ndarray, out_dir: Path, coding: Mapping[str, float] | None = None
) -> tuple[HeldOutRow, ViewerImage]:
    """Code ``original`` into ``out_dir/<name>.hfc`` with ``model`` (and the rate options ``coding`` of a
    rate-conditioned model, ``rate`` or ``target_bpp``: :func:`~hific_lit.eval.runner.code_with_model`), decode the
    file, match JPEG's rate; the row and the viewer's entry (original, ours, JPEG)."""
    height, width = original.shape[:2]
    hfc = out_dir / f"{name}.hfc"
    decoded, encode_s, decode_s = code_with_model(model, original, hfc, coding=coding)
    bpp = bits_per_pixel(hfc.stat().st_size, height, width)
    jpeg = match_bpp(original, "jpeg", bpp)
    jpeg_decoded = decode(jpeg.data)
    row = HeldOutRow(
        name,
        width,
        height,
        bpp,
        psnr_uint8(original, decoded),
        colour_error(original, decoded),
        jpeg.quality,
        jpeg.bpp,
        psnr_uint8(original, jpeg_decoded),
        colour_error(original, jpeg_decoded),
        encode_s,
        decode_s,
    )
    variants = [
        ViewerVariant("original", _png(original), "image/png"),
        ViewerVariant(
            "bundled model", _png(decoded), "image/png", {"bpp": bpp, "psnr": row.psnr, "delta_e": row.delta_e}
        ),
        ViewerVariant(
            f"JPEG q={jpeg.quality}",
            jpeg.data,
            "image/jpeg",
            {"bpp": jpeg.bpp, "psnr": row.jpeg_psnr, "delta_e": row.jpeg_delta_e},
        ),
    ]
    return row, ViewerImage(name, variants)


def summary(rows: list[HeldOutRow]) -> dict[str, float | int]:
    """Means over the photos and how many photos have a larger colour error than JPEG's."""
    mean = {key: float(np.mean([getattr(r, key) for r in rows])) for key in ("bpp", "psnr", "delta_e")}
    mean |= {f"jpeg_{key}": float(np.mean([getattr(r, f"jpeg_{key}") for r in rows])) for key in mean}
    mean["photos"] = len(rows)
    mean["photos_above_jpeg_delta_e"] = sum(r.delta_e > r.jpeg_delta_e for r in rows)
    return mean


def format_table(rows: list[HeldOutRow]) -> str:
    """A Markdown table: one line per photo, then the means."""
    lines = [
        "| photo | size | bpp (file) | PSNR | colour error ΔE00 | JPEG q | JPEG bpp | JPEG PSNR | JPEG ΔE00 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.photo} | {r.width}x{r.height} | {r.bpp:.3f} | {r.psnr:.2f} | {r.delta_e:.2f} | {r.jpeg_quality} | "
            f"{r.jpeg_bpp:.3f} | {r.jpeg_psnr:.2f} | {r.jpeg_delta_e:.2f} |"
        )
    s = summary(rows)
    lines.append(
        f"| **mean of {s['photos']}** | | **{s['bpp']:.3f}** | **{s['psnr']:.2f}** | **{s['delta_e']:.2f}** | | "
        f"{s['jpeg_bpp']:.3f} | {s['jpeg_psnr']:.2f} | {s['jpeg_delta_e']:.2f} |"
    )
    return "\n".join(lines)
