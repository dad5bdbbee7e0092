"""The evaluation sets: Kodak (24 images) and CLIC 2020 (test: 428 images; professional validation: 41).

``hific download kodak clic2020 --root data`` downloads them from the official
URLs in ``eval_sets.json`` (resumable, verified) into ``data/kodak`` and ``data/clic2020``. Offline,
it fails with a message naming each URL and the folder to put the files in by hand.

Checksums: ``eval_sets.json`` lists every digest (sha256, sha1, md5) published for a file, and all of
them are verified. Files with no published digest are pinned on first download: their SHA-256 goes
into ``SHA256SUMS`` in the set's folder, and later runs verify against it.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from hific_lit.data.download import fetch, file_digests, verify_digests
from hific_lit.data.image_files import list_images
from hific_lit.errors import DatasetError
from hific_lit.io.files import atomic_write_bytes

LOCK_NAME = "SHA256SUMS"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a set: its name on disk, official URL, published digests, and whether it is a zip to unpack."""

    name: str
    url: str
    digests: dict[str, str] = field(default_factory=dict)
    extract: bool = False


@dataclass(frozen=True)
class EvalSet:
    """A named evaluation set: its files and how many images it holds."""

    description: str
    images: int
    files: tuple[RemoteFile, ...]


def load_registry() -> dict[str, EvalSet]:
    """The sets described in ``hific_lit/data/eval_sets.json``."""
    raw = json.loads(resources.files("hific_lit.data").joinpath("eval_sets.json").read_text())
    return {
        name: EvalSet(spec["description"], spec["images"], tuple(RemoteFile(**f) for f in spec["files"]))
        for name, spec in raw.items()
        if not name.startswith("_")
    }


REGISTRY = load_registry()


def _lookup(name: str) -> EvalSet:
    if name not in REGISTRY:
        raise DatasetError(f"unknown evaluation set {name!r}; choose from {', '.join(REGISTRY)}")
    return REGISTRY[name]


def _read_lock(folder: Path) -> dict[str, str]:
    lock = folder / LOCK_NAME
    if not lock.is_file():
        return {}
    pairs = (line.split(maxsplit=1) for line in lock.read_text().splitlines() if line.strip())
    return {name.strip().lstrip("*"): digest for digest, name in pairs}


def _write_lock(folder: Path, pins: dict[str, str]) -> None:
    text = "".join(f"{digest}  {name}\n" for name, digest in sorted(pins.items()))
    atomic_write_bytes(folder / LOCK_NAME, text.encode())


def _extract(archive: Path, folder: Path) -> None:
    """Unpack ``archive`` into ``folder/<archive stem>`` (through a temporary folder, renamed when done)."""
    target = folder / archive.stem
    if target.is_dir():
        return
    tmp = folder / f".{archive.stem}.extracting"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.namelist() if "__MACOSX" not in m and not Path(m).name.startswith("._")]
            zf.extractall(tmp, members)
    except (zipfile.BadZipFile, OSError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DatasetError(f"{archive}: not a readable zip archive ({exc}); delete it and run again") from None
    os.replace(tmp, target)


def download_eval_set(name: str, root: str | os.PathLike, progress: bool = True) -> Path:
    """Download (or resume, or just verify) the set ``name`` into ``root/name``; return that folder.

    Files already present are verified, not downloaded again; zips are unpacked next to themselves.
    Raises :class:`DatasetError` when offline (naming each URL and the folder for manual copies) or
    when a checksum does not match.
    """
    spec = _lookup(name)
    folder = Path(root).expanduser() / name
    folder.mkdir(parents=True, exist_ok=True)
    pins = _read_lock(folder)
    for remote in spec.files:
        path = folder / remote.name
        if not path.is_file():
            fetch(remote.url, path, progress=progress)
        expected = dict(remote.digests)
        if "sha256" not in expected and remote.name in pins:
            expected["sha256"] = pins[remote.name]
        pins[remote.name] = verify_digests(path, expected)["sha256"]
        if remote.extract:
            _extract(path, folder)
    _write_lock(folder, pins)
    return folder


def eval_set_images(name: str, root: str | os.PathLike) -> list[Path]:
    """The image files of set ``name`` under ``root/name`` (or directly under ``root``), sorted.

    Images that were downloaded as single files are checked against their published or pinned
    SHA-256. Raises :class:`DatasetError` when the set is missing (naming the download command, the
    URLs and the folder to put files in) or has fewer images than it should.
    """
    spec = _lookup(name)
    root = Path(root).expanduser()
    folder = root / name if (root / name).is_dir() else root
    images = list_images(folder) if folder.is_dir() else []
    if not images:
        urls = " ".join(f.url for f in spec.files[:2]) + (" ..." if len(spec.files) > 2 else "")
        raise DatasetError(
            f"{name} not found under {root}: run `hific download {name} --root {root}` "
            f"(downloads {urls}), or put the files into {root / name} by hand"
        )
    if len(images) < spec.images:
        raise DatasetError(
            f"{name} under {folder} is incomplete: {len(images)} of {spec.images} images; "
            f"run `hific download {name} --root {root}` to complete and verify it"
        )
    if len(images) > spec.images:
        warnings.warn(f"{name} under {folder}: {len(images)} images, expected {spec.images}", stacklevel=2)
    _verify_single_files(spec, folder)
    return images


def _verify_single_files(spec: EvalSet, folder: Path) -> None:
    pins = _read_lock(folder)
    for remote in spec.files:
        path = folder / remote.name
        expected = dict(remote.digests) or ({"sha256": pins[remote.name]} if remote.name in pins else {})
        if remote.extract or not expected or not path.is_file():
            continue
        actual = file_digests(path, tuple(expected))
        if actual != {k: v.lower() for k, v in expected.items()}:
            raise DatasetError(f"{path}: checksum does not match the published or pinned value; download it again")
