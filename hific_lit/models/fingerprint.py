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


class Fingerprinted:
    """The fingerprint of a model (a mixin of :class:`~hific_lit.models.base.Codec`): :func:`fingerprint_digest`
    of what the model's :meth:`fingerprint_parts` names, cached until one of those tensors changes."""

    def fingerprint_parts(self) -> tuple[dict[str, Any], list[FingerprintPart]]:
        """(architecture as JSON-able dict, tensors) that :meth:`fingerprint` hashes: what decoding depends on."""
        raise NotImplementedError

    def _fingerprint_key(self) -> tuple[dict[str, Any], list[FingerprintPart], tuple]:
        arch, parts = self.fingerprint_parts()
        key = (
            json.dumps(arch, sort_keys=True),
            [(n, t.data_ptr(), t._version, t.dtype, str(t.device)) for n, t, _ in parts],
        )
        return arch, parts, key

    def fingerprint(self) -> bytes:
        """8 bytes identifying what decoding depends on; cached until a tensor changes."""
        arch, parts, key = self._fingerprint_key()
        cached = self.__dict__.get("_fingerprint_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        digest = fingerprint_digest(arch, parts)
        self.__dict__["_fingerprint_cache"] = (key, digest)
        return digest

    def pin_fingerprint(self, digest: bytes) -> None:
        """Take ``digest`` as the fingerprint of the tensors as they are now (until one of them changes).

        For a model loaded in a precision whose rounding the rule does not absorb: the rule hashes g_s in
        bfloat16, so float32, bfloat16 and float64 copies share a fingerprint, but float16 weights round to
        other bfloat16 values. The loader pins the fingerprint the float32 model has (stored in the checkpoint,
        else computed before the conversion), so files coded by either copy decode with the other.
        """
        if len(digest) != FINGERPRINT_SIZE:
            raise ValueError(f"a fingerprint has {FINGERPRINT_SIZE} bytes, not {len(digest)}")
        self.__dict__["_fingerprint_cache"] = (self._fingerprint_key()[2], bytes(digest))
