"""Inference checkpoints from training: the codec with freshly built coding tables, no optimizer state, no D.

``python -m hific_lit.lit.export RUN/checkpoints/best.ckpt model.ckpt`` exports any training
checkpoint; the :class:`~hific_lit.lit.callbacks.InferenceExport` callback does the same at fit end.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from hific_lit.arch import ArchConfig
from hific_lit.checkpoint import save_inference_checkpoint
from hific_lit.codec import HiFiC
from hific_lit.errors import CheckpointError, exit_status
from hific_lit.lit.base import ARCH_KEY
from hific_lit.lit.warmstart import load_codec_weights, read_lightning_checkpoint

log = logging.getLogger(__name__)


def export_model(model: HiFiC, path: str | Path, config: dict | None = None) -> Path:
    """Build ``model``'s coding tables from its trained densities and save it as an inference checkpoint."""
    path = Path(path)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model.update(force=True)
    save_inference_checkpoint(model, path, config=config)
    model.train(was_training)
    log.info("inference checkpoint written to %s", path)
    return path


def export_training_checkpoint(source: str | Path, path: str | Path) -> Path:
    """Turn a Lightning checkpoint of a run (``last.ckpt``, ``best.ckpt``) into an inference checkpoint."""
    checkpoint = read_lightning_checkpoint(source)
    if ARCH_KEY not in checkpoint:
        raise CheckpointError(f"{source} does not record its architecture ({ARCH_KEY!r}); was it written by hific-lit?")
    model = HiFiC(ArchConfig(**checkpoint[ARCH_KEY]))
    load_codec_weights(model, source)
    return export_model(model, path)


def main(argv: list[str] | None = None) -> int:
    """``python -m hific_lit.lit.export SOURCE.ckpt OUTPUT``."""
    parser = argparse.ArgumentParser(
        prog="python -m hific_lit.lit.export",
        description="Export a training checkpoint (last.ckpt, best.ckpt) as the inference checkpoint `hific` loads.",
    )
    parser.add_argument("source", type=Path, help="Lightning checkpoint of a hific-lit training run")
    parser.add_argument("output", type=Path, help="inference checkpoint to write (atomically)")
    args = parser.parse_args(argv)
    return exit_status(lambda: print(export_training_checkpoint(args.source, args.output)), parser.prog)


if __name__ == "__main__":
    sys.exit(main())
