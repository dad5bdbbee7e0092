"""The one fingerprint rule of every model: a hash of what decoding depends on, stored in each .hfc header."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from hific_lit.io.container import FINGERPRINT_SIZE

FingerprintPart = tuple[str, torch.Tensor, torch.dtype | None]
"""A named tensor that decoding depends on, and the float type it is hashed in (``None``: as stored)."""


def fingerprint_digest(arch: Mapping[str, Any], parts: Iterable[FingerprintPart]) -> bytes:
    """The fingerprint rule: an 8-byte BLAKE2b of the architecture (JSON, sorted keys), then of each part's name
    and bytes, floats converted to the part's type first. Tensors are hashed row by row (small copies); the bytes
    are those of the whole tensor in that type, so a bf16 or float64 copy of a model shares its fingerprint."""
    digest = hashlib.blake2b(digest_size=FINGERPRINT_SIZE)
    digest.update(json.dumps(dict(arch), sort_keys=True).encode())
    for name, tensor, dtype in parts:
        digest.update(name.encode())
        tensor = tensor.detach().cpu()
        for piece in tensor.unbind(0) if tensor.dim() > 1 else (tensor,):
            piece = piece.to(dtype) if dtype is not None and piece.is_floating_point() else piece
            digest.update(piece.contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.digest()
