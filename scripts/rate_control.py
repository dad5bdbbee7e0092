"""CPU rate-control experiment: ``experiment=rate_control`` once per regime, held-out bpp against the targets.

Each regime (low 0.14, med 0.30, high 0.45 bpp) trains the small model's base stage (rate + MSE,
``conf/experiment/rate_control.yaml``, the learning rate x0.1 for the last quarter) on the bundled photos
and the demo's Debian photos. Then the run's inference checkpoint compresses, with the real coder (the rate
is the ``.hfc`` file's size), a held-out set never trained on: the astronaut (512x512) and the 12 photos of
Debian's ``mate-backgrounds`` ``nature/`` folder (a package the demo keeps for evaluation:
``apt-get install mate-backgrounds``), each shrunk as the training photos are (shorter side at most 512).
The rate controller holds the mean rate of the training distribution (Mentzer et al. 2020, eq. 4: λ_A while
the batch's rate is above the target), so the check is on the held-out set's mean bpp: ordered
low < med < high and each within ±25 % of its target. The astronaut's own rate is reported beside it.
Writes ``<out>/rate_control.json`` and ``<out>/rate_control.png`` (validation bpp of the astronaut's sixteen
128² tiles per iteration, and each regime's held-out set mean at its last iteration; targets dashed).

Usage: ``python scripts/rate_control.py [--iterations 400] [--out outputs/rate_control] [--plot docs/rate_control.png]``
(5-10 minutes per regime on a busy 2-core machine); ``--no-train`` re-reads finished runs.
"""

from __future__ import annotations

import argparse
import csv
import glob
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
REGIMES = {"low": 0.14, "med": 0.30, "high": 0.45}
TOLERANCE = 0.25
HELD_OUT_PHOTOS = "/usr/share/backgrounds/mate/nature/*.jpg"
HELD_OUT_SHORT_SIDE = 512  # as the training photos (experiment=rate_control's data.max_short_side)


def train(regime: str, run_dir: Path, iterations: int) -> float:
    """Train one regime in a subprocess (the real entry point); returns wall-clock seconds."""
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        "experiment=rate_control",
        f"regime={regime}",
        f"max_iterations={iterations}",
        f"stage.lr_schedule.decay_iteration={iterations * 3 // 4}",
        f"hydra.run.dir={run_dir}",
        "ckpt_path=null",  # a fresh training every time, timed, even where an earlier one left checkpoints
        "trainer.enable_progress_bar=false",
    ]
    start = time.perf_counter()
    # OpenMP threads that spin while waiting slow training many times over on a busy machine (as `make` sets it)
    env = {"OMP_WAIT_POLICY": "PASSIVE"} | os.environ | {"WANDB_MODE": "disabled"}
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)
    return time.perf_counter() - start


