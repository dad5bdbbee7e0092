"""Finding image files in a directory tree and reading them as training crops (a map-style dataset)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from hific_lit.errors import DatasetError, ImageReadError
from hific_lit.image_io import IMAGE_SUFFIXES, load_image


def find_images(root: str | Path) -> list[Path]:
    """Every image file (by suffix, case-insensitive) under ``root``, recursively, in sorted order.

    Raises :class:`DatasetError` when ``root`` is not a directory or holds no image.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory of images")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise DatasetError(f"{root}: no image files found (looked for {', '.join(IMAGE_SUFFIXES)})")
    return paths


class ImageFileDataset(Dataset):
    """Image files read with :func:`load_image` and passed through ``transform``.

    Args:
        paths: the image files.
        transform: maps a (3, H, W) float image to a (3, crop, crop) tensor.
        length: items per epoch; index ``i`` reads ``paths[i % len(paths)]``, so a few photos can fill
            a long epoch of fresh random crops. Defaults to ``len(paths)``.

    An unreadable file is skipped with a warning: the next readable file in the list takes its place.
    """

    def __init__(
        self, paths: Sequence[Path], transform: Callable[[torch.Tensor], torch.Tensor], length: int | None = None
    ) -> None:
        if not paths:
            raise DatasetError("an image dataset needs at least one file")
        self.paths = list(paths)
        self.transform = transform
        self.length = len(self.paths) if length is None else int(length)
        self.skipped = 0

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        for offset in range(len(self.paths)):
            path = self.paths[(index + offset) % len(self.paths)]
            try:
                image = load_image(path)
            except ImageReadError as exc:
                self.skipped += 1
                warnings.warn(f"skipping unreadable image: {exc}", RuntimeWarning, stacklevel=2)
                continue
            return self.transform(image)
        raise DatasetError(f"none of the {len(self.paths)} images (first: {self.paths[0]}) is readable")
