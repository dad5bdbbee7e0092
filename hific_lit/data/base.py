"""The LightningDataModule shape shared by every source: global batch split over ranks, sub-batches per iteration,
and a data position that a resumed run returns to."""

from __future__ import annotations

import math
import os
import signal
from functools import partial
from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from lightning_fabric.utilities.seed import pl_worker_init_function
from torch.utils.data import DataLoader, Dataset

from hific_lit.data.sampler import ResumableSampler
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


def quiet_worker(worker_id: int, rank: int) -> None:
    """``worker_init_fn`` of every loader: a worker ignores stop signals (SIGTERM, SIGUSR1; a scheduler may signal
    every process, and its training process stops it), then seeds as Lightning's ``seed_everything(workers=True)``
    asks. A worker killed by the signal would make the training process fail before it could checkpoint."""
    for signum in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(signum, signal.SIG_IGN)
    if os.environ.get("PL_SEED_WORKERS") == "1":
        pl_worker_init_function(worker_id, rank)


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

    Map-style training sets are read through a :class:`~hific_lit.data.sampler.ResumableSampler` (a
    ``DistributedSampler``, which Lightning leaves in place): the order and every crop follow from
    :attr:`data_seed`, the epoch and the position alone, and a resumed run starts at the batch after the last one
    it trained on (:meth:`batches_trained`). :attr:`data_seed` (torch's initial seed unless set, rank zero's on every
    rank) is saved in checkpoints (:meth:`state_dict`).
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
        self.data_seed: int | None = None

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

    def shared_seed(self) -> int:
        """:attr:`data_seed`, fixed at first use: torch's initial seed (``seed_everything``'s), rank zero's on all."""
        if self.data_seed is None:
            seed = torch.initial_seed() % 2**62
            trainer = self.trainer
            if trainer is not None and trainer.world_size > 1:
                seed = trainer.strategy.broadcast(seed, src=0)
            self.data_seed = int(seed)
        return self.data_seed

    def batches_trained(self) -> int:
        """Training batches the run has trained on before this loader (non-zero in a resumed run)."""
        trainer = self.trainer
        return 0 if trainer is None else int(trainer.fit_loop.epoch_loop.batch_progress.total.processed)

    def state_dict(self) -> dict[str, Any]:
        return {} if self.data_seed is None else {"data_seed": self.data_seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.data_seed = state_dict.get("data_seed", self.data_seed)

    def check_source(self) -> None:
        """Raise :class:`~hific_lit.errors.DatasetError` when the training data is missing (cheap, before any model)."""

    @property
    def skipped_samples(self) -> int:
        """Unreadable images skipped so far (with a warning) by the training and validation loaders."""
        counters = (getattr(ds, "skips", None) for ds in (self.train_set, self.val_set))
        return sum(c.value for c in counters if c is not None)

    def _built(self, dataset: Dataset | None) -> Dataset:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() must run before asking for a loader")
        return dataset

    def _loader(self, dataset: Dataset, **kwargs: Any) -> DataLoader:
        return DataLoader(
            dataset,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            worker_init_fn=partial(quiet_worker, rank=self.rank_and_world()[0]),
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader:
        """This rank's batches of :attr:`train_batch_size`; each pass starts after :meth:`batches_trained`."""
        rank, world_size = self.rank_and_world()
        dataset = self._built(self.train_set)
        sampler = ResumableSampler(dataset, world_size, rank, self.shared_seed())
        batch_size = self.train_batch_size
        drop_last = len(sampler) >= batch_size
        per_epoch = len(sampler) // batch_size if drop_last else math.ceil(len(sampler) / batch_size)
        sampler.position = partial(self.data_position, per_epoch, batch_size)
        return self._loader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last)

    def data_position(self, per_epoch: int, batch_size: int) -> tuple[int, int]:
        """``(epoch, samples of it trained on)`` from :meth:`batches_trained`, for ``per_epoch`` batches of
        ``batch_size`` per epoch: where the training sampler starts each pass."""
        epoch, done = divmod(self.batches_trained(), per_epoch)
        return epoch, done * batch_size

    def val_dataloader(self) -> DataLoader:
        return self._loader(self._built(self.val_set), batch_size=self.rank_batch_size)
