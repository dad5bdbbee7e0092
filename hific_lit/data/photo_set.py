"""Varied real photos from Debian's packages: the bundled model's training set and its held-out set.

Which files count (the rule, applied by :func:`scan` when ``scripts/photos.py --write-manifest`` rebuilds the
manifest): a *photograph of a real scene*. Each package's photo folders are listed in :data:`SOURCES`; what in
them is not a photograph (a render, vector art, a painting, a composite) was judged by eye once and is left out
by name with its reason (:attr:`PhotoSource.leave_out`), or the package is not listed at all (GNOME's,
UKUI's and sway's backgrounds, desktop-base: all renders). A guard backs the list up: a file whose share of
flat 8x8 blocks (luma standard deviation below one level, at a short side of 256 px) reaches
:data:`FLAT_LIMIT` is a flat render and is refused whatever the list says (the photos here: at most 0.69, a
portrait with a blurred background; flat renders: 0.80-1.0).

Roles: ``train`` photos train the bundled model; ``heldout`` photos (Debian's ``mate-backgrounds``, its
``nature/`` folder) are never trained or validated on: they measure the result (``scripts/bench_bundled.py``).
Validation uses scikit-image's photos (:data:`VALIDATION_PHOTOS`), in no package here.

The manifest (``photos.tsv`` beside this module, committed) records each photo's SHA-256, role, package,
package version and path inside the package; the photos themselves are not committed. ``scripts/photos.py``
(``make photos``) fetches the packages with apt (``apt-get download``, no root) and unpacks each under
``<data>/photos/root/<package>`` (and the Qt resource archives that hold GCompris's photos, :func:`unpack_archives`);
a system-wide install (``apt-get install``) serves the other packages as well: :func:`photo_paths` looks in both
places and checks every file's SHA-256.
"""

from __future__ import annotations

import csv
import glob
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from hific_lit.data.qt_resources import resource_files
from hific_lit.errors import DatasetError

ROLES = ("train", "heldout")
MANIFEST_NAME = "photos.tsv"
MANIFEST_FIELDS = ("sha256", "role", "package", "version", "path")
FLAT_LIMIT = 0.75
"""Share of flat 8x8 blocks from which a file counts as a flat render (see the module docstring)."""
MIN_SHORT_SIDE = 256
"""A picture whose short side is shorter (an icon, a thumbnail) is not a photo to train on."""
VALIDATION_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle")
"""scikit-image's colour photos of real scenes that validation uses (not its microscopy, retina or deep field)."""
FETCH_HINT = "run `make photos` (or `python scripts/photos.py --fetch`)"


@dataclass(frozen=True)
class PhotoSource:
    """The photos of one Debian package: glob patterns inside the package, minus what is not a photograph.

    ``largest_per_folder``: the package ships each picture at several sizes, one folder per picture (KDE's
    wallpapers); only the largest file of each folder is taken. ``only``: take just these folder or file
    names (when a package holds more renders than photos). ``archives``: Qt resource archives in the package
    (GCompris keeps its pictures in ``.rcc`` files); :func:`unpack_archives` writes each one's files under
    ``<archive>.d/`` beside it, where the patterns find them.
    """

    package: str
    role: str
    patterns: tuple[str, ...]
    leave_out: dict[str, str] = field(default_factory=dict)
    only: tuple[str, ...] = ()
    largest_per_folder: bool = False
    archives: tuple[str, ...] = ()


PLASMA_PHOTOS = (
    "BytheWater",
    "ColdRipple",
    "ColorfulCups",
    "DarkestHour",
    "EveningGlow",
    "FallenLeaf",
    "Grey",
    "Kite",
    "OneStandsOut",
    "Path",
    "summer_1am",
)
"""KDE Plasma 5.27's photographs; its other 19 wallpapers are renders or drawings (Autumn is a painting)."""

GCOMPRIS_RCC = "usr/share/gcompris-qt/rcc/*.rcc"
GCOMPRIS_PHOTOS = {
    "erase": "erase/resource/*.webp",
    "explore_farm_animals": "explore_farm_animals/resource/animals/*.webp",
    "explore_world_animals": "explore_world_animals/resource/animals/*.webp",
    "explore_monuments": "explore_monuments/resource/*/*.webp",
    "explore_world_music": "explore_world_music/resource/music/*.webp",
    "clickgame": "clickgame/resource/sea*.webp",
}
"""GCompris's photographs, by activity archive: wild and farm animals (mostly among plants), monuments and
landscapes of five countries and the world's wonders, musicians, the sea floor. Its other pictures are drawings,
icons and maps, or small objects on white."""

