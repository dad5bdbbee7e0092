"""Benchmark of the evaluation loop at Kodak's image size; writes outputs/bench/eval.json.

Per 768×512 image (a crop of scikit-image's photos, Kodak's size), the seconds spent by each part of
`make eval`: our codec (compress, write, read back, decompress; an untrained ``small`` model, or
``--ckpt``), MS-SSIM, LPIPS-Alex (a random trunk: same cost as the pretrained one), the FID patch
cut, and each baseline's bpp search (seconds and encodes tried). Best of ``--repeats``.

Usage: ``python scripts/bench_eval.py [--ckpt inference.ckpt] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from skimage import data

from hific_lit import HiFiC
from hific_lit.eval import baselines
from hific_lit.eval.fid import fid_patches
from hific_lit.eval.metrics import LpipsScorer, ms_ssim
from hific_lit.eval.runner import code_with_model
from hific_lit.io.checkpoint import load_inference_checkpoint
from hific_lit.io.files import atomic_write_bytes
from hific_lit.training.perceptual import LPIPSLoss

OUTPUT = Path("outputs/bench/eval.json")
PHOTOS = ("hubble_deep_field", "retina")


def kodak_sized(name: str) -> np.ndarray:
    """A 512×768 crop (Kodak's landscape size) of a bundled photo."""
    pixels = getattr(data, name)()
    pixels = pixels[0] if isinstance(pixels, tuple) else pixels
    return np.ascontiguousarray(pixels[:512, :768, :3])


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """Fastest wall-clock seconds of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_image(model: HiFiC, lpips: LpipsScorer, name: str, folder: Path, repeats: int) -> dict[str, object]:
    """Seconds of each evaluation step on one Kodak-sized image."""
    original = kodak_sized(name)
    hfc = folder / f"{name}.hfc"
    recon, _, _ = code_with_model(model, original, hfc)
    bpp = 8 * hfc.stat().st_size / (original.shape[0] * original.shape[1])
    row: dict[str, object] = {"image": name, "size": list(original.shape[:2]), "bpp": bpp}
    row["codec_s"] = best_of(repeats, partial(code_with_model, model, original, hfc))
    row["ms_ssim_s"] = best_of(repeats, partial(ms_ssim, original, recon))
    row["lpips_s"] = best_of(repeats, partial(lpips, original, recon))
    row["fid_patches_s"] = best_of(repeats, partial(fid_patches, original))
    for codec in baselines.available_baselines():
        match = baselines.match_bpp(original, codec, bpp)
        row[f"{codec}_match_s"] = best_of(repeats, partial(baselines.match_bpp, original, codec, bpp))
        row[f"{codec}_bpp"], row[f"{codec}_encodes"] = match.bpp, match.encodes
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", help="inference checkpoint (default: an untrained 'small' model)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.ckpt:
        model = load_inference_checkpoint(args.ckpt)
    else:
        torch.manual_seed(0)
        model = HiFiC.from_preset("small").eval()
        model.update()
    lpips = LpipsScorer(LPIPSLoss(pretrained_backbone=False))
    with tempfile.TemporaryDirectory() as tmp:
        images = [bench_image(model, lpips, name, Path(tmp), args.repeats) for name in PHOTOS]
    result = {
        "model": args.ckpt or "untrained small",
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "images": images,
    }
    atomic_write_bytes(OUTPUT, (json.dumps(result, indent=2) + "\n").encode())
    for row in images:
        parts = ", ".join(f"{k[:-2]} {v:.2f}s" for k, v in row.items() if k.endswith("_s"))
        print(f"{row['image']} {row['size'][1]}x{row['size'][0]} at {row['bpp']:.3f} bpp: {parts}")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
