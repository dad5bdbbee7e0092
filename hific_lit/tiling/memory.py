"""Memory budgets: parse them, and measure how many bytes a network's activations take per pixel.

The peak is measured, not guessed: the network runs once on a small probe tile, on its own device,
under a function mode that adds up the bytes of every tensor storage while it is alive. That is
exact for the tensors the network's Python code creates, for any architecture, dtype, device and
batch size, and it scales with the tile's area. Kernels' private scratch space and allocator slack
come on top; :data:`MEMORY_SAFETY` covers them (measured on CPU, ``scripts/bench_tiling.py``: the
resident set of a whole-image pass grows by 0.8-1.35x the counted bytes for hific's g_a and g_s
upsampling over several runs, and by up to 1.57x for the narrower ``small`` preset, whose transposed
convolutions' scratch space weighs more against its few channels).
(The ``meta`` device would spare the probe's arithmetic, but its kernels for some ops import
torch._dynamo, ~140 MB of resident memory.)
"""

from __future__ import annotations

import re
import weakref

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from hific_lit.errors import HificError

MEMORY_SAFETY = 1.6
"""Resident bytes per tensor byte counted on the probe: the largest measured ratio (1.57), rounded up."""

DEFAULT_MAX_MEMORY = 384 * 2**20
"""Default working-memory budget of the tiled transforms, per tile.

Small enough that hific codes a 4000x4000 image within 3 GB of resident memory (weights and
whole-image buffers included, ``scripts/bench_tiling.py``), large enough that a 1024² image
needs only 4 tiles for g_a and for g_s's upsampling, and none for g_s's trunk.
"""

_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


class MemoryBudgetError(HificError, ValueError):
    """A memory budget is malformed, or too small for even the smallest tile."""


def parse_memory_size(text: str | int) -> int:
    """Bytes in ``text``: a number with an optional binary unit, e.g. ``"512M"``, ``"2GiB"``, ``"1.5g"``."""
    if isinstance(text, int):
        size = text
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", text)
        if match is None:
            raise MemoryBudgetError(f"cannot read memory size {text!r}: use a number with a unit, e.g. 512M or 2G")
        size = int(float(match[1]) * _UNITS[match[2].upper()])
    if size <= 0:
        raise MemoryBudgetError(f"memory size must be positive, got {text!r}")
    return size


def parse_memory_budget(text: str) -> int | None:
    """A working-memory budget: a size as in :func:`parse_memory_size`, or ``none`` for no tiling."""
    return None if text.strip().lower() in ("none", "off", "unlimited") else parse_memory_size(text)


def format_bytes(size: float) -> str:
    """``size`` in MiB or GiB, for messages."""
    return f"{size / 2**30:.2f} GiB" if size >= 2**30 else f"{size / 2**20:.1f} MiB"


class _LiveBytes(TorchFunctionMode):
    """Tracks the bytes of tensor storages alive during the ops it sees, and their maximum."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._alive: dict[int, weakref.ref] = {}

    def _release(self, key: int, size: int) -> None:
        self.live -= size
        self._alive.pop(key, None)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, torch.Tensor):
                continue
            storage = tensor.untyped_storage()
            key, size = id(storage), storage.nbytes()
            if key not in self._alive:
                self.live += size
                self._alive[key] = weakref.ref(storage, lambda _, k=key, n=size: self._release(k, n))
        self.peak = max(self.peak, self.live)
        return out


def activation_peak_bytes(module: nn.Module, input_shape: tuple[int, ...], dtype: torch.dtype) -> int:
    """Peak bytes of the tensors ``module`` creates on an input of ``input_shape`` (weights excluded).

    Runs ``module`` once on zeros of that shape on the module's device; keep the probe small.
    """
    device = next(module.parameters()).device
    x = torch.zeros(input_shape, dtype=dtype, device=device)
    with torch.no_grad(), _LiveBytes() as tracker:
        module(x)
    return tracker.peak
