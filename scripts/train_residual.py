"""Train the error bound's residual coder on the residuals of a trained model (docs/error-bound.md).

Usage::

    python scripts/train_residual.py --ckpt outputs/demo/gan/inference.ckpt --out outputs/demo/gan/bounded.ckpt

Each training photo (scikit-image's bundled ones but the astronaut, and the demo's Debian wallpapers
``/usr/share/backgrounds/*_by_*.jpg``), shrunk to a shorter side of 512 as the demo trains, goes once
through the model's real coding path (``compress`` then ``decompress`` to 8 bits), giving (x, x_hat)
pairs. The phase networks of :class:`~hific_lit.entropy.residual.ResidualCoder` (``--grid``) then learn the
rate of the quantized residual on random 96x96 crops (at even offsets, so that phases keep their
meaning), each crop with a bound K drawn from ``--max-errors``; Adam, the learning rate x0.1 for
the last fifth. At the end the networks are frozen (``update()``), the astronaut's residual is
really coded at each K through ``compress(max_error=K)``, the decoding checked against the bound, and the
model saved with its residual coder as a new inference checkpoint (``--out``): ``hific compress --max-error K``
takes it.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

from hific_lit.data.sample import (
    SAMPLE_TRAIN_PHOTOS,
    SAMPLE_VAL_PHOTO,
    expand_photos,
    sample_photo_path,
    shrink,
    upright,
)
from hific_lit.entropy.residual import DEFAULT_GRID, ResidualCoder
from hific_lit.io.checkpoint import load_inference_checkpoint, read_inference_checkpoint, save_inference_checkpoint
from hific_lit.io.images import open_image, pil_to_tensor

DEFAULT_PHOTOS = "/usr/share/backgrounds/*_by_*.jpg"
SHORT_SIDE = 512


def load_photo(path: Path, short_side: int = SHORT_SIDE) -> torch.Tensor:
    """A photo as (3, H, W) uint8, upright, shrunk (Lanczos) to ``short_side``."""
    return pil_to_tensor(shrink(upright(open_image(path)), short_side), uint8=True)


def decoded_pair(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, x_hat): ``x`` through the model's real coding path, x_hat as 8-bit pixels (what decompress writes)."""
    with torch.inference_mode():
        data = model.compress(x)
        return x, model.decompress(data, uint8=True)[0]


def random_crops(
    pairs: list[tuple[torch.Tensor, torch.Tensor]], batch: int, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` random (x, x_hat) crops of ``size`` at even offsets, photos drawn in proportion to their area."""
    weights = [x.shape[1] * x.shape[2] for x, _ in pairs]
    xs, hats = [], []
    for x, x_hat in random.choices(pairs, weights, k=batch):
        top = 2 * random.randrange((x.shape[1] - size) // 2 + 1)
        left = 2 * random.randrange((x.shape[2] - size) // 2 + 1)
        xs.append(x[:, top : top + size, left : left + size])
        hats.append(x_hat[:, top : top + size, left : left + size])
    return torch.stack(xs), torch.stack(hats)


def bits_per_pixel(coder: ResidualCoder, x: torch.Tensor, x_hat: torch.Tensor, max_error: int) -> float:
    """The float networks' rate of one image's residual at ``max_error``, in bits per pixel."""
    with torch.no_grad():
        bits = coder.bits(x[None], x_hat[None], torch.tensor([max_error]))
    return float(bits) / (x.shape[1] * x.shape[2])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="inference checkpoint of the model whose residuals are coded")
    parser.add_argument(
        "--out", required=True, help="the inference checkpoint to write: the model and its residual coder"
    )
    parser.add_argument("--photos", nargs="*", default=[DEFAULT_PHOTOS], help="glob patterns of training photos")
    parser.add_argument("--iterations", type=int, default=700)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=96)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--grid", type=int, default=DEFAULT_GRID, help="phases: a grid x grid cell, coarse to fine")
    parser.add_argument("--max-errors", type=int, nargs="+", default=[0, 1, 2, 4])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    model = load_inference_checkpoint(args.ckpt)
    paths = [sample_photo_path(name) for name in SAMPLE_TRAIN_PHOTOS] + expand_photos(args.photos)
    start = time.perf_counter()
    pairs = [decoded_pair(model, load_photo(path)) for path in paths]
    val = decoded_pair(model, load_photo(sample_photo_path(SAMPLE_VAL_PHOTO)))
    print(f"{len(pairs)} training photos decoded in {time.perf_counter() - start:.0f} s", flush=True)
    coder = ResidualCoder(width=args.width, grid=args.grid)
    optimizer = torch.optim.Adam(coder.nets.parameters(), lr=args.lr)
    decay = int(0.8 * args.iterations)
    start = time.perf_counter()
    for iteration in range(1, args.iterations + 1):
        if iteration == decay:
            for group in optimizer.param_groups:
                group["lr"] = args.lr * 0.1
        x, x_hat = random_crops(pairs, args.batch, args.crop)
        max_error = torch.tensor(random.choices(args.max_errors, k=args.batch))
        loss = coder.bits(x, x_hat, max_error).sum() / x.numel()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if iteration % 250 == 0 or iteration == args.iterations:
            rates = " ".join(f"K={k}: {bits_per_pixel(coder, *val, k):.3f}" for k in args.max_errors)
            elapsed = time.perf_counter() - start
            print(f"it {iteration} train {3 * loss.item():.3f} bpp | astronaut {rates} | {elapsed:.0f} s", flush=True)
    coder.update()
    model.attach_residual_coder(coder)
    save_inference_checkpoint(model, args.out, read_inference_checkpoint(args.ckpt).get("config"))
    x = val[0]
    for k in args.max_errors:
        data = model.compress(x, max_error=k)
        error = int((model.decompress(data, uint8=True)[0].int() - x.int()).abs().max())
        print(f"astronaut K={k}: {8 * len(data) / (x.shape[1] * x.shape[2]):.3f} bpp (.hfc file), max error {error}")
        if error > k:
            Path(args.out).unlink()
            print(f"the bound K={k} was broken (max error {error}); {args.out} removed", file=sys.stderr)
            return 1
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
