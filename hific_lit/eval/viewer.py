"""A self-contained HTML viewer: one file, images embedded, no network, opens from the file system.

Per image, every variant (original, ours, baselines at the same bpp) sits in the same frame; buttons
or the keys 1-9 switch between them in place, a zoom menu enlarges them with crisp pixels, and a
table beside the image gives each variant's numbers.
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path

from hific_lit.io.files import atomic_write_bytes

_NUMBERS = (
    ("bpp", "bpp", "{:.4f}"),
    ("psnr", "PSNR", "{:.2f}"),
    ("ms_ssim", "MS-SSIM", "{:.4f}"),
    ("lpips", "LPIPS", "{:.4f}"),
    ("delta_e", "colour error (ΔE00)", "{:.2f}"),
)
_ZOOMS = (1, 2, 4, 8)

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:1em;margin-bottom:1.5em}
.layout{display:flex;gap:1.5em;align-items:flex-start}
.frame{flex:0 1 auto;min-width:0;max-height:80vh;overflow:auto;border:1px solid #ccc;background:#eee}
.frame img{display:block;image-rendering:pixelated}
.frame img[hidden]{display:none}
button.variant{margin:0 .3em .5em 0;padding:.3em .8em;border:1px solid #888;border-radius:4px;cursor:pointer}
button.variant[aria-pressed=true]{background:#246;color:#fff}
table{flex:0 0 auto;border-collapse:collapse;font-variant-numeric:tabular-nums}
td,th{padding:.2em .6em;border-bottom:1px solid #eee;text-align:right}
td:first-child,th:first-child{text-align:left}
tr.active{background:#e6eef8;font-weight:600}
"""

_SCRIPT = """
function show(section, index) {
  const key = String(index);
  section.querySelectorAll('.frame img').forEach(img => { img.hidden = img.dataset.index !== key; });
  section.querySelectorAll('button.variant').forEach(b => b.setAttribute('aria-pressed', b.dataset.index === key));
  section.querySelectorAll('tr[data-index]').forEach(r => r.classList.toggle('active', r.dataset.index === key));
}
function zoom(section, factor) {
  section.querySelectorAll('.frame img').forEach(img => { img.style.width = (img.naturalWidth * factor) + 'px'; });
}
document.querySelectorAll('section.image').forEach(section => {
  const select = section.querySelector('select.zoom');
  const rezoom = () => zoom(section, Number(select.value));
  const buttons = section.querySelectorAll('button.variant');
  buttons.forEach(b => b.addEventListener('click', () => show(section, b.dataset.index)));
  select.addEventListener('change', rezoom);
  section.querySelectorAll('.frame img').forEach(img => img.addEventListener('load', rezoom));
});
document.addEventListener('keydown', event => {
  const index = Number(event.key) - 1;
  if (!Number.isInteger(index) || index < 0) return;
  document.querySelectorAll('section.image').forEach(section => {
    if (section.querySelector(`button.variant[data-index="${index}"]`)) show(section, index);
  });
});
"""


@dataclass(frozen=True)
class ViewerVariant:
    """One version of an image: its label, encoded file bytes (PNG, JPEG, WebP, AVIF) and numbers."""

    label: str
    data: bytes
    mime: str
    metrics: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class ViewerImage:
    """An image and its variants; the first variant is shown first (the original, by convention)."""

    name: str
    variants: list[ViewerVariant]


def _format(value: float | None, pattern: str) -> str:
    return "–" if value is None else pattern.format(value)


def _section(number: int, image: ViewerImage) -> str:
    name = html.escape(image.name)
    buttons = "".join(
        f'<button class="variant" data-index="{i}" aria-pressed="{str(i == 0).lower()}" title="key {i + 1}">'
        f"{html.escape(v.label)}</button>"
        for i, v in enumerate(image.variants)
    )
    zooms = "".join(f'<option value="{z}">{z}×</option>' for z in _ZOOMS)
    imgs = "".join(
        f'<img data-index="{i}" alt="{name}: {html.escape(v.label)}"{"" if i == 0 else " hidden"} '
        f'src="data:{v.mime};base64,{base64.b64encode(v.data).decode("ascii")}">'
        for i, v in enumerate(image.variants)
    )
    header = "".join(f"<th>{label}</th>" for _, label, _ in _NUMBERS)
    rows = "".join(
        f'<tr data-index="{i}"{" class=active" if i == 0 else ""}><td>{html.escape(v.label)}</td>'
        + "".join(f"<td>{_format(v.metrics.get(key), pattern)}</td>" for key, _, pattern in _NUMBERS)
        + "</tr>"
        for i, v in enumerate(image.variants)
    )
    return (
        f'<section class="image" id="image-{number}"><h2>{name}</h2>'
        f'<div>{buttons}<label> zoom <select class="zoom">{zooms}</select></label></div>'
        f'<div class="layout"><div class="frame">{imgs}</div>'
        f"<table><tr><th>variant</th>{header}</tr>{rows}</table></div></section>"
    )


def render_viewer(images: list[ViewerImage], title: str = "hific-lit evaluation") -> str:
    """The viewer's HTML text."""
    sections = "\n".join(_section(i, image) for i, image in enumerate(images))
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        "<p>Click a button (or press 1–9) to switch versions in place; choose a zoom to inspect pixels. "
        "Baselines are at the bpp of ours (closest at or above).</p>\n"
        f"{sections}\n<script>{_SCRIPT}</script></body></html>\n"
    )


def write_viewer(images: list[ViewerImage], path: str | os.PathLike, title: str = "hific-lit evaluation") -> Path:
    """Write the viewer to ``path`` atomically and return the path."""
    path = Path(path)
    atomic_write_bytes(path, render_viewer(images, title).encode("utf-8"))
    return path
