"""Warm start: initialise a stage's codec from a base-stage Lightning checkpoint (Mentzer et al. 2020, Sec. 4.2)."""

from __future__ import annotations

import logging
import pickle
import zipfile
from pathlib import Path

import torch

from hific_lit.codec import HiFiC
from hific_lit.entropy.tables import CodingTables
from hific_lit.errors import CheckpointError

log = logging.getLogger(__name__)

MODEL_PREFIX = "model."


def read_lightning_checkpoint(path: str | Path) -> dict:
    """A Lightning training checkpoint (weights only), with a clear error when the file is not one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"training checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"training checkpoint {path} is not a readable PyTorch checkpoint ({exc})") from exc
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise CheckpointError(
            f"{path} is not a Lightning training checkpoint (no 'state_dict'); pass last.ckpt or best.ckpt of a run"
        )
    return checkpoint


def load_codec_weights(model: HiFiC, path: str | Path) -> None:
    """Copy g_a, g_s, h_a, h_s and the entropy models from a training checkpoint into ``model``.

    The discriminator is left as it is (fresh), whatever the checkpoint holds, and so are the
    coding tables (rebuilt from the trained densities at export). Every other tensor must be
    present with the same shape; otherwise :class:`CheckpointError` says which.
    """
    state = read_lightning_checkpoint(path)["state_dict"]
    skipped = ("discriminator.", *(f"{name}." for name, m in model.named_modules() if isinstance(m, CodingTables)))
    codec = {k[len(MODEL_PREFIX) :]: v for k, v in state.items() if k.startswith(MODEL_PREFIX)}
    own = {k: v for k, v in model.state_dict().items() if not k.startswith(skipped)}
    missing = sorted(set(own) - set(codec))
    mismatched = sorted(k for k in set(own) & set(codec) if own[k].shape != codec[k].shape)
    if missing or mismatched:
        raise CheckpointError(
            f"{path} does not hold this architecture's codec: "
            f"{len(missing)} missing tensors {missing[:3]}, {len(mismatched)} of another shape {mismatched[:3]}; "
            "was it trained with the same arch=?"
        )
    model.load_state_dict({k: codec[k] for k in own}, strict=False)
    log.info("warm start: codec weights loaded from %s; discriminator starts fresh", path)
