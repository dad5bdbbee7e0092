"""Evaluate HiFiC checkpoints on Kodak / CLIC2020 / a folder, from real bitstreams, against JPEG/WebP/AVIF.

    python scripts/eval.py ckpt=model.pt data=kodak
    python scripts/eval.py 'ckpt=[low.pt,med.pt,high.pt]' data=clic2020
    python scripts/eval.py ckpt=model.pt data=folder data.path=~/photos metrics.fid=false

Config: conf/eval/eval.yaml. Results go to the Hydra run folder (outputs/eval/<time>/).
"""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from hific_lit.errors import HificError
from hific_lit.eval.pipeline import evaluate

log = logging.getLogger("eval")


def _report(summary: dict) -> None:
    for name, entry in summary["checkpoints"].items():
        for method, values in entry["methods"].items():
            shown = ", ".join(
                f"{key} {values[key]:.4g}"
                for key in ("bpp", "psnr", "ms_ssim", "lpips", "fid")
                if values.get(key) is not None
            )
            log.info("%-12s %-6s %s", name, method, shown)
    for metric, reason in summary["missing"].items():
        log.warning("missing %s: %s", metric, reason)


@hydra.main(version_base="1.3", config_path="../conf/eval", config_name="eval")
def main(cfg: DictConfig) -> None:
    """Hydra entry point; a bad checkpoint, data set or setting exits with its message and status 1."""
    out_dir = HydraConfig.get().runtime.output_dir
    try:
        summary = evaluate(cfg, out_dir)
    except HificError as exc:
        log.error("%s", exc)
        sys.exit(1)
    _report(summary)
    log.info("results in %s (summary.json, per_image.csv, plots/, <checkpoint>/viewer.html)", out_dir)


if __name__ == "__main__":
    main()
