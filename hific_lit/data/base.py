"""The LightningDataModule shape shared by every source: global batch split over ranks, sub-batches per iteration."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset

from hific_lit.data.transforms import AUTHORS_CROPS, RandomScaleCrop


def check_global_batch(batch_size: int, world_size: int) -> int:
    """Crops each rank loads for a global batch of ``batch_size`` over ``world_size`` ranks.

    The authors train on 8 crops per step in total (tensorflow/compression ``models/hific/train.py``
    ``--batch_size 8``); ``data.batch_size`` keeps that meaning on any number of devices.
    """
    if batch_size % world_size:
        raise ValueError(
            f"data.batch_size={batch_size} is the global batch, split evenly over the {world_size} ranks "
            f"(devices x nodes), and {world_size} does not divide it: choose a multiple of {world_size}"
        )
    return batch_size // world_size


class CropDataModule(pl.LightningDataModule):
    """Batches are plain float tensors ``(rank_batch_size, 3, crop_size, crop_size)`` in [0, 1].

    Training crops are :class:`~hific_lit.data.transforms.RandomScaleCrop` (``scale_range``,
    ``interpolation``, ``flip``, ``hue_rotation``; the defaults are the authors' preprocessing).

    ``batch_size`` is the **global** batch of one sub-batch: each of the ``world_size`` ranks loads
    ``batch_size / world_size`` crops of it. A training stage that uses several sub-batches per
    iteration (the GAN stage: one for D, one for the codec, as the authors' ``build_input``) sets
    :attr:`sub_batches` before the loaders are built; each training batch then holds
    ``sub_batches`` sub-batches, stacked along dimension 0. Validation batches are one sub-batch.

    Subclasses build ``self.train_set`` and ``self.val_set`` in :meth:`setup`. Under DDP, Lightning
    wraps the loaders of map-style datasets in a ``DistributedSampler``, which pads so every rank sees
    the same number of batches; the last incomplete training batch is dropped so every batch has the
    same shape. (Iterable sources, such as shards, split themselves: see ``WebDataModule``.)
    """

    def __init__(
        self,
        batch_size: int = AUTHORS_CROPS.batch_size,
        crop_size: int = AUTHORS_CROPS.crop_size,
        num_workers: int = 0,
        scale_range: tuple[float, float] = AUTHORS_CROPS.scale_range,
        interpolation: str = AUTHORS_CROPS.interpolation,
        flip: bool = AUTHORS_CROPS.flip,
        hue_rotation: bool = AUTHORS_CROPS.hue_rotation,
    ) -> None:
        super().__init__()
        if batch_size < 1 or crop_size < 1 or num_workers < 0:
            raise ValueError(
                f"need batch_size >= 1, crop_size >= 1, num_workers >= 0; got {batch_size}, {crop_size}, {num_workers}"
            )
        self.batch_size = batch_size
        self.crop_size = crop_size
        self.num_workers = num_workers
        self.train_transform = RandomScaleCrop(crop_size, scale_range, interpolation, flip, hue_rotation)
        self.sub_batches = 1
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    def rank_and_world(self) -> tuple[int, int]:
        """This process's rank and the world size: from the Trainer, else ``torch.distributed``, else (0, 1)."""
        trainer = self.trainer
        if trainer is not None:
            return trainer.global_rank, trainer.world_size
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    @property
    def rank_batch_size(self) -> int:
        """Crops of one sub-batch on this rank: ``batch_size / world_size`` (an error when it does not divide)."""
        return check_global_batch(self.batch_size, self.rank_and_world()[1])

    @property
    def train_batch_size(self) -> int:
        """Crops per training batch on this rank: :attr:`rank_batch_size` times :attr:`sub_batches`."""
        if self.sub_batches < 1:
            raise ValueError(f"sub_batches must be >= 1, got {self.sub_batches}")
        return self.rank_batch_size * self.sub_batches

    def check_source(self) -> None:
        """Raise :class:`~hific_lit.errors.DatasetError` when the training data is missing (cheap, before any model)."""

    @property
    def skipped_samples(self) -> int:
        """Unreadable images skipped so far (with a warning) by the training and validation loaders."""
        counters = (getattr(ds, "skips", None) for ds in (self.train_set, self.val_set))
        return sum(c.value for c in counters if c is not None)

    def _loader(self, dataset: Dataset | None, train: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() must run before asking for a loader")
        batch_size = self.train_batch_size if train else self.rank_batch_size
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=train,
            drop_last=train and len(dataset) >= batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)
