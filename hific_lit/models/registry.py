"""Every model by its kind: what checkpoints and export build from a stored kind and architecture."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hific_lit.errors import CheckpointError
from hific_lit.models.base import Codec
from hific_lit.models.gc2018.model import GC2018
from hific_lit.models.hific.model import HiFiC

CODECS: dict[str, type[Codec]] = {cls.kind: cls for cls in (HiFiC, GC2018)}
"""Model kind (as checkpoints and .hfc headers name it) -> its class."""


def codec_class(kind: str) -> type[Codec]:
    """The class of a model kind, else a :class:`CheckpointError` that lists the known kinds."""
    try:
        return CODECS[kind]
    except KeyError:
        raise CheckpointError(
            f"unknown model kind {kind!r} (written by a newer hific-lit?); known: {', '.join(CODECS)}"
        ) from None


def build_codec(kind: str, arch: Mapping[str, Any]) -> Codec:
    """A fresh model of ``kind`` with the architecture fields ``arch``; an invalid one is a :class:`CheckpointError`."""
    cls = codec_class(kind)
    try:
        return cls.from_arch(arch)
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"the stored architecture is invalid ({exc})") from None


def codec_from_preset(name: str) -> Codec:
    """A fresh model of the named preset of any model (``hific``, ``small``, ``gc2018_tiny``...)."""
    for cls in CODECS.values():
        if name in cls.presets:
            return cls.from_preset(name)
    known = ", ".join(name for cls in CODECS.values() for name in cls.presets)
    raise ValueError(f"unknown architecture preset {name!r}; known: {known}")
