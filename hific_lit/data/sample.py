"""``data=sample``: real photos that ship with scikit-image, so the demo and tests need no download.

Training uses seven colour photos of varied content and size; the astronaut (512x512) is held out
for validation and for the demo's compress/decompress round trip. ``extra_photos`` adds more
training photos by glob pattern (the demo adds the 15 photos of Debian's ``lomiri-wallpapers-16.04``).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from hific_lit.data.base import CropDataModule
from hific_lit.data.image_files import Transform, open_image
from hific_lit.data.sampler import SeededIndex, split_key
from hific_lit.data.transforms import grid_tiles
from hific_lit.errors import DatasetError
from hific_lit.io.images import load_image

SAMPLE_FILES = {
    "astronaut": "astronaut.png",
    "coffee": "coffee.png",
    "chelsea": "chelsea.png",
    "rocket": "rocket.jpg",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "retina": "retina.jpg",
    "motorcycle": "motorcycle_left.png",
    "immunohistochemistry": "ihc.png",
}
SAMPLE_TRAIN_PHOTOS = tuple(name for name in SAMPLE_FILES if name != "astronaut")
SAMPLE_VAL_PHOTO = "astronaut"


def sample_photo_path(name: str) -> Path:
    """Path of one of scikit-image's bundled photos (see ``SAMPLE_FILES``)."""
    import skimage.data

    if name not in SAMPLE_FILES:
        raise DatasetError(f"unknown sample photo {name!r}; choose from {', '.join(SAMPLE_FILES)}")
    path = Path(skimage.data.__file__).parent / SAMPLE_FILES[name]
    if not path.is_file():
        raise DatasetError(f"{path}: scikit-image's bundled photo is missing; reinstall scikit-image")
    return path


def load_sample_photo(name: str = SAMPLE_VAL_PHOTO) -> torch.Tensor:
    """A bundled photo as a (1, 3, H, W) float tensor in [0, 1] (default: the held-out astronaut)."""
    return load_image(sample_photo_path(name))[None]


class TensorListDataset(Dataset):
    """A fixed list of (3, crop, crop) tensors."""

    def __init__(self, items: list[torch.Tensor]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.items[index]


class PhotoDataset(Dataset):
    """Photos decoded once and held in memory; item ``i`` is a fresh random crop of photo ``i mod len``, drawn from
    the key's own generator when the key is a :class:`~hific_lit.data.sampler.SeededIndex`.

    Photos whose shorter side exceeds ``max_short_side`` are downscaled once at load (antialiased), so
    that a 4000x3000 wallpaper yields crops at about the scale of the held-out photo.
    """

    def __init__(
        self, paths: Sequence[Path], transform: Transform, length: int, max_short_side: int | None = None
    ) -> None:
        if not paths:
            raise DatasetError("a photo dataset needs at least one file")
        self.paths = list(paths)
        self.transform = transform
        self.length = length
        self.photos = [shrink(upright(open_image(path)), max_short_side) for path in self.paths]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: int | SeededIndex) -> torch.Tensor:
        index, generator = split_key(key)
        return self.transform(self.photos[index % len(self.photos)], generator=generator)


def upright(image: Image.Image) -> Image.Image:
    """RGB with the EXIF orientation applied (and removed, so that it is not applied twice)."""
    return (ImageOps.exif_transpose(image) or image).convert("RGB")


def shrink(image: Image.Image, max_short_side: int | None) -> Image.Image:
    """``image`` downscaled (Lanczos) so that its shorter side is at most ``max_short_side``."""
    short = min(image.size)
    if max_short_side is None or short <= max_short_side:
        return image
    size = tuple(max(1, round(side * max_short_side / short)) for side in image.size)
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def expand_photos(patterns: Sequence[str]) -> list[Path]:
    """The files matching each glob pattern, sorted; a pattern that matches nothing is an error."""
    paths = []
    for pattern in patterns:
        found = sorted(Path(p) for p in glob.glob(os.path.expanduser(pattern)) if Path(p).is_file())
        if not found:
            raise DatasetError(
                f"data.extra_photos: {pattern!r} matches no file (the demo's photos come with the Debian "
                "package lomiri-wallpapers-16.04: `sudo apt-get install lomiri-wallpapers-16.04`, as `make demo` does)"
            )
        paths += found
    return paths


class SampleDataModule(CropDataModule):
    """Random crops of scikit-image's photos (and any ``extra_photos``); validation on fixed tiles of a held-out photo.

    Args:
        num_workers: loader processes; batches are ``(B, 3, crop, crop)`` in [0, 1].
        samples_per_epoch: training crops per epoch, drawn from the training photos in turn.
        val_tiles: how many non-overlapping ``crop x crop`` tiles of the held-out photo form the
            validation set (raster order from the top left).
        val_photo: the held-out photo; it never appears in training.
        extra_photos: glob patterns of further training photos (``~`` expanded, not recursive).
        max_short_side: photos with a longer shorter side are downscaled to it once, at load.
        crops: ``batch_size`` (the global batch: each rank loads ``batch_size / world_size``), ``crop_size``,
            ``scale_range``, ``interpolation``, ``flip``, ``hue_rotation``, as
            :class:`~hific_lit.data.base.CropDataModule` takes them (default: the authors').
    """

    def __init__(
        self,
        num_workers: int = 0,
        samples_per_epoch: int = 64,
        val_tiles: int = 4,
        val_photo: str = SAMPLE_VAL_PHOTO,
        extra_photos: Sequence[str] = (),
        max_short_side: int | None = None,
        **crops: Any,
    ) -> None:
        super().__init__(num_workers=num_workers, **crops)
        self.samples_per_epoch = samples_per_epoch
        self.val_tiles = val_tiles
        self.val_photo = val_photo
        self.extra_photos = list(extra_photos)
        self.max_short_side = max_short_side

    def check_source(self) -> None:
        """Every ``extra_photos`` pattern must match a file (checked before any model is built)."""
        expand_photos(self.extra_photos)

    def setup(self, stage: str | None = None) -> None:
        names = [name for name in SAMPLE_TRAIN_PHOTOS if name != self.val_photo]
        paths = [sample_photo_path(n) for n in names] + expand_photos(self.extra_photos)
        self.train_set = PhotoDataset(paths, self.train_transform, self.samples_per_epoch, self.max_short_side)
        tiles = grid_tiles(load_sample_photo(self.val_photo)[0], self.crop_size, self.val_tiles)
        self.val_set = TensorListDataset(tiles)
