"""Inference checkpoints: the codec's weights, its coding tables, its architecture and its config.

No optimizer state: exactly what ``hific compress`` / ``decompress`` need. A discriminator is stored
only when one is handed over explicitly (e.g. imported with a pretrained model, for fine-tuning),
under its own key, never inside the codec's state dict.
Files are written atomically and read by the one guarded loader (:mod:`hific_lit.io.torch_load`), so loading
one never runs code from the file. Models are built through the Codec interface by their stored kind
(:mod:`hific_lit.models.registry`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
from collections.abc import Mapping
from typing import Any

import torch

from hific_lit.entropy.residual import coder_from_payload, coder_payload
from hific_lit.errors import CheckpointError, SettingError
from hific_lit.io.files import atomic_write
from hific_lit.io.torch_load import guarded_load
from hific_lit.models.base import Codec
from hific_lit.models.registry import build_codec
from hific_lit.runtime.precision import resolve_precision, set_transform_precision
from hific_lit.version import __version__

FORMAT = "hific-lit-inference"
FORMAT_VERSION = 4
"""2: g_a takes images in [0, 1] and g_s's output is the image (version 1 mapped both to [-1, 1]);
3: the integer-exact h_s of .hfc format 2 is stored (``h_s_mu_int``, ``h_s_sigma_int``);
4: h_a's kernels may be stored as RDFT coefficients (``weight_origin``, ``weight_rdft``: ``arch.hyper_analysis_kernel``
``rdft``, :mod:`hific_lit.nn.rdft`). Version 3 still loads: its plain kernels convert exactly on load."""
READ_SINCE = 3
"""The oldest version this hific-lit reads."""
DISCRIMINATOR_KEY = "discriminator_state_dict"
REALISM_KEY = "realism"
RATE_KEY = "rate"
RESIDUAL_KEY = "residual_coder"
FINGERPRINT_KEY = "fingerprint"
"""The model's fingerprint (hex) as saved: pinned when the model is loaded in float16 (:meth:`pin_fingerprint`)."""
FINGERPRINTED_DTYPES = (torch.float32, torch.bfloat16, torch.float64)
"""Transform precisions whose copies of a model share its fingerprint (the rule hashes g_s in bfloat16)."""
"""The error bound's residual coder, when one was trained on the model's residuals (scripts/train_residual.py)."""
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
    model: Codec,
    path: str | os.PathLike,
    config: Mapping | None = None,
    discriminator: torch.nn.Module | None = None,
    weights_precision: str = "fp32",
) -> None:
    """Write ``model`` (codec weights, coding tables, architecture) and ``config`` to ``path`` atomically.

    The coding tables are built first if they were not (:meth:`~hific_lit.models.base.Codec.update`). ``discriminator``,
    when given, is stored beside the codec (key ``discriminator_state_dict``) for a later GAN stage.
    A realism-conditioned model also stores its β range and default β (key ``realism``), a rate-conditioned one
    its anchors and default rate (key ``rate``), a model with a residual coder (the error bound) that coder (key
    ``residual_coder``).
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
        "model": model.kind,
        "arch": model.arch.to_dict(),
        "config": _plain_config(config),
        "state_dict": state,
        FINGERPRINT_KEY: model.fingerprint().hex(),
    }
    realism = model.capabilities.realism
    if realism is not None:
        payload[REALISM_KEY] = {"beta_max": realism.beta_max, "default_beta": realism.default_beta}
    rate = model.capabilities.rate
    if rate is not None:
        payload[RATE_KEY] = {"anchors": rate.anchors, "default_rate": rate.default}
    if model.residual_coder is not None:
        payload[RESIDUAL_KEY] = coder_payload(model.residual_coder)
    if discriminator is not None:
        payload[DISCRIMINATOR_KEY] = {k: v.detach().cpu() for k, v in discriminator.state_dict().items()}
    atomic_write(path, lambda f: torch.save(payload, f))


def read_inference_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", mmap: bool = False
) -> dict:
    """The checkpoint's dict, checked to be a hific-lit inference checkpoint, else :class:`CheckpointError`.

    ``mmap=True`` maps the file instead of reading it (CPU only): tensors are read from disk when first used.
    """
    return check_inference_payload(guarded_load(path, mmap=mmap, map_location=map_location), path)


def is_inference_payload(payload: object) -> bool:
    """Whether a loaded checkpoint is a hific-lit inference checkpoint (of any version)."""
    return isinstance(payload, dict) and payload.get("format") == FORMAT


def check_inference_payload(payload: object, path: str | os.PathLike) -> dict:
    """``payload`` (a loaded ``path``) if it is an inference checkpoint of a version this hific-lit reads, else
    a :class:`CheckpointError` that says what it is and what to do."""
    if not is_inference_payload(payload):
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
    if version < READ_SINCE:
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
    channels_last (see :func:`~hific_lit.runtime.precision.set_transform_precision`), converted one by one."""
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


def load_inference_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", precision: str = "fp32"
) -> Codec:
    """Load a checkpoint written by :func:`save_inference_checkpoint` as the model of its stored kind (HiFiC,
    GC2018: :mod:`hific_lit.models.registry`), in eval mode.

    ``precision`` (``fp32``, ``bf16``, ``fp16`` or ``auto``, see :mod:`hific_lit.runtime.precision`) is the
    float type of g_a and g_s; their weights are converted once, here, tensor by tensor from the
    memory-mapped file, so the float32 copy is never held whole. The model is built on the meta
    device and takes the loaded tensors as they are (no random initialisation, no second copy).

    Raises :class:`CheckpointError` for a missing, empty, truncated, HTML or foreign file, weights
    that do not fit the stored architecture, or missing coding tables.
    """
    device = torch.device(map_location)
    dtype = resolve_precision(precision, device)
    payload = read_inference_checkpoint(path, "cpu", mmap=True)
    try:
        with torch.device("meta"):
            model = build_codec(payload.get("model", "hific"), payload.get("arch") or {})
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    stored = payload.get(FINGERPRINT_KEY)
    load_dtype = torch.float32 if dtype not in FINGERPRINTED_DTYPES and stored is None else dtype
    try:
        state = _materialize(payload.pop("state_dict"), device, load_dtype)
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
    if realism is not None and model.capabilities.realism is not None:
        try:
            model.set_default_beta(realism["default_beta"])
        except (KeyError, TypeError, SettingError) as exc:
            raise CheckpointError(f"{path}: the stored default realism is invalid ({exc})") from None
    if RESIDUAL_KEY in payload:
        model.attach_residual_coder(coder_from_payload(payload[RESIDUAL_KEY], str(path)))
    if dtype not in FINGERPRINTED_DTYPES:
        fingerprint = model.fingerprint() if stored is None else _stored_fingerprint(stored, path)
    set_transform_precision(model.g_a, model.g_s, dtype)  # in dtype and layout unless loaded for the fingerprint
    if dtype not in FINGERPRINTED_DTYPES:
        model.pin_fingerprint(fingerprint)
    return model.eval()


def _stored_fingerprint(stored: object, path: str | os.PathLike) -> bytes:
    """The fingerprint a checkpoint records, else :class:`CheckpointError`."""
    try:
        return bytes.fromhex(str(stored))
    except ValueError:
        raise CheckpointError(f"{path}: the stored model fingerprint {stored!r} is not hexadecimal") from None
