"""``data=openimages_wds``: training crops streamed from WebDataset shards, on one or many ranks."""

from __future__ import annotations

import warnings
from functools import partial
from typing import Any

import torch
from torch.utils.data import DataLoader

from hific_lit.data.base import CropDataModule, quiet_worker
from hific_lit.data.image_files import ImageFileDataset, find_images
from hific_lit.data.shards import ShardStream, resolve_shards, shards_for_rank
from hific_lit.data.transforms import CenterCrop
from hific_lit.errors import DatasetError


class WebDataModule(CropDataModule):
    """Paper-style crops from tar shards (``scripts/make_shards.py``); validation from an image folder.

    Every rank reads a disjoint subset of the shards and yields exactly ``batches_per_epoch`` batches
    per epoch, so DDP ranks stay in step. A stream has no position to resume at: a resumed run reads it with a
    fresh seed (salted with the batches already trained on) instead of replaying its start. Batches are
    ``(B, 3, crop, crop)`` float tensors in [0, 1], ``B`` = ``batch_size / world_size`` crops per sub-batch
    (``batch_size`` is the global batch).

    Args:
        train_shards: a shard directory, a brace pattern (``shards/train-{000000..000123}.tar``),
            ``::``-joined patterns, URLs, or a list of these (see :func:`resolve_shards`).
        val_dir: directory tree of validation images (centre crops); ``None`` disables validation.
        num_workers: loader processes; each rank uses at most as many workers as it has shards.
        batches_per_epoch: batches per epoch on every rank.
        shuffle_buffer: samples in each worker's shuffle buffer (memory: about this many encoded images).
        rank, world_size: override the rank and world size; by default they come from the Trainer, or
            from ``torch.distributed`` when it is initialised, else 0 and 1.
        crops: ``batch_size`` (the global batch: each rank loads ``batch_size / world_size``), ``crop_size``,
            ``scale_range``, ``interpolation``, ``flip``, ``hue_rotation``, as
            :class:`~hific_lit.data.base.CropDataModule` takes them (default: the authors').
    """

    def __init__(
        self,
        train_shards: str | list[str],
        val_dir: str | None = None,
        num_workers: int = 4,
        batches_per_epoch: int = 1000,
        shuffle_buffer: int = 1000,
        rank: int | None = None,
        world_size: int | None = None,
        **crops: Any,
    ) -> None:
        super().__init__(num_workers=num_workers, **crops)
        self.train_shards = train_shards
        self.val_dir = val_dir
        self.batches_per_epoch = batches_per_epoch
        self.shuffle_buffer = shuffle_buffer
        self.rank = rank
        self.world_size = world_size

    def rank_and_world(self) -> tuple[int, int]:
        """The ``rank`` / ``world_size`` overrides when given, else as every data module finds them."""
        if self.rank is not None or self.world_size is not None:
            return (self.rank or 0), (self.world_size or 1)
        return super().rank_and_world()

    def check_source(self) -> None:
        """Raise :class:`DatasetError` saying how to make shards when ``train_shards`` names none."""
        try:
            resolve_shards(self.train_shards)
        except DatasetError as exc:
            raise DatasetError(
                f"no training shards at {self.train_shards} ({exc}). Make them from a folder of training images "
                f"(the paper: OpenImages train) with `make shards SRC=<image folder> OUT={self.train_shards}`, "
                "point HIFIC_SHARDS or data.train_shards at existing shards, or train on other data "
                "(data=folder data.train_dir=<image folder>)"
            ) from None

    def setup(self, stage: str | None = None) -> None:
        rank, world_size = self.rank_and_world()
        shards = shards_for_rank(resolve_shards(self.train_shards), rank, world_size)
        # The skip counter (shared memory) is made here, in the rank's own process, never before a spawn.
        self.train_set = ShardStream(
            shards, self.train_transform, self.train_batch_size, self.batches_per_epoch, self.shuffle_buffer, rank=rank
        )
        if self.val_dir is not None:
            self.val_set = ImageFileDataset(find_images(self.val_dir), CenterCrop(self.crop_size))

    def train_dataloader(self) -> DataLoader:
        """The rank's shard stream in batches of :attr:`train_batch_size` (``sub_batches`` may change after setup)."""
        if self.train_set is None:
            raise RuntimeError("WebDataModule.setup() must run before asking for a loader")
        self.train_set.batch_size = self.train_batch_size
        self.train_set.salt = self.batches_trained()
        workers = min(self.num_workers, len(self.train_set.shards))
        if workers < self.num_workers:
            warnings.warn(
                f"{len(self.train_set.shards)} shard(s) on this rank: using {workers} of {self.num_workers} workers",
                RuntimeWarning,
                stacklevel=2,
            )
        return DataLoader(
            self.train_set,
            batch_size=None,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
            worker_init_fn=partial(quiet_worker, rank=self.rank_and_world()[0]),
        )

    def val_dataloader(self) -> DataLoader | list:
        return [] if self.val_set is None else super().val_dataloader()
