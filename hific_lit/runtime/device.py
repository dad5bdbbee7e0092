"""Where the model runs: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` (and Lightning's ``gpu``), one resolver for all."""

from __future__ import annotations

import torch

from hific_lit.errors import SettingError

ALIASES = {"gpu": "cuda"}
"""Lightning's accelerator names (``trainer=gpu``) that torch spells otherwise."""


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; other names are torch's, checked to exist here.

    Raises :class:`SettingError` for a name torch does not know, or CUDA asked for on a machine without it.
    """
    if isinstance(name, torch.device):
        return name
    name = ALIASES.get(str(name).strip(), str(name).strip())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SettingError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SettingError(f"device {name}: CUDA is not available on this machine; use cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise SettingError(f"device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device
