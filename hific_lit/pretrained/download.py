"""``hific download hific-low|hific-med|hific-high``: a released model, fetched, checked, imported and cached.

Each mirror of :data:`~hific_lit.pretrained.registry.REMOTE_MODELS` is tried in turn through the one
downloader (:func:`hific_lit.data.download.fetch`: resumable, web pages and wrong sizes refused) into
``$HIFIC_HOME/downloads``. The complete file must be large enough to hold the model's weights and be a torch
file (a zip archive, or a legacy pickle); it is then imported (:func:`hific_lit.pretrained.jt.import_jt`, which
reads it with ``weights_only=True``) into ``$HIFIC_HOME/models/NAME.ckpt``, its fingerprint recorded beside it,
and the downloaded file removed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hific_lit.data.download import fetch
from hific_lit.errors import CheckpointError
from hific_lit.pretrained.registry import REMOTE_MODELS, RemoteModel, cached_models, model_home, write_model_info

TORCH_FILE_STARTS = (b"PK\x03\x04", b"\x80")
"""A ``torch.save`` file is a zip archive (torch >= 1.6) or, in the legacy format, a pickle (protocol 2+)."""


@dataclass(frozen=True)
class Downloaded:
    """What :func:`download_model` did: the cached checkpoint, where the file came from, and whether it was there."""

    name: str
    path: Path
    source: str
    already_cached: bool = False


def _check_file(path: Path, spec: RemoteModel, source: str) -> None:
    """A complete download that cannot be the model is moved aside and refused, with what to do."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4)
    problem = None
    if size < spec.min_size:
        problem = f"{size} bytes cannot hold the model's weights ({spec.min_size} bytes at least)"
    elif not head.startswith(TORCH_FILE_STARTS):
        problem = f"not a torch checkpoint (it starts with {head!r})"
    if problem:
        aside = path.with_name(path.name + ".corrupt")
        os.replace(path, aside)
        raise CheckpointError(
            f"{source} gave a file that is not {spec.filename}: {problem}; moved it to {aside}; "
            f"download {spec.urls[0]} by hand to {path} and run `hific download {spec.name}` again"
        )


def _fetch_any(spec: RemoteModel, target: Path, progress: bool) -> str:
    """Fetch ``spec``'s file to ``target`` from its first mirror that gives it; return that URL."""
    if target.is_file():
        return str(target)
    failures = []
    for url in spec.urls:
        try:
            fetch(url, target, progress=progress, expected_size=spec.size, error=CheckpointError)
            return url
        except CheckpointError as exc:
            failures.append(str(exc).split(";")[0])
            if target.with_name(target.name + ".part").is_file():
                break  # a cut download: resume it from the same mirror next time rather than mixing mirrors
    raise CheckpointError(
        f"could not download {spec.name} ({' | '.join(failures)}); run `hific download {spec.name}` again to resume, "
        f"or download {spec.urls[0]} by hand to {target} and run it again"
    )


def download_model(name: str, home: Path | None = None, progress: bool = True) -> Downloaded:
    """Download, check and import the released model ``name`` into the model cache (once)."""
    from hific_lit.io.checkpoint import load_inference_checkpoint
    from hific_lit.pretrained.jt import import_jt

    spec = REMOTE_MODELS.get(name)
    if spec is None:
        raise CheckpointError(f"no released model called {name!r}; choose from {', '.join(REMOTE_MODELS)}")
    home = home or model_home()
    cached = cached_models(home).get(name)
    if cached is not None:
        return Downloaded(name, cached.path, str(cached.path), already_cached=True)
    target = home / "downloads" / spec.filename
    source = _fetch_any(spec, target, progress)
    _check_file(target, spec, source)
    ckpt = home / "models" / f"{name}.ckpt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    try:
        import_jt(target, ckpt, keep_discriminator=False)
    except CheckpointError as exc:
        aside = target.with_name(target.name + ".corrupt")
        os.replace(target, aside)
        raise CheckpointError(f"{exc} (moved it to {aside}; run `hific download {name}` again)") from None
    fingerprint = load_inference_checkpoint(ckpt).fingerprint()
    write_model_info(ckpt, fingerprint, source=source, file=spec.filename, description=spec.description)
    target.unlink()
    return Downloaded(name, ckpt, source)