SOURCES = (
    PhotoSource("endless-sky-data", "train", ("usr/share/games/endless-sky/images/land/*.jpg",)),
    PhotoSource("lomiri-wallpapers-16.04", "train", ("usr/share/backgrounds/*.jpg",)),
    PhotoSource(
        "lomiri-wallpapers-20.04",
        "train",
        ("usr/share/backgrounds/*.jpg",),
        leave_out={"Fossa_by_Jasper_Roks.jpg": "vector art", "Painting-Colors_by__herobrine7gamer.jpg": "a render"},
    ),
    PhotoSource(
        "plasma-workspace-wallpapers",
        "train",
        ("usr/share/wallpapers/*/contents/images/*.jpg", "usr/share/wallpapers/*/contents/images/*.png"),
        only=PLASMA_PHOTOS,
        largest_per_folder=True,
    ),
    PhotoSource("palapeli-data", "train", ("usr/share/palapeli/collection/*.jpg",)),
    PhotoSource("kphotoalbum", "train", ("usr/share/kphotoalbum/demo/*.jpg",)),
    PhotoSource("python-matplotlib-data", "train", ("usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg",)),
    PhotoSource(
        "gcompris-qt-data",
        "train",
        tuple(f"{GCOMPRIS_RCC}.d/gcompris/src/activities/{folder}" for folder in GCOMPRIS_PHOTOS.values()),
        archives=tuple(GCOMPRIS_RCC.replace("*", name) for name in GCOMPRIS_PHOTOS),
    ),
    PhotoSource("mate-backgrounds", "heldout", ("usr/share/backgrounds/mate/nature/*.jpg",)),
)


