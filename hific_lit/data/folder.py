"""``data=folder``: any directory tree of images, with the paper's training crops."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hific_lit.data.base import CropDataModule
from hific_lit.data.image_files import ImageFileDataset, find_images
from hific_lit.data.transforms import CenterCrop
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
        num_workers: loader processes; batches are ``(B, 3, crop, crop)`` in [0, 1].
        samples_per_epoch: training items per epoch (default: one pass over the files).
        val_fraction: share of training files held out when there is no ``val_dir``.
        crops: ``batch_size`` (the global batch: each rank loads ``batch_size / world_size``), ``crop_size``,
            ``scale_range``, ``interpolation``, ``flip``, ``hue_rotation``, as
            :class:`~hific_lit.data.base.CropDataModule` takes them (default: the authors').
    """

    def __init__(
        self,
        train_dir: str,
        val_dir: str | None = None,
        num_workers: int = 4,
        samples_per_epoch: int | None = None,
        val_fraction: float = 0.05,
        **crops: Any,
    ) -> None:
        super().__init__(num_workers=num_workers, **crops)
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
