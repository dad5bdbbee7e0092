"""The order of training samples: a fresh permutation per epoch, split over ranks, each sample with its own seed.

:class:`ResumableSampler` is the training sampler of every map-style source (sample photos, image folders). The
epoch's permutation and each sample's random crop follow from ``(seed, epoch, position)`` alone, never from a
global generator, so a run resumed mid-epoch (``start``) draws exactly the samples and crops the uninterrupted
run draws next, whatever the number of DataLoader workers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler


class SeededIndex(NamedTuple):
    """A dataset key: the item ``index`` and the ``seed`` of the random numbers that make it (its crop)."""

    index: int
    seed: int


def split_key(key: int | SeededIndex) -> tuple[int, torch.Generator | None]:
    """The index of a dataset key and the generator its random numbers come from (``None``: torch's global one)."""
    if isinstance(key, SeededIndex):
        return key.index, torch.Generator().manual_seed(key.seed)
    return int(key), None


def derived_seed(*parts: int) -> int:
    """A seed made of non-negative ``parts`` by numpy's SeedSequence (statistically independent streams), below 2^63."""
    return int(np.random.SeedSequence(parts).generate_state(1, np.uint64)[0] >> np.uint64(1))


class ResumableSampler(DistributedSampler):
    """This rank's share of the epoch's permutation, as :class:`SeededIndex` keys, starting at ``start``.

    A :class:`~torch.utils.data.DistributedSampler` (so Lightning leaves it in place under DDP and calls
    :meth:`set_epoch` each epoch): the permutation of epoch ``e`` is seeded with ``seed + e`` on every rank,
    padded by repetition to a multiple of the ranks, and rank ``r`` takes positions ``r, r + world, ...``.

    Args:
        dataset: the map-style training set.
        num_replicas, rank: the world size and this process's rank.
        seed: the same on every rank.
        epoch: the epoch to begin with.
        start: items of this rank's share of ``epoch`` already trained on; the first pass skips them
            (a resumed run), later passes start at 0.
        position: where the run stands, asked at the start of every pass: ``(epoch, start)`` as above. It takes
            the place of ``epoch``, ``start`` and :meth:`set_epoch` (the data module counts the batches trained;
            Lightning's epoch counter, which it passes to :meth:`set_epoch`, falls one behind in a run resumed at
            the end of an epoch and stopped at the end of another, Lightning 2.6).
    """

    def __init__(
        self,
        dataset: Dataset,
        num_replicas: int,
        rank: int,
        seed: int,
        epoch: int = 0,
        start: int = 0,
        position: Callable[[], tuple[int, int]] | None = None,
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        self.epoch = epoch
        self.start = start
        self.position = position

    def __iter__(self) -> Iterator[SeededIndex]:
        if self.position is not None:
            self.epoch, self.start = self.position()
        size = len(self.dataset)
        order = torch.randperm(size, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        order = (order * math.ceil(self.total_size / size))[: self.total_size]
        start, self.start = self.start, 0
        epoch, seed = self.epoch, self.seed
        positions = range(self.rank, self.total_size, self.num_replicas)[start:]
        return (SeededIndex(order[p], derived_seed(seed, epoch, p)) for p in positions)
