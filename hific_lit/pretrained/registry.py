"""Models by name: the released models kept in the model cache, and the model bundled with the package.

=================  ==================================================================  ========================
name               what                                                                where
=================  ==================================================================  ========================
``bundled``        a small model trained on 452 photos of Debian's packages (CPU)      in the package
``hific-low``      the JT port's HIFIC-low (target 0.14 bpp)                           ``hific download``
``hific-med``      the JT port's HIFIC-med (target 0.30 bpp)                           ``hific download``
``hific-high``     the JT port's HIFIC-high (target 0.45 bpp)                          ``hific download``
=================  ==================================================================  ========================

The cache is ``$HIFIC_HOME`` (default ``~/.cache/hific``): ``models/NAME.ckpt`` (an inference checkpoint)
beside ``models/NAME.json`` (its model fingerprint and where it came from), ``downloads/`` for files on
their way. The bundled model lives in ``hific_lit/pretrained/bundled/`` with the same pair of files, its
recipe, seed and training log. Names resolve in the cache first, then in the package;
:func:`find_by_fingerprint` finds the model that wrote a ``.hfc`` file from the fingerprint in its header
(the same order), so that ``hific decompress photo.hfc`` needs no model named.

Where the released models come from (CompressAI's ``zoo`` is the pattern: a name maps to URLs and a check):
the JT port's README (github.com/Justin-Tan/high-fidelity-generative-compression, section "Pretrained
Models") points at Zenodo record 4026003 and at three Google Drive files; its Colab demo
(``assets/HiFIC_torch_colab_demo.ipynb``) fetches ``hific_low.pt``, ``hific_med.pt`` and ``hific_hi.pt`` from
Zenodo when Drive's quota runs out. Zenodo is tried first, Drive after (Drive answers large files with a
"confirm" web page, which :func:`hific_lit.data.download.fetch` refuses).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from hific_lit.errors import CheckpointError

HOME_ENV = "HIFIC_HOME"
BUNDLED = "bundled"
"""The name of the model that ships with the package (what ``hific compress`` uses without ``--ckpt``)."""

JT_WEIGHTS_BYTES = 4 * (7_423_420 + 156_774_683 + 5_754_560 + 2 * 5_754_460)
"""The float32 bytes of a released model's codec (9 residual blocks: encoder, generator, h_a, two h_s;
DESIGN.md's parameter counts of the JT port): a smaller file cannot hold it (a quota page, a truncated copy)."""


@dataclass(frozen=True)
class RemoteModel:
    """A released model: the file's name, its mirrors in the order tried, and the size it has (when published)."""

    name: str
    description: str
    filename: str
    urls: tuple[str, ...]
    size: int | None = None
    min_size: int = JT_WEIGHTS_BYTES


def _drive(file_id: str) -> str:
    return f"https://drive.google.com/uc?export=download&id={file_id}"


ZENODO = "https://zenodo.org/record/4026003/files"
REMOTE_MODELS: dict[str, RemoteModel] = {
    "hific-low": RemoteModel(
        "hific-low",
        "the JT port's HIFIC-low (target 0.14 bpp)",
        "hific_low.pt",
        (f"{ZENODO}/hific_low.pt?download=1", _drive("1hfFTkZbs_VOBmXQ-M4bYEPejrD76lAY9")),
    ),
    "hific-med": RemoteModel(
        "hific-med",
        "the JT port's HIFIC-med (target 0.30 bpp, logistic likelihood)",
        "hific_med.pt",
        (f"{ZENODO}/hific_med.pt?download=1", _drive("1QNoX0AGKTBkthMJGPfQI0dT0_tnysYUb")),
    ),
    "hific-high": RemoteModel(
        "hific-high",
        "the JT port's HIFIC-high (target 0.45 bpp)",
        "hific_hi.pt",
        (f"{ZENODO}/hific_hi.pt?download=1", _drive("1BFYpvhVIA_Ek2QsHBbKnaBE8wn1GhFyA")),
    ),
}


@dataclass(frozen=True)
class ModelEntry:
    """A model that can be loaded by name: its checkpoint, model fingerprint (hex), and where it lives."""

    name: str
    path: Path
    fingerprint: str
    place: str  # "cache" or "bundled"


def model_home() -> Path:
    """The model cache: ``$HIFIC_HOME``, else ``~/.cache/hific``."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".cache" / "hific").expanduser()


def bundled_dir() -> Path:
    """The folder of the bundled model inside the package."""
    return Path(str(resources.files("hific_lit.pretrained").joinpath("bundled")))


def _entries(folder: Path, place: str) -> dict[str, ModelEntry]:
    entries = {}
    for info in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        ckpt = info.with_suffix(".ckpt")
        try:
            fingerprint = json.loads(info.read_text())["fingerprint"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a model's description (e.g. a training log): skipped
        if ckpt.is_file():
            entries[info.stem] = ModelEntry(info.stem, ckpt, fingerprint, place)
    return entries


def cached_models(home: Path | None = None) -> dict[str, ModelEntry]:
    """The models in the cache (``models/NAME.ckpt`` with its ``NAME.json``)."""
    return _entries((home or model_home()) / "models", "cache")


def bundled_models() -> dict[str, ModelEntry]:
    """The models that ship with the package."""
    return _entries(bundled_dir(), "bundled")


def known_models(home: Path | None = None) -> dict[str, ModelEntry]:
    """Every model loadable by name; a cached model hides a bundled one of the same name."""
    return bundled_models() | cached_models(home)


def resolve_model(name: str, home: Path | None = None) -> ModelEntry:
    """The model called ``name`` (cache, then package), else :class:`CheckpointError` saying how to get it."""
    found = known_models(home).get(name)
    if found is not None:
        return found
    if name in REMOTE_MODELS:
        raise CheckpointError(f"model {name!r} is not in the cache ({model_home()}): run `hific download {name}`")
    names = sorted(set(known_models(home)) | set(REMOTE_MODELS))
    raise CheckpointError(f"unknown model {name!r}; known: {', '.join(names)} (or give a checkpoint with --ckpt)")


def find_by_fingerprint(fingerprint: bytes, home: Path | None = None) -> ModelEntry | None:
    """The model whose fingerprint is ``fingerprint``: in the cache first, then in the package."""
    wanted = fingerprint.hex()
    for entries in (cached_models(home), bundled_models()):
        for entry in entries.values():
            if entry.fingerprint == wanted:
                return entry
    return None


def write_model_info(ckpt: Path, fingerprint: bytes, **details: object) -> Path:
    """Write ``NAME.json`` beside the checkpoint ``NAME.ckpt``: its fingerprint and ``details``; return its path."""
    from hific_lit.io.files import atomic_write_bytes

    info = ckpt.with_suffix(".json")
    payload = {"name": ckpt.stem, "fingerprint": fingerprint.hex(), **details}
    atomic_write_bytes(info, (json.dumps(payload, indent=2) + "\n").encode())
    return info
