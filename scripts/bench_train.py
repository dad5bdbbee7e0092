"""Benchmark of training speed: seconds per iteration of the base and GAN stages; writes outputs/bench/train.json.

Each stage trains ``--iterations`` iterations through the real Lightning loop (codec, aux and, in
the GAN stage, discriminator steps) on fixed crops of scikit-image's photos held in memory, so that
data loading is not measured. Reported: median and mean seconds per iteration after ``--warmup``
iterations, images per second, and the process's peak resident memory (and peak CUDA memory on a GPU).
The LPIPS trunk is random (same cost as the real one). On a busy CPU, run with
``OMP_WAIT_POLICY=PASSIVE`` (as ``make demo`` does): spinning OpenMP threads slow training ~10x.

Usage: ``python scripts/bench_train.py [--arch small] [--batch 8] [--crop 128] [--iterations 12]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from hific_lit.data import SampleDataModule
from hific_lit.models.hific.arch import arch_preset
from hific_lit.nn import Discriminator
from hific_lit.training.base import RDStage
from hific_lit.training.gan import GANStage
from hific_lit.training.losses import LossConfig
from hific_lit.training.perceptual import LPIPSLoss

OUTPUT = Path("outputs/bench/train.json")


class IterationTimer(pl.Callback):
    """Wall-clock time of each training batch (one iteration), synchronising CUDA when used."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def _sync(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, idx: int) -> None:
        self._sync()
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        self._sync()
        self.seconds.append(time.perf_counter() - self._start)


def real_crops(count: int, crop: int) -> list[torch.Tensor]:
    """``count`` random paper-style crops of the bundled training photos, drawn once."""
    data = SampleDataModule(batch_size=1, crop_size=crop, samples_per_epoch=count)
    data.setup()
    return [data.train_set[i] for i in range(count)]


def bench_stage(cls: type[RDStage], args: argparse.Namespace, crops: list[torch.Tensor]) -> dict[str, float]:
    arch = arch_preset(args.arch)
    extra = {}
    if issubclass(cls, GANStage):
        extra["discriminator"] = Discriminator(
            arch.latent_channels, arch.discriminator_widths, arch.discriminator_context
        )
    module = cls(arch, LossConfig(), LPIPSLoss(pretrained_backbone=False), **extra)
    timer = IterationTimer()
    trainer = pl.Trainer(
        accelerator=args.accelerator,
        devices=1,
        max_steps=args.iterations * module.optimizers_per_iteration,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[timer],
    )
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    # each iteration takes one sub-batch of --batch crops per step (GAN stage: D's, then the codec's)
    loader_batch = args.batch * module.sub_batches_per_iteration
    trainer.fit(module, train_dataloaders=DataLoader(crops, batch_size=loader_batch, shuffle=True, drop_last=True))
    timed = timer.seconds[args.warmup :]
    result = {
        "iterations_timed": len(timed),
        "s_per_iteration_median": statistics.median(timed),
        "s_per_iteration_mean": statistics.fmean(timed),
        "images_per_s": args.batch / statistics.median(timed),
        "process_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if torch.cuda.is_available():
        result["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="small", help="hific, small or tiny (default small)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=12, help="iterations per stage, warm-up included")
    parser.add_argument("--warmup", type=int, default=2, help="first iterations left out of the timing")
    parser.add_argument("--accelerator", default="auto", help="cpu, gpu or auto")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    if args.iterations <= args.warmup:
        parser.error("--iterations must exceed --warmup")

    crops = real_crops(args.batch * 8, args.crop)
    report = {
        "arch": args.arch,
        "batch": args.batch,
        "crop": args.crop,
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "stages": {name: bench_stage(cls, args, crops) for name, cls in (("base", RDStage), ("gan", GANStage))},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    print(f"training, arch={args.arch}, batch {args.batch} x {args.crop}², {report['torch_threads']} torch threads")
    for name, r in report["stages"].items():
        print(
            f"  {name:4s} {r['s_per_iteration_median']:.3f} s/iteration (median of {r['iterations_timed']}), "
            f"{r['images_per_s']:.1f} images/s, peak RSS {r['process_peak_rss_mib']:.0f} MiB"
        )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
