"""Inference checkpoints from training: the codec with freshly built coding tables, no optimizer state, no D.

``hific export RUN/checkpoints/best.ckpt model.ckpt [--realism R]`` exports any training checkpoint; the
:class:`~hific_lit.training.callbacks.InferenceExport` callback does the same at fit end.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from hific_lit.errors import CheckpointError
from hific_lit.io.checkpoint import save_inference_checkpoint
from hific_lit.models.base import Codec
from hific_lit.models.registry import build_codec
from hific_lit.training.base import ARCH_KEY, MODEL_KEY
from hific_lit.training.warmstart import lightning_weights, load_codec_weights, read_lightning_checkpoint

log = logging.getLogger(__name__)


def export_model(model: Codec, path: str | Path, config: dict | None = None, precision: str = "fp32") -> Path:
    """Build ``model``'s coding tables from its trained densities and save it as an inference checkpoint
    (g_a's and g_s's weights in ``precision``: fp32 or bf16, see :func:`save_inference_checkpoint`)."""
    path = Path(path)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model.update(force=True)
    save_inference_checkpoint(model, path, config=config, weights_precision=precision)
    model.train(was_training)
    log.info("inference checkpoint written to %s", path)
    return path


def convert_inference_checkpoint(source: str | Path, path: str | Path, precision: str) -> Path:
    """An inference checkpoint written again with g_a's and g_s's weights in ``precision`` (fp32 or bf16);
    the coding tables and everything else are kept as they are (so is the model's fingerprint)."""
    from hific_lit.io.checkpoint import load_inference_checkpoint, read_inference_checkpoint

    config = read_inference_checkpoint(source, mmap=True).get("config")
    model = load_inference_checkpoint(source)
    save_inference_checkpoint(model, path, config=config, weights_precision=precision)
    log.info("inference checkpoint written to %s (%s weights)", path, precision)
    return Path(path)


def export_training_checkpoint(
    source: str | Path, path: str | Path, realism: float | None = None, precision: str = "fp32"
) -> Path:
    """Turn a Lightning checkpoint of a run (``last.ckpt``, ``best.ckpt``) into an inference checkpoint.

    ``realism`` (0..1): the default realism of a realism-conditioned model (MRIC), stored as its default
    β = ``realism`` · β_max, which ``hific decompress`` and ``hific eval`` decode at when not told another;
    a model without realism conditioning refuses it (:class:`CheckpointError`), a value outside 0..1 too
    (:class:`~hific_lit.errors.SettingError`). The model is built by its recorded kind (HiFiC, GC2018).
    """
    checkpoint = read_lightning_checkpoint(source)
    if ARCH_KEY not in checkpoint:
        raise CheckpointError(f"{source} does not record its architecture ({ARCH_KEY!r}); was it written by hific-lit?")
    try:
        model = build_codec(checkpoint.get(MODEL_KEY, "hific"), checkpoint[ARCH_KEY])
        if realism is not None:
            model.set_default_beta(model.realism_beta(realism))
    except CheckpointError as exc:
        raise CheckpointError(f"{source}: {exc}") from None
    load_codec_weights(model, source, lightning_weights(checkpoint))
    return export_model(model, path, precision=precision)
