"""Which colour axes a model sends: a photo, its grey copy and its copy turned by 180° in hue, coded side by side.

    python scripts/colour_axes.py                       # the bundled model
    python scripts/colour_axes.py --ckpt model.ckpt     # any inference checkpoint (rate-conditioned: at --rate)

For the top-left 256² of held-out photos (default Blinds, green, and Garden, yellow; `make photos` first) prints the
mean 8-bit colour of each input and of its reconstruction (the model's forward pass with rounded latents, no file),
and how far the latent of the photo lies from that of its grey copy (relative norm). A model that sends colour
decodes the grey copy grey and the turned copy turned; one that sends luminance only decodes all three alike, the
colour on screen being the decoder's guess. A diagnosis for docs/bundled.md, not a benchmark.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from hific_lit.data.transforms import rotate_hue
from hific_lit.errors import NOTHING_RAN, HificError
from hific_lit.eval.heldout import heldout_photos
from hific_lit.io.checkpoint import load_inference_checkpoint
from hific_lit.pretrained.registry import BUNDLED, resolve_model


def mean_colour(x: torch.Tensor) -> list[int]:
    """Mean 8-bit RGB of a (3, H, W) image in [0, 1]."""
    return [round(float(v) * 255) for v in x.clamp(0, 1).mean((1, 2))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, default=None, help="inference checkpoint (default: the bundled model)")
    parser.add_argument("--photos", nargs="+", default=["Blinds", "Garden"], help="held-out photos by name")
    parser.add_argument("--rate", type=float, default=1.0, help="R of a rate-conditioned model (default 1)")
    args = parser.parse_args(argv)
    try:
        model = load_inference_checkpoint(args.ckpt or resolve_model(BUNDLED).path).eval()
        photos = dict(heldout_photos())
        missing = [name for name in args.photos if name not in photos]
        if missing:
            raise HificError(f"no held-out photo named {', '.join(missing)}; known: {', '.join(sorted(photos))}")
    except HificError as exc:
        print(f"colour_axes: error: {exc}", file=sys.stderr)
        return NOTHING_RAN
    rate = None if model.capabilities.rate is None else args.rate
    for name in args.photos:
        x = torch.from_numpy(photos[name][:256, :256]).permute(2, 0, 1).float().div(255.0)
        grey = x.mean(0, keepdim=True).expand(3, -1, -1)
        batch = torch.stack([x, grey, rotate_hue(x.clone(), math.pi)])
        with torch.no_grad():
            out = model(batch, rate=rate)
        for label, i in (("photo", 0), ("grey copy", 1), ("hue turned", 2)):
            print(f"{name} {label}: {mean_colour(batch[i])} -> {mean_colour(out.x_hat[i])}")
        y = out.y_hat
        print(f"{name}: |y(photo) - y(grey copy)| / |y(photo)| = {float((y[0] - y[1]).norm() / y[0].norm()):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
