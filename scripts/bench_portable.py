"""What portable bitstreams cost: .hfc format 2 (integer h_s) against format 1 (float h_s) on real photos.

For each of scikit-image's bundled photos: compress with format 2 (``model.compress``) and with the
format-1 encoder kept for comparisons (:mod:`hific_lit.models.hific.format_v1`), decode both, and compare file
sizes and PSNR against the original (8-bit). Also counts the latents that the two paths quantize
into different bins (their means differ by up to ~1e-3, so a y near a bin edge can fall on the
other side), and the largest difference of y_hat elsewhere. Writes ``outputs/bench/portable.json``.

Usage: ``python scripts/bench_portable.py --ckpt outputs/.../inference.ckpt``
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from hific_lit.io.checkpoint import load_inference_checkpoint
from hific_lit.io.images import to_uint8
from hific_lit.models.hific import format_v1
from hific_lit.nn.padding import pad_to_multiple

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "stereo_motorcycle", "hubble_deep_field", "retina")
OUTPUT = Path("outputs/bench/portable.json")


def photo(name: str) -> torch.Tensor:
    from skimage import data

    pixels = getattr(data, name)()
    if name == "stereo_motorcycle":
        pixels = pixels[0]
    return torch.from_numpy(pixels[..., :3].copy()).permute(2, 0, 1).float().div(255.0)


def psnr(original: np.ndarray, decoded: np.ndarray) -> float:
    mse = float(np.mean((original.astype(np.float64) - decoded.astype(np.float64)) ** 2))
    return 10 * math.log10(255.0**2 / mse) if mse > 0 else math.inf


@torch.no_grad()
def compare(model: torch.nn.Module, name: str) -> dict[str, object]:
    """Sizes, PSNR and differing symbols of format 1 and 2 on one photo."""
    x = photo(name)
    height, width = x.shape[-2:]
    original = to_uint8(x)
    y = model.analysis(pad_to_multiple(x[None]))
    v1, v1_bits = format_v1.encode_latent(model, y, height, width)
    v2 = model.compress_latent(y, height, width)
    y_hat_1, y_hat_2 = model.decompress_latent(v1)[1], model.decompress_latent(v2)[1]
    same_bin = (y_hat_1 - y_hat_2).abs() < 0.5
    psnr_1 = psnr(original, to_uint8(model.decompress(v1)))
    psnr_2 = psnr(original, to_uint8(model.decompress(v2)))
    return {
        "photo": name,
        "size": [height, width],
        "v1_bytes": len(v1),
        "v2_bytes": len(v2),
        "size_change_percent": round(100 * (len(v2) / len(v1) - 1), 3),
        "v1_estimated_bits": round(v1_bits, 1),
        "v2_estimated_bits": round(v2.estimated_bits, 1),
        "v1_psnr": round(psnr_1, 4),
        "v2_psnr": round(psnr_2, 4),
        "psnr_change_db": round(psnr_2 - psnr_1, 4),
        "latent_symbols": y_hat_1.numel(),
        "y_hat_in_another_bin": int((~same_bin).sum()),
        "y_hat_max_abs_diff_same_bin": float(((y_hat_1 - y_hat_2).abs() * same_bin).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="inference checkpoint of a trained model")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="JSON output path")
    args = parser.parse_args()
    model = load_inference_checkpoint(args.ckpt)
    rows = []
    for name in PHOTOS:
        row = compare(model, name)
        rows.append(row)
        print(
            f"{name:>18}: v1 {row['v1_bytes']} B {row['v1_psnr']:.3f} dB, v2 {row['v2_bytes']} B "
            f"{row['v2_psnr']:.3f} dB ({row['size_change_percent']:+.3f} %, {row['psnr_change_db']:+.4f} dB)"
        )
    total_1, total_2 = sum(r["v1_bytes"] for r in rows), sum(r["v2_bytes"] for r in rows)
    summary = {
        "checkpoint": str(args.ckpt),
        "total_size_change_percent": round(100 * (total_2 / total_1 - 1), 3),
        "max_abs_size_change_percent": max(abs(r["size_change_percent"]) for r in rows),
        "max_abs_psnr_change_db": max(abs(r["psnr_change_db"]) for r in rows),
        "photos": rows,
    }
    print(
        f"all photos: v2 files {summary['total_size_change_percent']:+.3f} % vs v1 (max |change| "
        f"{summary['max_abs_size_change_percent']} %), max |PSNR change| {summary['max_abs_psnr_change_db']} dB"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
