"""Make a training run the bundled model: its inference checkpoint, fingerprint, recipe, seed and log into the package.

    python scripts/bundle_model.py outputs/bundled/run [--precision bf16]   (default fp32)

Writes ``hific_lit/pretrained/bundled/``: ``bundled.ckpt`` (the run's ``inference.ckpt``, its encoder and generator
weights in ``--precision``), ``bundled.json`` (its model fingerprint, which ``hific decompress`` matches against
a file's header, the experiment, seed and iterations), ``recipe.yaml`` (the run's resolved config),
``train.log`` and ``metrics.csv`` (the training curve). `make demo-train` runs it after training.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from omegaconf import OmegaConf

from hific_lit.errors import NOTHING_RAN, HificError
from hific_lit.io.checkpoint import load_inference_checkpoint
from hific_lit.pretrained.registry import BUNDLED, bundled_dir, write_model_info
from hific_lit.training.export import convert_inference_checkpoint

MAX_BYTES = 8 * 10**6
"""Issue 23: the bundled model is at most 8 MB."""


def bundle(run: Path, precision: str, target: Path) -> Path:
    """Copy what makes ``run`` reproducible and usable into ``target``; return the checkpoint written."""
    config = OmegaConf.load(run / ".hydra" / "config.yaml")
    logs = sorted(run.glob("csv/version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
    missing = [p for p in (run / "inference.ckpt", run / "train.log") if not p.is_file()] + ([] if logs else ["csv"])
    if missing:
        raise HificError(f"{run} is not a finished training run (missing {', '.join(map(str, missing))})")
    target.mkdir(parents=True, exist_ok=True)
    ckpt = target / f"{BUNDLED}.ckpt"
    convert_inference_checkpoint(run / "inference.ckpt", ckpt, precision)
    if ckpt.stat().st_size > MAX_BYTES:
        raise HificError(f"{ckpt}: {ckpt.stat().st_size} bytes, above the {MAX_BYTES} allowed; try --precision bf16")
    fingerprint = load_inference_checkpoint(ckpt).fingerprint()
    details = {
        "description": "small HiFiC (half-width arch=small) trained on CPU on 331 photos of Debian packages",
        "experiment": "bundled",
        "seed": int(config.seed),
        "iterations": int(config.max_iterations),
        "weights_precision": precision,
        "reproduce": "make demo-train",
    }
    write_model_info(ckpt, fingerprint, **details)
    OmegaConf.save(config, target / "recipe.yaml")
    shutil.copyfile(run / "train.log", target / "train.log")
    shutil.copyfile(logs[-1], target / "metrics.csv")
    return ckpt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="the training run's folder (outputs/bundled/run)")
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="of g_a's and g_s's weights (bf16 takes the bundled model from 7.7 to 6.5 MB: the hyperprior dominates)",
    )
    parser.add_argument("--to", type=Path, default=None, help="default: hific_lit/pretrained/bundled/")
    args = parser.parse_args(argv)
    try:
        ckpt = bundle(args.run, args.precision, args.to or bundled_dir())
    except HificError as exc:
        print(f"bundle_model: error: {exc}", file=sys.stderr)
        return NOTHING_RAN
    print(f"{ckpt}: {ckpt.stat().st_size / 1e6:.2f} MB, fingerprint in {ckpt.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
