"""`make demo`: the bundled model on the held-out photos, then a freshly trained model on the held-out astronaut.

Usage: ``python scripts/demo.py --heldout --out outputs/demo`` (the bundled model, or ``--ckpt``, on the 12
held-out photos of Debian's mate-backgrounds: bpp, PSNR and colour error next to JPEG at the same bpp, and
the HTML viewer ``outputs/demo/viewer.html``); ``python scripts/demo.py --ckpt RUN/inference.ckpt --out
outputs/demo --runs RUN`` (a model just trained, on the astronaut):

Runs the real ``hific compress`` / ``hific decompress`` commands, measures the rate from the .hfc
file's size on disk and PSNR between the photo and the decoded PNG, prints JPEG's PSNR at the same
rate (Pillow, 4:2:0, the lowest quality at or above that bpp) and each codec's mean colour offset
(how far the average R, G, B of the decoding moved, in 0..255 levels), and how the validation
PSNR and rate-distortion loss moved during the training stages (from their CSV logs). The model is
named by what its checkpoint records: kind, architecture preset, training stage and length.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from pathlib import Path

import torch

from hific_lit.cli import main as hific
from hific_lit.data.sample import SAMPLE_VAL_PHOTO, sample_photo_path
from hific_lit.errors import NOTHING_RAN, HificError
from hific_lit.eval.baselines import decode, match_bpp
from hific_lit.eval.heldout import code_next_to_jpeg, format_table, heldout_photos, summary
from hific_lit.eval.viewer import write_viewer
from hific_lit.io.checkpoint import load_inference_checkpoint, read_inference_checkpoint
from hific_lit.io.images import load_image
from hific_lit.models.hific.arch import ARCH_PRESETS
from hific_lit.pretrained.registry import BUNDLED, resolve_model
from hific_lit.training.losses import psnr


def colour_offset(x: torch.Tensor, x_hat: torch.Tensor) -> tuple[float, float, float]:
    """Mean R, G, B of ``x_hat`` minus those of ``x`` (images (3, H, W) in [0, 1]), in 0..255 levels."""
    return tuple((255 * (x_hat.clamp(0, 1) - x).mean(dim=(-2, -1))).tolist())


def jpeg_at(x: torch.Tensor, bpp: float) -> tuple[int, float, torch.Tensor]:
    """(quality, bpp, decoding) of the JPEG of ``x`` whose rate is the lowest at or above ``bpp``."""
    pixels = (x.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    matched = match_bpp(pixels, "jpeg", bpp)
    decoded = torch.from_numpy(decode(matched.data).copy()).permute(2, 0, 1).float() / 255  # decode() is read-only
    return matched.quality, matched.bpp, decoded


SIZE_FIELDS = ("encoder_widths", "latent_channels", "generator_widths", "residual_blocks", "hyper_filters")
KINDS = {"hific": "HiFiC", "gc2018": "GC2018"}


def custom_sizes(arch: dict) -> str:
    """The network sizes of an architecture that is no preset, e.g. ``g_a 8-96, C 64, g_s 96-8, 2 residual blocks``."""
    parts = []
    if arch.get("encoder_widths"):
        parts.append(f"g_a {arch['encoder_widths'][0]}-{arch['encoder_widths'][-1]}")
    if arch.get("latent_channels"):
        parts.append(f"C {arch['latent_channels']}")
    if arch.get("generator_widths"):
        parts.append(f"g_s {arch['generator_widths'][0]}-{arch['generator_widths'][-1]}")
    if arch.get("residual_blocks") is not None:
        parts.append(f"{arch['residual_blocks']} residual blocks")
    return ", ".join(parts) or "custom sizes"


def model_label(ckpt: Path) -> str:
    """What the inference checkpoint says it is, e.g. ``HiFiC small, GANStage, 100 it.`` (kind, the preset whose
    network sizes it has, the stage that wrote it and that stage's length; parts it does not record are left out)."""
    payload = read_inference_checkpoint(ckpt, mmap=True)
    kind = payload.get("model", "hific")
    arch = payload.get("arch", {})
    parts = [KINDS.get(kind, kind)]
    if kind == "hific":
        preset = [n for n, p in ARCH_PRESETS.items() if all(arch.get(k) == p.to_dict()[k] for k in SIZE_FIELDS)]
        parts[0] += f" {preset[0]}" if preset else f" ({custom_sizes(arch)})"
    config = payload.get("config") or {}
    stage = (config.get("stage") or {}).get("_target_", "")
    if stage:
        parts.append(stage.rsplit(".", 1)[-1])
    if config.get("max_iterations"):
        parts.append(f"{config['max_iterations']} it.")
    return ", ".join(parts)


def validation_trail(run_dir: Path, key: str) -> list[float]:
    """The values of ``key`` (e.g. ``val/psnr``) from the latest CSV log of a run, in order."""
    logs = sorted(run_dir.glob("csv/version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
    if not logs:
        return []
    with logs[-1].open() as f:
        return [float(row[key]) for row in csv.DictReader(f) if row.get(key)]


def heldout(ckpt: Path | None, out: Path) -> int:
    """The model (default: the bundled one) on the held-out photos next to JPEG; writes ``out/viewer.html``."""
    try:
        ckpt = ckpt or resolve_model(BUNDLED).path
        model = load_inference_checkpoint(ckpt)
        photos = heldout_photos()
    except HificError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return NOTHING_RAN
    files = out / "heldout"
    files.mkdir(parents=True, exist_ok=True)
    print(f"model: {model_label(ckpt)} ({ckpt}); {len(photos)} held-out photos, never trained or validated on")
    rows, viewer = [], []
    for name, image in photos:
        row, entry = code_next_to_jpeg(model, name, image, files)
        rows.append(row)
        viewer.append(entry)
    s = summary(rows)
    print(f"\n{format_table(rows)}\n")
    print(
        f"colour error above JPEG's at the same bpp on {s['photos_above_jpeg_delta_e']} of {s['photos']} photos; "
        f"viewer: {write_viewer(viewer, out / 'viewer.html', 'the bundled model on the held-out photos')}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--heldout", action="store_true", help="the held-out photos (default model: the bundled one)")
    parser.add_argument("--ckpt", type=Path, default=None, help="inference checkpoint of the trained model")
    parser.add_argument(
        "--out", type=Path, default=Path("outputs/demo"), help="folder for the photo, .hfc and decoding"
    )
    parser.add_argument(
        "--runs", type=Path, nargs="*", default=None, help="training run folders whose val/rd_loss to show"
    )
    args = parser.parse_args(argv)
    if args.heldout:
        return heldout(args.ckpt, args.out)
    if args.ckpt is None:
        parser.error("--ckpt is needed (or --heldout for the bundled model)")

    args.out.mkdir(parents=True, exist_ok=True)
    original = args.out / f"{SAMPLE_VAL_PHOTO}.png"
    shutil.copyfile(sample_photo_path(SAMPLE_VAL_PHOTO), original)
    encoded, decoded = args.out / f"{SAMPLE_VAL_PHOTO}.hfc", args.out / f"{SAMPLE_VAL_PHOTO}.decoded.png"
    for command in (
        ["compress", str(original), "--ckpt", str(args.ckpt), "-o", str(encoded), "-q"],
        ["decompress", str(encoded), "--ckpt", str(args.ckpt), "-o", str(decoded), "-q"],
    ):
        if hific(command) != 0:
            return 1

    x, x_hat = load_image(original), load_image(decoded)
    bpp = 8 * encoded.stat().st_size / (x.shape[-2] * x.shape[-1])
    quality, jpeg_bpp, jpeg = jpeg_at(x, bpp)
    print(f"\nheld-out photo   {original} ({x.shape[-1]}x{x.shape[-2]}, never seen in training)")
    print(f"compressed       {encoded}: {encoded.stat().st_size} bytes = {bpp:.4f} bpp (file size on disk)")
    print(f"model            {model_label(args.ckpt)} ({args.ckpt})")
    rows = (("this model", bpp, x_hat), (f"JPEG q={quality}", jpeg_bpp, jpeg))
    for name, rate, y in rows:
        offset = ", ".join(f"{c:+.1f}" for c in colour_offset(x, y))
        print(f"{name:16s} {rate:.4f} bpp  PSNR {psnr(x[None], y[None]).item():.2f} dB  mean RGB offset ({offset})")
    print(f"reconstruction   {decoded}")
    for run in args.runs or []:
        for key, fmt in (("val/psnr", ".2f"), ("val/rd_loss", ".3f")):
            values = validation_trail(run, key)
            if values:
                trail = "  ".join(f"{v:{fmt}}" for v in values)
                print(f"{key:16s} {run.name}: {trail}  (first -> last: {values[0]:{fmt}} -> {values[-1]:{fmt}})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