def validation_curve(run_dir: Path) -> list[tuple[int, float]]:
    """(iteration, val/bpp_rounded) from the run's CSV log, whose ``step`` counts training batches from 0."""
    logs = sorted(run_dir.glob("csv/version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
    with logs[-1].open() as f:
        rows = [row for row in csv.DictReader(f) if row.get("val/bpp_rounded")]
    return [(int(row["step"]) + 1, float(row["val/bpp_rounded"])) for row in rows]


def held_out_photos(pattern: str) -> dict[str, torch.Tensor]:
    """The held-out set: the astronaut and the photos matching ``pattern``, as (1, 3, H, W) tensors in [0, 1]."""
    from hific_lit.data.image_files import open_image
    from hific_lit.data.sample import SAMPLE_VAL_PHOTO, load_sample_photo, shrink, upright
    from hific_lit.io.images import pil_to_tensor

    paths = sorted(Path(p) for p in glob.glob(pattern))
    if not paths:
        raise SystemExit(
            f"no held-out photos match {pattern!r}: they come with Debian's mate-backgrounds "
            "(`sudo apt-get install mate-backgrounds`), or pass --held-out PATTERN"
        )
    photos = {SAMPLE_VAL_PHOTO: load_sample_photo()}
    for path in paths:
        photos[path.stem] = pil_to_tensor(shrink(upright(open_image(path)), HELD_OUT_SHORT_SIDE))[None]
    return photos


def held_out_rates(run_dir: Path, photos: dict[str, torch.Tensor]) -> dict[str, tuple[float, float]]:
    """{photo: (bpp of its .hfc file, PSNR of its decoding)} with the run's inference checkpoint."""
    from hific_lit.io.checkpoint import load_inference_checkpoint
    from hific_lit.training.losses import psnr

    model = load_inference_checkpoint(run_dir / "inference.ckpt")
    rates = {}
    with torch.no_grad():
        for name, photo in photos.items():
            data = model.compress(photo)
            x_hat = model.decompress(data)
            rates[name] = (8 * len(data) / (photo.shape[-2] * photo.shape[-1]), psnr(photo, x_hat).item())
    return rates


def plot(curves: dict[str, list[tuple[int, float]]], set_means: dict[str, float], path: Path) -> None:
    """The astronaut's tile bpp per iteration and the held-out set's mean at the end, targets dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    for (regime, curve), color in zip(curves.items(), ("tab:blue", "tab:orange", "tab:green"), strict=False):
        ax.plot(
            [i for i, _ in curve], [b for _, b in curve], color=color, marker=".", label=f"{regime}: astronaut tiles"
        )
        ax.plot([curve[-1][0]], [set_means[regime]], color=color, marker="*", markersize=12, linestyle="none")
        ax.axhline(REGIMES[regime], color=color, linestyle="--", linewidth=1)
    ax.plot([], [], color="gray", marker="*", markersize=12, linestyle="none", label="held-out set mean (files)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("held-out bpp")
    ax.set_yscale("log")
    ax.set_title("Rate control: small model, base stage, CPU (dashed: targets)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=400, help="training iterations per regime")
    parser.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=list(REGIMES))
    parser.add_argument("--out", type=Path, default=Path("outputs/rate_control"), help="folder of the runs")
    parser.add_argument("--plot", type=Path, default=None, help="PNG of the curves (default: <out>/rate_control.png)")
    parser.add_argument("--held-out", default=HELD_OUT_PHOTOS, help="glob of the held-out photos besides the astronaut")
    parser.add_argument("--no-train", action="store_true", help="only read the finished runs in --out")
    args = parser.parse_args(argv)

    photos = held_out_photos(args.held_out)
    results, curves, set_means = {}, {}, {}
    for regime in args.regimes:
        run_dir = (args.out / regime).resolve()
        seconds = None if args.no_train else train(regime, run_dir, args.iterations)
        rates = held_out_rates(run_dir, photos)
        curves[regime] = validation_curve(run_dir)
        target = REGIMES[regime]
        mean = sum(bpp for bpp, _ in rates.values()) / len(rates)
        astronaut, quality = rates["astronaut"]
        set_means[regime] = mean
        results[regime] = {
            "target_bpp": target,
            "held_out_mean_bpp": mean,
            "ratio": mean / target,
            "within_tolerance": abs(mean / target - 1) <= TOLERANCE,
            "astronaut_bpp": astronaut,
            "astronaut_ratio": astronaut / target,
            "astronaut_psnr": quality,
            "astronaut_tiles_bpp": curves[regime][-1][1],
            "held_out": {name: {"bpp": bpp, "psnr": db} for name, (bpp, db) in rates.items()},
            "train_seconds": seconds,
            "val_curve": curves[regime],
        }
        print(
            f"{regime:5s} target {target:.2f}  held-out set ({len(rates)} photos) mean {mean:.3f} bpp "
            f"({mean / target - 1:+.0%}); astronaut {astronaut:.3f} bpp ({astronaut / target - 1:+.0%}), "
            f"{quality:.2f} dB"
        )
    means = [set_means[r] for r in args.regimes]
    ordered = all(a < b for a, b in itertools.pairwise(means))
    ok = ordered and all(r["within_tolerance"] for r in results.values())
    summary = {"iterations": args.iterations, "held_out": args.held_out, "ordered": ordered, "ok": ok}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rate_control.json").write_text(json.dumps(summary | {"regimes": results}, indent=2))
    plot(curves, set_means, args.plot or args.out / "rate_control.png")
    print(f"held-out set means ordered low < med < high: {ordered}; all within ±{TOLERANCE:.0%} of target: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
