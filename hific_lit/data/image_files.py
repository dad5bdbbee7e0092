"""Finding image files in a directory tree and reading them as crops (a map-style dataset).

Images are opened with :func:`hific_lit.io.images.open_image`, the one opener of the package.
"""

from __future__ import annotations

import multiprocessing
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from hific_lit.data.sampler import SeededIndex, split_key
from hific_lit.errors import DatasetError, ImageReadError
from hific_lit.io.images import IMAGE_SUFFIXES, open_image

Transform = Callable[[Image.Image], torch.Tensor]


class SkipCounter:
    """Handler for unreadable samples: warn, count in shared memory, continue.

    The count lives in a ``multiprocessing.Value`` so that skips made in DataLoader worker processes
    show up in :attr:`value` of the main process.
    """

    def __init__(self) -> None:
        self._count = multiprocessing.get_context().Value("q", 0)

    def __call__(self, exc: BaseException) -> bool:
        with self._count.get_lock():
            self._count.value += 1
        warnings.warn(f"skipping unreadable sample: {exc}", RuntimeWarning, stacklevel=2)
        return True

    @property
    def value(self) -> int:
        """Samples skipped so far, in every process sharing this counter."""
        return int(self._count.value)


def list_images(root: str | Path) -> list[Path]:
    """Every image file (by suffix, case-insensitive) under ``root``, recursively, in sorted order;
    hidden files and folders and macOS' ``__MACOSX`` metadata are left out."""
    root = Path(root).expanduser()
    return sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and p.is_file()
        and not any(part.startswith((".", "__MACOSX")) for part in p.relative_to(root).parts)
    )


def find_images(root: str | Path) -> list[Path]:
    """:func:`list_images`, raising :class:`DatasetError` when ``root`` is not a directory or holds no image."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory of images")
    paths = list_images(root)
    if not paths:
        raise DatasetError(f"{root}: no image files found (looked for {', '.join(IMAGE_SUFFIXES)})")
    return paths


class ImageFileDataset(Dataset):
    """Image files decoded with :func:`~hific_lit.io.images.open_image` and passed through ``transform``.

    Args:
        paths: the image files.
        transform: maps a PIL image to a (3, crop, crop) float tensor (see ``hific_lit.data.transforms``).
        length: items per epoch (default ``len(paths)``). When at least ``len(paths)``, index ``i``
            reads ``paths[i % len(paths)]``, so a few photos fill a long epoch of fresh random crops;
            when smaller, every item is a file drawn uniformly at random, so that short epochs still
            sample the whole folder.

    An unreadable file is skipped with a warning and counted in ``skips`` (shared with DataLoader
    workers): the next readable file in the list takes its place. A :class:`~hific_lit.data.sampler.SeededIndex`
    key draws the item's random numbers (file, crop) from its own generator, and ``transform`` gets it as
    ``generator=``; an integer key uses torch's global generator.
    """

    def __init__(
        self, paths: Sequence[Path], transform: Transform, length: int | None = None, skips: SkipCounter | None = None
    ) -> None:
        if not paths:
            raise DatasetError("an image dataset needs at least one file")
        self.paths = list(paths)
        self.transform = transform
        self.length = len(self.paths) if length is None else int(length)
        self.skips = skips if skips is not None else SkipCounter()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: int | SeededIndex) -> torch.Tensor:
        index, generator = split_key(key)
        if self.length < len(self.paths):
            index = int(torch.randint(len(self.paths), (), generator=generator))
        for offset in range(len(self.paths)):
            path = self.paths[(index + offset) % len(self.paths)]
            try:
                image = open_image(path)
            except ImageReadError as exc:
                self.skips(exc)
                continue
            return self.transform(image) if generator is None else self.transform(image, generator=generator)
        raise DatasetError(f"none of the {len(self.paths)} images (first: {self.paths[0]}) is readable")
