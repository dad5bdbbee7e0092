"""Inference checkpoints: the codec's weights, its coding tables, its architecture and its config.

No optimizer state: exactly what ``hific compress`` / ``decompress`` need. A discriminator is stored
only when one is handed over explicitly (e.g. imported with a pretrained model, for fine-tuning),
under its own key, never inside the codec's state dict.
Files are written atomically and read with ``torch.load(weights_only=True)``, so loading one
never runs code from the file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from hific_lit import __version__
from hific_lit.arch import ArchConfig
from hific_lit.codec import HiFiC
from hific_lit.errors import CheckpointError

FORMAT = "hific-lit-inference"
FORMAT_VERSION = 2
"""2: g_a takes images in [0, 1] and g_s's output is the image (version 1 mapped both to [-1, 1])."""
DISCRIMINATOR_KEY = "discriminator_state_dict"


def _plain_config(config: Any) -> dict | None:
    """The config as plain JSON-able python (OmegaConf containers resolved), for weights-only loading."""
    if config is None:
        return None
    if hasattr(config, "_metadata"):
        from omegaconf import OmegaConf

        config = OmegaConf.to_container(config, resolve=True)
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping, got {type(config).__name__}")
    return json.loads(json.dumps(config, default=str))


def save_inference_checkpoint(
    model: HiFiC,
    path: str | os.PathLike,
    config: Mapping | None = None,
    discriminator: torch.nn.Module | None = None,
) -> None:
    """Write ``model`` (codec weights, coding tables, architecture) and ``config`` to ``path`` atomically.

    The coding tables are built first if they were not (:meth:`HiFiC.update`). ``discriminator``,
    when given, is stored beside the codec (key ``discriminator_state_dict``) for a later GAN stage.
    """
    model.update()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "hific_lit_version": __version__,
        "arch": model.arch.to_dict(),
        "config": _plain_config(config),
        "state_dict": state,
    }
    if discriminator is not None:
        payload[DISCRIMINATOR_KEY] = {k: v.detach().cpu() for k, v in discriminator.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_inference_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """The checkpoint's dict, checked to be a hific-lit inference checkpoint, else :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    with open(path, "rb") as f:
        head = f.read(512).lstrip()
    if head[:1] == b"<":
        raise CheckpointError(f"{path}: this is an HTML/XML page, not a checkpoint (a failed download?)")
    if not head:
        raise CheckpointError(f"{path}: the checkpoint file is empty")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        if "Unsupported global" in str(exc):
            raise CheckpointError(
                f"{path}: the file holds Python objects beyond tensors and plain data; refusing to unpickle it"
                " (checkpoints load with weights_only=True)"
            ) from None
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?): {reason}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        hint = ""
        if isinstance(payload, dict) and "pytorch-lightning_version" in payload:
            hint = "; it is a Lightning training checkpoint — export an inference checkpoint from it"
        raise CheckpointError(f"{path}: not a hific-lit inference checkpoint{hint}")
    version = payload.get("format_version", 0)
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} is newer than this hific-lit reads"
            f" ({FORMAT_VERSION}); upgrade hific-lit"
        )
    if version < FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} predates the authors' input range (images in [0, 1]"
            " into g_a and out of g_s); its weights would decode wrongly: retrain, or export again from a run"
            " of this version"
        )
    return payload


def load_inference_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> HiFiC:
    """Load a checkpoint written by :func:`save_inference_checkpoint` as a :class:`HiFiC` in eval mode.

    Raises :class:`CheckpointError` for a missing, empty, truncated, HTML or foreign file, weights
    that do not fit the stored architecture, or missing coding tables.
    """
    payload = read_inference_checkpoint(path, map_location)
    try:
        arch = ArchConfig(**payload["arch"])
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: the stored architecture is invalid ({exc})") from None
    model = HiFiC(arch)
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(
            f"{path}: the weights do not fit the stored architecture ({first[0] if first else exc})"
        ) from None
    if not model.coding_ready:
        raise CheckpointError(
            f"{path}: the checkpoint has no coding tables; re-export it with save_inference_checkpoint"
        )
    return model.to(map_location).eval()
