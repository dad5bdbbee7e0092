"""CPU rate-control experiment: ``experiment=rate_control`` once per regime, held-out bpp against the targets.

Each regime (low 0.14, med 0.30, high 0.45 bpp) trains the small model's base stage (rate + MSE,
``conf/experiment/rate_control.yaml``, the learning rate x0.1 for the last quarter) on the bundled photos
and the demo's Debian photos. Then the run's inference checkpoint
compresses the held-out astronaut (512x512, never trained on) with the real coder, so the held-out
rate is the ``.hfc`` file's size; the last validation also gives the rate of the astronaut's sixteen 128²
tiles (the training crop size). The check: the held-out file's bpp orders low < med < high and each lies
within ±25 % of its target. Writes ``<out>/rate_control.json`` and ``<out>/rate_control.png``
(validation bpp of the held-out tiles per iteration, targets dashed).

Usage: ``python scripts/rate_control.py [--iterations 400] [--out outputs/rate_control] [--plot docs/rate_control.png]``
(5-10 minutes per regime on a busy 2-core machine); ``--no-train`` re-reads finished runs.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REGIMES = {"low": 0.14, "med": 0.30, "high": 0.45}
TOLERANCE = 0.25


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


def held_out_bpp(run_dir: Path) -> tuple[float, float]:
    """(bpp of the astronaut's .hfc file, PSNR of its decoding) with the run's inference checkpoint."""
    from hific_lit.checkpoint import load_inference_checkpoint
    from hific_lit.data.sample import load_sample_photo
    from hific_lit.losses import psnr

    model = load_inference_checkpoint(run_dir / "inference.ckpt")
    photo = load_sample_photo()
    data = model.compress(photo)
    x_hat = model.decompress(data)
    return 8 * len(data) / (photo.shape[-2] * photo.shape[-1]), psnr(photo, x_hat).item()


def plot(curves: dict[str, list[tuple[int, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    for (regime, curve), color in zip(curves.items(), ("tab:blue", "tab:orange", "tab:green"), strict=False):
        ax.plot([i for i, _ in curve], [b for _, b in curve], color=color, marker=".", label=f"{regime}")
        ax.axhline(REGIMES[regime], color=color, linestyle="--", linewidth=1)
    ax.set_xlabel("iteration")
    ax.set_ylabel("held-out photo bpp (its 128² tiles)")
    ax.set_yscale("log")
    ax.set_title("Rate control: small model, base stage, CPU (dashed: targets)")
    ax.legend()
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
    parser.add_argument("--no-train", action="store_true", help="only read the finished runs in --out")
    args = parser.parse_args(argv)

    results, curves = {}, {}
    for regime in args.regimes:
        run_dir = (args.out / regime).resolve()
        seconds = None if args.no_train else train(regime, run_dir, args.iterations)
        bpp, quality = held_out_bpp(run_dir)
        curves[regime] = validation_curve(run_dir)
        target = REGIMES[regime]
        results[regime] = {
            "target_bpp": target,
            "held_out_tiles_bpp": curves[regime][-1][1],
            "held_out_bpp": bpp,
            "held_out_psnr": quality,
            "ratio": bpp / target,
            "within_tolerance": abs(bpp / target - 1) <= TOLERANCE,
            "train_seconds": seconds,
            "val_curve": curves[regime],
        }
        tiles = curves[regime][-1][1]
        print(
            f"{regime:5s} target {target:.2f}  held-out file {bpp:.3f} bpp ({bpp / target:.2f}x), "
            f"{quality:.2f} dB; its 128² tiles {tiles:.3f} bpp ({tiles / target:.2f}x)"
        )
    bpps = [results[r]["held_out_bpp"] for r in args.regimes]
    ordered = all(a < b for a, b in itertools.pairwise(bpps))
    ok = ordered and all(r["within_tolerance"] for r in results.values())
    summary = {"iterations": args.iterations, "ordered": ordered, "ok": ok, "regimes": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rate_control.json").write_text(json.dumps(summary, indent=2))
    plot(curves, args.plot or args.out / "rate_control.png")
    print(f"ordered low < med < high: {ordered}; all within ±{TOLERANCE:.0%} of target: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
