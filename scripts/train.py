"""Train HiFiC: `python scripts/train.py [group=option ...] [key=value ...]`; see conf/train.yaml and the README.

Examples::

    python scripts/train.py experiment=demo_base                  # small model on CPU, minutes
    python scripts/train.py regime=med trainer.devices=4          # paper model, 4 GPUs (DDP)
    python scripts/train.py stage=gan warmstart=RUN/checkpoints/last.ckpt
    python scripts/train.py ckpt_path=RUN/checkpoints/last.ckpt   # resume
    python scripts/train.py -m regime=low,med,high                # a sweep
"""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from hific_lit.errors import HificError
from hific_lit.train import run


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """One run, or one job of a sweep; a :class:`HificError` outside a sweep ends the run with one line."""
    try:
        return run(cfg, in_sweep=HydraConfig.get().mode == RunMode.MULTIRUN)
    except HificError as exc:
        print(f"scripts/train.py: error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
