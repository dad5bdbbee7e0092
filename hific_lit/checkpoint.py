"""Inference checkpoints: the codec's weights, its coding tables, its architecture and its config.

No optimizer state: exactly what ``hific compress`` / ``decompress`` need. A discriminator is stored
only when one is handed over explicitly (e.g. imported with a pretrained model, for fine-tuning),
under its own key, never inside the codec's state dict.
Files are written atomically and read with ``torch.load(weights_only=True)``, so loading one
never runs code from the file.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from hific_lit import __version__
from hific_lit.arch import ArchConfig
from hific_lit.codec import HiFiC
from hific_lit.errors import CheckpointError, SettingError
from hific_lit.files import atomic_write
from hific_lit.nn.realism import check_beta
from hific_lit.precision import resolve_precision, set_transform_precision

if TYPE_CHECKING:
    from hific_lit.gc2018 import GC2018

FORMAT = "hific-lit-inference"
FORMAT_VERSION = 3
"""2: g_a takes images in [0, 1] and g_s's output is the image (version 1 mapped both to [-1, 1]);
3: the integer-exact h_s of .hfc format 2 is stored (``h_s_mu_int``, ``h_s_sigma_int``)."""
DISCRIMINATOR_KEY = "discriminator_state_dict"
REALISM_KEY = "realism"
"""Realism-conditioned models (MRIC): ``{"beta_max", "default_beta"}``, the β range and the β decoded by default."""
TRANSFORMS = ("g_a.", "g_s.")
"""State-dict prefixes of the networks whose precision may be reduced (nothing that decides symbols)."""

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_MADV_DONTNEED = 4
_LIBC = (
    ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if os.name == "posix" and os.uname().sysname == "Linux"
    else None
)


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
    weights_precision: str = "fp32",
) -> None:
    """Write ``model`` (codec weights, coding tables, architecture) and ``config`` to ``path`` atomically.

    The coding tables are built first if they were not (:meth:`HiFiC.update`). ``discriminator``,
    when given, is stored beside the codec (key ``discriminator_state_dict``) for a later GAN stage.
    A realism-conditioned model also stores its β range and default β (key ``realism``).
    ``weights_precision="bf16"`` stores g_a's and g_s's float weights in bfloat16 (about half the file); what
    decides the symbols (hyperprior, tables, integer h_s) stays as it is, and so does the model's fingerprint
    (it hashes the transforms' weights rounded to bfloat16), so files coded by either copy decode with the other.
    """
    if weights_precision not in ("fp32", "bf16"):
        raise SettingError(f"weights precision {weights_precision!r}: choose fp32 or bf16")
    model.update()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if weights_precision == "bf16":
        state = {
            k: v.to(torch.bfloat16) if k.startswith(TRANSFORMS) and v.is_floating_point() else v
            for k, v in state.items()
        }
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "hific_lit_version": __version__,
        "model": getattr(model, "kind", "hific"),
        "arch": model.arch.to_dict(),
        "config": _plain_config(config),
        "state_dict": state,
    }
    if getattr(model.g_s, "conditioned", False):
        payload[REALISM_KEY] = {"beta_max": model.g_s.beta_max, "default_beta": model.g_s.default_beta}
    if discriminator is not None:
        payload[DISCRIMINATOR_KEY] = {k: v.detach().cpu() for k, v in discriminator.state_dict().items()}
    atomic_write(path, lambda f: torch.save(payload, f))


def read_inference_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", mmap: bool = False
) -> dict:
    """The checkpoint's dict, checked to be a hific-lit inference checkpoint, else :class:`CheckpointError`.

    ``mmap=True`` maps the file instead of reading it (CPU only): tensors are read from disk when first used.
    """
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
        payload = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
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
            hint = "; it is a Lightning training checkpoint — export an inference checkpoint: hific export CKPT OUT"
        raise CheckpointError(f"{path}: not a hific-lit inference checkpoint{hint}")
    version = payload.get("format_version", 0)
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} is newer than this hific-lit reads"
            f" ({FORMAT_VERSION}); upgrade hific-lit"
        )
    if version < 2:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} predates the authors' input range (images in [0, 1]"
            " into g_a and out of g_s); its weights would decode wrongly: retrain, or export again from a run"
            " of this version"
        )
    if version < FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} has no integer h_s (needed for .hfc format 2): export it"
            " again (hific export RUN/checkpoints/last.ckpt model.ckpt), or load the weights,"
            " call model.update(force=True) and save_inference_checkpoint"
        )
    return payload


def _drop_pages(tensor: torch.Tensor) -> None:
    """Let the kernel drop the resident pages of a tensor read from a memory-mapped file (Linux; else nothing).

    The pages stay valid: touching them again reads the file. Used once a tensor has been converted, so
    that loading a model in reduced precision never holds the float32 weights in memory all at once.
    """
    if _LIBC is None or tensor.numel() == 0:
        return
    start = tensor.data_ptr() // _PAGE * _PAGE
    end = tensor.data_ptr() + tensor.numel() * tensor.element_size()
    _LIBC.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), _MADV_DONTNEED)


def _materialize(state: dict[str, torch.Tensor], device: torch.device, transform_dtype: torch.dtype) -> dict:
    """Tensors on ``device``; g_a's and g_s's floating-point ones in ``transform_dtype`` and their 4-d weights
    channels_last (see :func:`~hific_lit.precision.set_transform_precision`), converted one by one."""
    out = {}
    for name in list(state):
        tensor = state.pop(name)
        transform = name.startswith(TRANSFORMS) and tensor.is_floating_point()
        dtype = transform_dtype if transform else tensor.dtype
        layout = torch.channels_last if transform and tensor.dim() == 4 else torch.preserve_format
        converted = tensor.to(device=device, dtype=dtype, memory_format=layout)
        if converted.data_ptr() != tensor.data_ptr() and tensor.device.type == "cpu":
            _drop_pages(tensor)
        out[name] = converted
    return out


def _model_classes(path: str | os.PathLike, kind: str) -> tuple[type, type]:
    """(model class, architecture class) of a checkpoint's model kind: ``hific`` (older files) or ``gc2018``."""
    if kind == "hific":
        return HiFiC, ArchConfig
    if kind == "gc2018":
        from hific_lit.gc2018 import GC2018, GC2018Config

        return GC2018, GC2018Config
    raise CheckpointError(f"{path}: unknown model kind {kind!r} (written by a newer hific-lit?)")


def load_inference_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", precision: str = "fp32"
) -> HiFiC | GC2018:
    """Load a checkpoint written by :func:`save_inference_checkpoint` as a :class:`HiFiC` in eval mode (or a
    :class:`~hific_lit.gc2018.GC2018`, by the checkpoint's ``model`` kind).

    ``precision`` (``fp32``, ``bf16``, ``fp16`` or ``auto``, see :mod:`hific_lit.precision`) is the
    float type of g_a and g_s; their weights are converted once, here, tensor by tensor from the
    memory-mapped file, so the float32 copy is never held whole. The model is built on the meta
    device and takes the loaded tensors as they are (no random initialisation, no second copy).

    Raises :class:`CheckpointError` for a missing, empty, truncated, HTML or foreign file, weights
    that do not fit the stored architecture, or missing coding tables.
    """
    device = torch.device(map_location)
    dtype = resolve_precision(precision, device)
    payload = read_inference_checkpoint(path, "cpu", mmap=True)
    model_class, arch_class = _model_classes(path, payload.get("model", "hific"))
    try:
        arch = arch_class(**payload["arch"])
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: the stored architecture is invalid ({exc})") from None
    with torch.device("meta"):
        model = model_class(arch)
    try:
        state = _materialize(payload.pop("state_dict"), device, dtype)
        model.load_state_dict(state, assign=True)
        unloaded = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
        if unloaded:
            raise KeyError(f"missing {unloaded[:3]}")
    except (RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(
            f"{path}: the weights do not fit the stored architecture ({first[0] if first else exc})"
        ) from None
    if not model.coding_ready:
        raise CheckpointError(
            f"{path}: the checkpoint has no coding tables; re-export it with save_inference_checkpoint"
        )
    realism = payload.get(REALISM_KEY)
    if realism is not None and getattr(model.g_s, "conditioned", False):
        try:
            model.g_s.default_beta = float(check_beta(realism["default_beta"], model.g_s.beta_max, 1, device)[0])
        except (KeyError, TypeError, SettingError) as exc:
            raise CheckpointError(f"{path}: the stored default realism is invalid ({exc})") from None
    set_transform_precision(model.g_a, model.g_s, dtype)  # already in dtype and layout: changes nothing
    return model.eval()
