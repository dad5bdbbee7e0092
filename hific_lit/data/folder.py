"""``data=folder``: any directory tree of images, with the paper's training crops."""

from __future__ import annotations

from pathlib import Path

from hific_lit.data.base import CropDataModule
from hific_lit.data.image_files import ImageFileDataset, find_images
from hific_lit.data.transforms import AUTHORS_CROPS, CenterCrop
from hific_lit.errors import DatasetError


def hold_out(paths: list[Path], fraction: float) -> tuple[list[Path], list[Path]]:
    """Split sorted ``paths`` into (train, val), with ``val`` evenly spaced and at least one file.

    Deterministic: the same folder always gives the same split.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"val_fraction must lie in (0, 1), got {fraction}")
    if len(paths) < 2:
        raise DatasetError(f"cannot hold out validation images from {len(paths)} file(s); pass val_dir")
    count = max(1, round(len(paths) * fraction))
    step = len(paths) / count
    val_index = {int(i * step + step / 2) for i in range(count)}
    train = [p for i, p in enumerate(paths) if i not in val_index]
    val = [p for i, p in enumerate(paths) if i in val_index]
    return train, val


class ImageFolderDataModule(CropDataModule):
    """Training crops from every image under ``train_dir``; centre crops of ``val_dir`` for validation.

    Args:
        train_dir: directory tree of training images (PNG, JPEG, WebP, TIFF, BMP, PPM).
        val_dir: directory tree of validation images; when ``None``, ``val_fraction`` of the training
            files (evenly spaced in sorted order) are held out instead.
        batch_size: the global batch (all ranks together); each rank loads ``batch_size / world_size``.
        crop_size, num_workers: loader settings; batches are ``(B, 3, crop, crop)`` in [0, 1].
        samples_per_epoch: training items per epoch (default: one pass over the files).
        scale_range, interpolation, flip, hue_rotation: the training crops
            (:class:`~hific_lit.data.transforms.RandomScaleCrop`); the defaults are the authors' (scale
            0.75..0.95, bilinear without antialiasing, no flip, no colour change).
        val_fraction: share of training files held out when there is no ``val_dir``.
    """

    def __init__(
        self,
        train_dir: str,
        val_dir: str | None = None,
        batch_size: int = AUTHORS_CROPS.batch_size,
        crop_size: int = AUTHORS_CROPS.crop_size,
        num_workers: int = 4,
        samples_per_epoch: int | None = None,
        scale_range: tuple[float, float] = AUTHORS_CROPS.scale_range,
        interpolation: str = AUTHORS_CROPS.interpolation,
        flip: bool = AUTHORS_CROPS.flip,
        hue_rotation: bool = False,
        val_fraction: float = 0.05,
    ) -> None:
        super().__init__(batch_size, crop_size, num_workers, scale_range, interpolation, flip, hue_rotation)
        self.train_dir = train_dir
        self.val_dir = val_dir
        self.samples_per_epoch = samples_per_epoch
        self.val_fraction = val_fraction

    def setup(self, stage: str | None = None) -> None:
        train_paths = find_images(self.train_dir)
        if self.val_dir is None:
            train_paths, val_paths = hold_out(train_paths, self.val_fraction)
        else:
            val_paths = find_images(self.val_dir)
        self.train_set = ImageFileDataset(train_paths, self.train_transform, self.samples_per_epoch)
        self.val_set = ImageFileDataset(val_paths, CenterCrop(self.crop_size))
