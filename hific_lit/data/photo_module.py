"""``data=photos``: the bundled model's data, Debian's photos for training and several held-out photos for validation.

Training crops come from the manifest's ``train`` photos (:mod:`hific_lit.data.photo_set`, 452 photos of
landscapes, cities, sea, snow, people, animals, plants and objects; ``make photos`` fetches them), each
downscaled once so that its shorter side is at most ``max_short_side``. Validation is scikit-image's
:data:`~hific_lit.data.photo_set.VALIDATION_PHOTOS` (never trained on): each photo's grid of ``crop x crop``
tiles is one validation batch, so that :class:`~hific_lit.training.callbacks.PhotoMetrics` reports PSNR and colour
error per photo (:attr:`PhotoSetDataModule.val_names`). The manifest's ``heldout`` photos are used by neither.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from hific_lit.data.base import CropDataModule
from hific_lit.data.photo_set import VALIDATION_PHOTOS, photo_entries
from hific_lit.data.sample import PhotoDataset, TensorListDataset, expand_photos, load_sample_photo
from hific_lit.data.sampler import SeededIndex, split_key
from hific_lit.data.transforms import grid_tiles


class GroupBatches(Sampler[list[int]]):
    """Batches of consecutive indices of the given sizes: one batch per group (per validation photo)."""

    def __init__(self, sizes: Sequence[int]) -> None:
        self.sizes = list(sizes)

    def __iter__(self) -> Iterator[list[int]]:
        start = 0
        for size in self.sizes:
            yield list(range(start, start + size))
            start += size

    def __len__(self) -> int:
        return len(self.sizes)


class RepeatedPhotos(Dataset):
    """Item ``i`` is a fresh crop of photo ``order[i mod len(order)]`` of ``photos`` (a photo repeated in ``order``
    is drawn that many times more often; each is decoded once), drawn from the key's own generator when the key
    is a :class:`~hific_lit.data.sampler.SeededIndex`."""

    def __init__(self, photos: PhotoDataset, order: list[int], length: int) -> None:
        self.photos, self.order, self.length = photos, order, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: int | SeededIndex) -> torch.Tensor:
        index, generator = split_key(key)
        photo = self.photos.photos[self.order[index % len(self.order)]]
        return self.photos.transform(photo, generator=generator)


class PhotoSetDataModule(CropDataModule):
    """Random crops of the manifest's training photos; validation on tiles of several held-out photos.

    Args:
        num_workers: loader processes.
        samples_per_epoch: training crops per epoch, drawn from the photos in turn (at least one per photo).
        val_photos: scikit-image photos to validate on, each a batch of its tiles.
        val_tiles: at most this many tiles per validation photo (raster order).
        max_short_side: photos with a longer shorter side are downscaled to it once, at load.
        photo_folder: where ``scripts/photos.py`` unpacked the packages (default ``<data>/photos``).
        extra_photos: glob patterns of further training photos.
        package_repeats: package -> how many times each of its photos is drawn per pass (default 1), so that a
            package of many similar photos does not make most of the crops.
        crops: ``batch_size``, ``crop_size``, ``scale_range``, ``interpolation``, ``flip``, ``hue_rotation``, as
            :class:`~hific_lit.data.base.CropDataModule` takes them (``data=photos``: 128² crops with flips).
    """

    def __init__(
        self,
        num_workers: int = 0,
        samples_per_epoch: int = 512,
        val_photos: Sequence[str] = VALIDATION_PHOTOS,
        val_tiles: int = 16,
        max_short_side: int | None = 512,
        photo_folder: str | None = None,
        extra_photos: Sequence[str] = (),
        package_repeats: dict[str, int] | None = None,
        **crops: Any,
    ) -> None:
        super().__init__(num_workers=num_workers, **crops)
        self.samples_per_epoch = samples_per_epoch
        self.val_photos = list(val_photos)
        self.val_tiles = val_tiles
        self.max_short_side = max_short_side
        self.photo_folder = Path(photo_folder).expanduser() if photo_folder else None
        self.extra_photos = list(extra_photos)
        self.package_repeats = dict(package_repeats or {})
        self.val_names: list[str] = []
        self._val_sizes: list[int] = []

    def check_source(self) -> None:
        """The training photos must be there, as the manifest says (checked before any model is built)."""
        photo_entries("train", self.photo_folder, verify=False)
        expand_photos(self.extra_photos)

    def setup(self, stage: str | None = None) -> None:
        found = photo_entries("train", self.photo_folder)
        paths = [path for _, path in found] + expand_photos(self.extra_photos)
        repeats = [self.package_repeats.get(entry.package, 1) for entry, _ in found] + [1] * (len(paths) - len(found))
        order = [i for i, count in enumerate(repeats) for _ in range(count)]
        length = max(self.samples_per_epoch, len(order))  # photo order[i mod len]: fewer would leave photos out
        photos = PhotoDataset(paths, self.train_transform, length, self.max_short_side)
        self.train_set = RepeatedPhotos(photos, order, length)
        tiles, self.val_names, self._val_sizes = [], [], []
        for name in self.val_photos:
            photo_tiles = grid_tiles(load_sample_photo(name)[0], self.crop_size, self.val_tiles)
            tiles += photo_tiles
            self.val_names.append(name)
            self._val_sizes.append(len(photo_tiles))
        self.val_set = TensorListDataset(tiles)

    def val_dataloader(self) -> DataLoader:
        """One batch per validation photo (all its tiles), in :attr:`val_names` order."""
        if self.val_set is None:
            raise RuntimeError(f"{type(self).__name__}.setup() must run before asking for a loader")
        return DataLoader(self.val_set, batch_sampler=GroupBatches(self._val_sizes), num_workers=self.num_workers)
