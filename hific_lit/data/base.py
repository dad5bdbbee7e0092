"""The LightningDataModule shape shared by every map-style source: train and validation loaders of crops."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset


class CropDataModule(pl.LightningDataModule):
    """Batches are plain float tensors ``(batch_size, 3, crop_size, crop_size)`` in [0, 1].

    Subclasses build ``self.train_set`` and ``self.val_set`` in :meth:`setup`. Under DDP, Lightning
    wraps the loaders of map-style datasets in a ``DistributedSampler``, which pads so every rank sees
    the same number of batches; the last incomplete training batch is dropped so every batch has the
    same shape. (Iterable sources, such as shards, split themselves: see ``WebDataModule``.)
    """

    def __init__(self, batch_size: int = 8, crop_size: int = 256, num_workers: int = 0) -> None:
        super().__init__()
        if batch_size < 1 or crop_size < 1 or num_workers < 0:
            raise ValueError(
                f"need batch_size >= 1, crop_size >= 1, num_workers >= 0; got {batch_size}, {crop_size}, {num_workers}"
            )
        self.batch_size = batch_size
        self.crop_size = crop_size
        self.num_workers = num_workers
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    @property
    def skipped_samples(self) -> int:
        """Unreadable images skipped so far (with a warning) by the training and validation loaders."""
        counters = (getattr(ds, "skips", None) for ds in (self.train_set, self.val_set))
        return sum(c.value for c in counters if c is not None)

    def _loader(self, dataset: Dataset | None, train: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() must run before asking for a loader")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=train,
            drop_last=train and len(dataset) >= self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)
