"""Make a training run the bundled model: its inference checkpoint, fingerprint, recipe, seed and log into the package.

    python scripts/bundle_model.py outputs/bundled/run [--precision bf16]   (default fp32)

Writes ``hific_lit/pretrained/bundled/``: ``bundled.ckpt`` (the run's ``inference.ckpt``, its encoder and generator
weights in ``--precision``), ``bundled.json`` (its model fingerprint, which ``hific decompress`` matches against
a file's header, the experiment, seed and iterations), ``recipe.yaml`` (the run's resolved config), ``train.log``
and ``metrics.csv`` (the training curve; the CSV logger's versions joined where the run was resumed from a
checkpoint), and for a model warm-started from another run (``experiment=bundled_rate``) the same three of that run
as ``base_*``. `make demo-train` runs it after training.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from hific_lit.data.photo_set import read_manifest
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
    model = load_inference_checkpoint(ckpt)
    fingerprint = model.fingerprint()
    rates = model.capabilities.rate
    anchors = OmegaConf.select(config, "regime.anchor_targets")
    kind = "small HiFiC (half-width arch=small)"
    if rates is not None:
        span = f", training anchors {min(anchors):g}-{max(anchors):g} bpp" if anchors else ""
        kind = f"rate-conditioned small HiFiC (half-width arch=small_rate{span})"
    photos = sum(entry.role == "train" for entry in read_manifest())
    details = {
        "description": f"{kind} trained on CPU on {photos} photos of Debian packages",
        "experiment": str(config.get("task_name", BUNDLED)),
        "seed": int(config.seed),
        "iterations": int(config.max_iterations),
        "weights_precision": precision,
        "reproduce": "make demo-train",
    }
    base = Path(config.warmstart).parent if config.get("warmstart") else None
    if base is not None and (base / ".hydra" / "config.yaml").is_file():
        base_config = OmegaConf.load(base / ".hydra" / "config.yaml")
        details["warm_start"] = {
            "experiment": str(base_config.task_name),
            "iterations": int(base_config.max_iterations),
        }
        bundle_logs(base, base_config, target, "base_")
    write_model_info(ckpt, fingerprint, **details)
    bundle_logs(run, config, target)
    return ckpt


def bundle_logs(run: Path, config: DictConfig, target: Path, prefix: str = "") -> None:
    """The run's resolved config, log and curve into ``target`` as ``{prefix}recipe.yaml``, ``train.log``,
    ``metrics.csv`` (a warm-started model ships those of the run it started from too, as ``base_*``)."""
    logs = sorted(run.glob("csv/version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
    OmegaConf.save(config, target / f"{prefix}recipe.yaml")
    if (run / "train.log").is_file():
        shutil.copyfile(run / "train.log", target / f"{prefix}train.log")
    if logs:
        write_joined_curve(logs, target / f"{prefix}metrics.csv")


def write_joined_curve(logs: list[Path], out: Path) -> None:
    """Write the CSV logger's ``metrics.csv`` of each version of a run as one curve: a run resumed from a checkpoint
    logs into a new version from the checkpoint's step on, so each version's rows from where the next one starts
    (redone after the resume) are left out; the columns are those of all versions, in order of appearance."""
    tables = []
    for log in logs:
        with log.open(newline="") as f:
            reader = csv.DictReader(f)
            tables.append((list(reader.fieldnames or []), list(reader)))
    columns = list(dict.fromkeys(name for names, _ in tables for name in names))
    rows = []
    for index, (_, table) in enumerate(tables):
        later = [int(r["step"]) for _, t in tables[index + 1 :] for r in t if r.get("step")]
        rows += [r for r in table if not later or int(r["step"]) < min(later)]
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns, restval="")
        writer.writeheader()
        writer.writerows(rows)


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
