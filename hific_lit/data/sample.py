"""``data=sample``: real photos that ship with scikit-image, so the demo and tests need no download.

Training uses seven colour photos of varied content and size; the astronaut (512x512) is held out
for validation and for the demo's compress/decompress round trip.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from hific_lit.data.base import CropDataModule
from hific_lit.data.image_files import ImageFileDataset
from hific_lit.data.transforms import PAPER_SCALE_RANGE, grid_tiles
from hific_lit.errors import DatasetError
from hific_lit.image_io import load_image

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


class SampleDataModule(CropDataModule):
    """Random paper-style crops of scikit-image's photos; validation on fixed tiles of a held-out photo.

    Args:
        batch_size: the global batch (all ranks together); each rank loads ``batch_size / world_size``.
        crop_size, num_workers: loader settings; batches are ``(B, 3, crop, crop)`` in [0, 1].
        samples_per_epoch: training crops per epoch, drawn from the seven training photos in turn.
        val_tiles: how many non-overlapping ``crop x crop`` tiles of the held-out photo form the
            validation set (raster order from the top left).
        scale_range, interpolation, flip: the training crops (:class:`~hific_lit.data.transforms.RandomScaleCrop`);
            the defaults are the authors' (scale 0.75..0.95, bilinear without antialiasing, no flip).
        val_photo: the held-out photo; it never appears in training.
    """

    def __init__(
        self,
        batch_size: int = 8,
        crop_size: int = 256,
        num_workers: int = 0,
        samples_per_epoch: int = 64,
        val_tiles: int = 4,
        scale_range: tuple[float, float] = PAPER_SCALE_RANGE,
        interpolation: str = "bilinear",
        flip: bool = False,
        val_photo: str = SAMPLE_VAL_PHOTO,
    ) -> None:
        super().__init__(batch_size, crop_size, num_workers, scale_range, interpolation, flip)
        self.samples_per_epoch = samples_per_epoch
        self.val_tiles = val_tiles
        self.val_photo = val_photo

    def setup(self, stage: str | None = None) -> None:
        names = [name for name in SAMPLE_TRAIN_PHOTOS if name != self.val_photo]
        self.train_set = ImageFileDataset(
            [sample_photo_path(n) for n in names], self.train_transform, self.samples_per_epoch
        )
        tiles = grid_tiles(load_sample_photo(self.val_photo)[0], self.crop_size, self.val_tiles)
        self.val_set = TensorListDataset(tiles)