@dataclass(frozen=True)
class ManifestEntry:
    """One photo: its SHA-256, role, package (and version) and path inside the package."""

    sha256: str
    role: str
    package: str
    version: str
    path: str

    @property
    def name(self) -> str:
        """The file's name without its folder and suffix (e.g. ``GreenMeadow``)."""
        return Path(self.path).stem


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def flat_fraction(image: Image.Image, short_side: int = 256, level: float = 1.0) -> float:
    """Share of 8x8 blocks whose luma standard deviation is below ``level`` (8-bit), at a short side of 256 px."""
    image = image.convert("RGB")
    scale = short_side / min(image.size)
    if scale < 1:
        size = (max(8, round(image.width * scale)), max(8, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BOX)
    luma = np.asarray(image, dtype=np.float64) @ np.array([0.299, 0.587, 0.114])
    height, width = luma.shape[0] // 8 * 8, luma.shape[1] // 8 * 8
    blocks = luma[:height, :width].reshape(height // 8, 8, width // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 64)
    return float(np.mean(blocks.std(axis=1) < level))


def green_share(image: Image.Image, margin: int = 15) -> float:
    """Share of pixels whose green exceeds both red and blue by more than ``margin`` levels (foliage, grass), on a
    128x128 thumbnail: how much of a photo is the green that the held-out set is full of (docs/bundled.md)."""
    pixels = np.asarray(image.convert("RGB").resize((128, 128), Image.Resampling.BOX), dtype=np.int16)
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return float(np.mean((green > red + margin) & (green > blue + margin)))


def _candidates(source: PhotoSource, root: Path) -> list[Path]:
    files = sorted({Path(p) for pattern in source.patterns for p in glob.glob(str(root / pattern))})
    if source.largest_per_folder:
        by_folder: dict[str, Path] = {}
        for path in files:
            folder = path.parents[2].name  # <name>/contents/images/<size>.<ext>
            if folder not in by_folder or path.stat().st_size > by_folder[folder].stat().st_size:
                by_folder[folder] = path
        files = [by_folder[name] for name in sorted(by_folder)]
    if source.only:
        files = [p for p in files if p.name in source.only or p.parents[2].name in source.only]
    return [p for p in files if p.name not in source.leave_out]


def unpack_archives(source: PhotoSource, root: Path) -> int:
    """Write the files of ``source``'s Qt resource archives under ``<archive>.d/`` in ``root``; return how many."""
    count = 0
    for archive in source.archives:
        for resource, data in resource_files(root / archive):
            target = root / f"{archive}.d" / resource
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".part")
            partial.write_bytes(data)
            partial.replace(target)
            count += 1
    return count


def scan(roots: dict[str, Path], versions: dict[str, str]) -> tuple[list[ManifestEntry], list[str]]:
    """The manifest entries of every source whose package is unpacked at ``roots[package]`` (a folder of its own).

    Returns the entries and one line per file refused by the flat-render guard.
    """
    entries, refused = [], []
    for source in SOURCES:
        root = roots.get(source.package)
        if root is None:
            continue
        for path in _candidates(source, root):
            with Image.open(path) as image:
                flat = flat_fraction(image)
                short_side = min(image.size)
            relative = path.relative_to(root).as_posix()
            if short_side < MIN_SHORT_SIDE:
                refused.append(
                    f"{source.package}: {relative}: {short_side} px on its short side (under {MIN_SHORT_SIDE})"
                )
                continue
            if flat >= FLAT_LIMIT:
                refused.append(f"{source.package}: {relative}: {flat:.2f} of its blocks are flat (a render)")
                continue
            entries.append(
                ManifestEntry(sha256_of(path), source.role, source.package, versions[source.package], relative)
            )
    return entries, refused


def manifest_path() -> Path:
    """The committed manifest, ``hific_lit/data/photos.tsv``."""
    return Path(str(resources.files("hific_lit.data").joinpath(MANIFEST_NAME)))


def read_manifest(path: Path | None = None) -> list[ManifestEntry]:
    """The manifest's entries (tab-separated, a header line, ``#`` comments)."""
    with open(path or manifest_path(), newline="") as f:
        rows = csv.DictReader((line for line in f if not line.startswith("#")), delimiter="\t")
        return [ManifestEntry(**{k: row[k] for k in MANIFEST_FIELDS}) for row in rows]


def write_manifest(entries: Iterable[ManifestEntry], path: Path, header: str) -> None:
    """Write ``entries`` as the manifest at ``path``, after ``header`` (comment lines)."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    lines.append("\t".join(MANIFEST_FIELDS))
    lines += ["\t".join(getattr(e, k) for k in MANIFEST_FIELDS) for e in entries]
    path.write_text("\n".join(lines) + "\n")


def packages(role: str | None = None, entries: Sequence[ManifestEntry] | None = None) -> dict[str, str]:
    """Package -> version of the manifest's photos (of ``role`` when given)."""
    rows = read_manifest() if entries is None else entries
    return {e.package: e.version for e in rows if role is None or e.role == role}


def default_folder() -> Path:
    """Where ``scripts/photos.py`` keeps the packages: ``<$HIFIC_DATA or ./data>/photos``."""
    from hific_lit.config import default_data_dir

    return default_data_dir() / "photos"


def package_root(folder: Path, package: str) -> Path:
    """Where ``package`` is unpacked: ``<folder>/root/<package>``."""
    return folder / "root" / package


def photo_paths(role: str, folder: Path | None = None, verify: bool = True) -> list[Path]:
    """The files of the manifest's photos of ``role`` (:func:`photo_entries` without the entries)."""
    return [path for _, path in photo_entries(role, folder, verify)]


def photo_entries(role: str, folder: Path | None = None, verify: bool = True) -> list[tuple[ManifestEntry, Path]]:
    """The manifest's photos of ``role`` and their files, each checked against its SHA-256.

    Each is looked for in its unpacked package (:func:`package_root` under ``folder``, default
    :func:`default_folder`), then where ``apt-get install`` puts it. Raises :class:`DatasetError` naming the
    command that fetches them when any is missing or differs.
    """
    if role not in ROLES:
        raise DatasetError(f"unknown photo role {role!r}; choose from {', '.join(ROLES)}")
    folder = folder or default_folder()
    entries = [e for e in read_manifest() if e.role == role]
    found, missing, changed = [], [], []
    for entry in entries:
        places = (package_root(folder, entry.package) / entry.path, Path("/") / entry.path)
        path = next((p for p in places if p.is_file()), None)
        if path is None:
            missing.append(entry)
        elif verify and sha256_of(path) != entry.sha256:
            changed.append(path)
        else:
            found.append((entry, path))
    if missing:
        names = ", ".join(sorted({e.package for e in missing}))
        raise DatasetError(
            f"{len(missing)} of the {len(entries)} {role} photos are missing (packages {names}; looked under "
            f"{folder / 'root'} and /): {FETCH_HINT}"
        )
    if changed:
        raise DatasetError(
            f"{len(changed)} {role} photos differ from the manifest's SHA-256 (e.g. {changed[0]}): another version "
            f"of their package; {FETCH_HINT} to unpack the manifest's versions"
        )
    return found
