"""Rate-distortion plots: bpp against PSNR, MS-SSIM and LPIPS, ours against the baselines."""

from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from hific_lit.io.files import atomic_write_bytes

# metric key -> axis label
RD_METRICS = {"psnr": "PSNR (dB) ↑", "ms_ssim": "MS-SSIM ↑", "lpips": "LPIPS ↓", "fid": "FID/256 ↓"}
METHOD_LABELS = {
    "hific": "HiFiC (ours)",
    "hific_paper": "HiFiC (paper)",
    "jpeg": "JPEG",
    "webp": "WebP",
    "avif": "AVIF",
}
_STYLES = {
    "hific": {"linewidth": 2.2, "marker": "o", "zorder": 3},
    "hific_paper": {"linestyle": "--", "marker": "o", "color": "0.45", "zorder": 2},
}


def method_label(method: str) -> str:
    """How plots and the viewer name a method."""
    return METHOD_LABELS.get(method, method)


def plot_rd(points: list[dict], out_dir: str | Path, title: str = "") -> list[Path]:
    """Write ``rd_<metric>.png`` for each metric that we measured; return the files written.

    ``points`` are mean results, each ``{"method": "hific" | "jpeg" | ..., "bpp": float, <metric>: float | None}``
    and optionally ``"checkpoint"`` (our points are labelled with it); the points of one method are
    joined in order of bpp (one per checkpoint).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    by_method: dict[str, list[dict]] = defaultdict(list)
    for point in points:
        by_method[point["method"]].append(point)
    written = []
    for key, label in RD_METRICS.items():
        if not any(p.get(key) is not None for p in points if p["method"] != "hific_paper"):
            continue
        fig = Figure(figsize=(5.5, 4.0), dpi=120)
        ax = fig.subplots()
        for method, rows in by_method.items():
            rows = sorted((r for r in rows if r.get(key) is not None), key=lambda r: r["bpp"])
            if not rows:
                continue
            style = _STYLES.get(method, {"marker": "s"})
            ax.plot([r["bpp"] for r in rows], [r[key] for r in rows], label=method_label(method), **style)
            for row in rows if method == "hific" else []:
                if "checkpoint" in row:
                    xy = (row["bpp"], row[key])
                    ax.annotate(row["checkpoint"], xy, textcoords="offset points", xytext=(4, 4), fontsize=7)
        written.append(_finish(fig, ax, "bits per pixel", label, title or f"rate vs {key}", out_dir / f"rd_{key}.png"))
    return written


def _finish(fig: Figure, ax: Axes, xlabel: str, ylabel: str, title: str, path: Path) -> Path:
    """Label, grid and legend ``ax``; write ``fig`` to ``path`` as PNG, atomically; return ``path``."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
    return path


def plot_realism(points: list[dict], out_dir: str | Path, title: str = "") -> list[Path]:
    """Write ``realism_<metric>.png``: each metric against the realism weight β, one line per checkpoint.

    ``points`` are our mean results decoded at several β from the same files (same bpp), each
    ``{"checkpoint": str, "beta": float, "bpp": float, <metric>: float | None}`` (MRIC's Fig. 1 trade-off).
    """
    out_dir = Path(out_dir)
    by_checkpoint: dict[str, list[dict]] = defaultdict(list)
    for point in points:
        by_checkpoint[point.get("checkpoint", "")].append(point)
    written = []
    for key, label in RD_METRICS.items():
        if not any(p.get(key) is not None for p in points):
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        fig = Figure(figsize=(5.5, 4.0), dpi=120)
        ax = fig.subplots()
        for checkpoint, rows in by_checkpoint.items():
            rows = sorted((r for r in rows if r.get(key) is not None), key=lambda r: r["beta"])
            bpp = sum(r["bpp"] for r in rows) / max(len(rows), 1)
            label_ = f"{checkpoint} ({bpp:.3f} bpp)"
            ax.plot([r["beta"] for r in rows], [r[key] for r in rows], marker="o", label=label_)
        xlabel, path = "realism weight β (same bitstream)", out_dir / f"realism_{key}.png"
        written.append(_finish(fig, ax, xlabel, label, title or f"realism vs {key}", path))
    return written
