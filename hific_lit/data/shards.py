"""Streaming training crops out of WebDataset tar shards, split by rank and by DataLoader worker.

One :class:`ShardStream` serves one rank. The rank's shards (disjoint from every other rank's) are
dealt to its DataLoader workers; each worker reads its shards in a fresh random order on every pass,
forever, through a sample shuffle buffer, and stops after its share of ``batches_per_epoch``. So an
epoch is exactly ``batches_per_epoch`` batches on every rank, whatever the shard sizes: DDP ranks
never wait on each other at the end of an epoch.

A sample that cannot be read (a corrupt image, a truncated tar member) is skipped with a warning and
counted in :class:`SkipCounter`; it never stops training. Shards with no readable sample at all
(``MAX_CONSECUTIVE_SKIPS`` failures in a row, or a pass over a worker's shards that finds no sample)
raise :class:`DatasetError` instead of spinning forever.
"""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
import webdataset as wds
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from hific_lit.data.image_files import SkipCounter, Transform, open_image
from hific_lit.data.sampler import derived_seed
from hific_lit.errors import DatasetError, ImageReadError
from hific_lit.io.images import IMAGE_SUFFIXES

MAX_CONSECUTIVE_SKIPS = 1000
IMAGE_KEYS = tuple(suffix.lstrip(".") for suffix in IMAGE_SUFFIXES)


def resolve_shards(spec: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Expand a shard spec into a list of shard paths or URLs.

    ``spec`` is a directory (every ``*.tar`` in it, sorted), a brace pattern such as
    ``shards/train-{000000..000123}.tar``, several patterns joined by ``::``, one path or URL, or a
    list of these. Local files must exist; remote URLs (``http://``, ``s3://``, ``pipe:``) are passed
    to WebDataset as they are.
    """
    specs = [spec] if isinstance(spec, str | os.PathLike) else list(spec)
    shards: list[str] = []
    for item in specs:
        item = str(item)
        if Path(item).expanduser().is_dir():
            found = sorted(str(p) for p in Path(item).expanduser().glob("*.tar"))
            if not found:
                raise DatasetError(f"{item}: directory holds no .tar shards")
            shards.extend(found)
        else:
            shards.extend(wds.shardlists.expand_urls(item))
    if not shards:
        raise DatasetError(f"no shards in {spec!r}")
    missing = [s for s in shards if _is_local(s) and not Path(s).expanduser().is_file()]
    if missing:
        raise DatasetError(f"{len(missing)} of {len(shards)} shards do not exist, e.g. {missing[0]}")
    return shards


def _is_local(url: str) -> bool:
    return "://" not in url and not url.startswith("pipe:")


def shards_for_rank(shards: Sequence[str], rank: int, world_size: int) -> list[str]:
    """The disjoint subset of ``shards`` read by ``rank`` (every ``world_size``-th, starting at ``rank``)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must lie in [0, {world_size}), got {rank}")
    if len(shards) < world_size:
        raise DatasetError(
            f"{len(shards)} shard(s) for {world_size} ranks: every rank needs at least one; "
            "write smaller shards (make_shards.py --max-count) or train on fewer ranks"
        )
    return list(shards[rank::world_size])


def batches_for_worker(batches: int, worker: int, num_workers: int) -> int:
    """Worker ``worker``'s share of ``batches`` (shares differ by at most one and sum to ``batches``)."""
    return batches // num_workers + (1 if worker < batches % num_workers else 0)


def decode_image(sample: dict) -> Image.Image:
    """The image of a WebDataset sample (its first member with an image suffix), decoded."""
    where = f"{sample.get('__url__', '?')}:{sample.get('__key__', '?')}"
    key = next((k for k in IMAGE_KEYS if k in sample), None)
    if key is None:
        raise ImageReadError(f"{where}: no image member (has {sorted(k for k in sample if not k.startswith('__'))})")
    return open_image(sample[key], f"{where}.{key}")


class ShardStream(IterableDataset):
    """Batches ``(batch_size, 3, crop, crop)`` from one rank's shards; ``len()`` is ``batches_per_epoch``.

    Args:
        shards: this rank's shards (see :func:`shards_for_rank`); DataLoader workers split them further,
            so use at most ``len(shards)`` workers.
        transform: maps a decoded PIL image and a ``generator=`` keyword to a (3, crop, crop) float tensor.
        batch_size: samples per batch.
        batches_per_epoch: batches this rank yields per epoch, over all its workers.
        shuffle_buffer: samples held in the shuffle buffer (0 disables sample shuffling).
        skips: counter of skipped samples, shared with the main process.
        rank: mixed into the random seed, so that ranks seeded alike (``seed_everything``) still
            shuffle and crop independently.
        salt: mixed into the random seed as well; the data module sets it to the number of batches a resumed
            run has trained on, so that a resumed stream is shuffled afresh instead of replaying its start.
    """

    def __init__(
        self,
        shards: Sequence[str],
        transform: Transform,
        batch_size: int,
        batches_per_epoch: int,
        shuffle_buffer: int = 1000,
        skips: SkipCounter | None = None,
        rank: int = 0,
        salt: int = 0,
    ) -> None:
        super().__init__()
        if not shards:
            raise DatasetError("a shard stream needs at least one shard")
        if batch_size < 1 or batches_per_epoch < 1 or shuffle_buffer < 0:
            raise ValueError("need batch_size >= 1, batches_per_epoch >= 1 and shuffle_buffer >= 0")
        self.shards = list(shards)
        self.transform = transform
        self.batch_size = batch_size
        self.batches_per_epoch = batches_per_epoch
        self.shuffle_buffer = shuffle_buffer
        self.skips = skips if skips is not None else SkipCounter()
        self.rank = rank
        self.salt = salt

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[torch.Tensor]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        shards = self.shards[worker::num_workers]
        if not shards:
            raise DatasetError(f"worker {worker} of {num_workers} has no shard: use at most {len(self.shards)} workers")
        # Seeded from torch's RNG (set by seed_everything, and per worker by the DataLoader), the rank and the salt.
        seed = derived_seed(int(torch.randint(0, 2**62, ())), self.rank, self.salt)
        rng, generator = random.Random(seed), torch.Generator().manual_seed(seed)
        pipeline = wds.DataPipeline(
            lambda: self._samples_forever(shards, rng),
            wds.shuffle(self.shuffle_buffer, initial=min(100, self.shuffle_buffer), rng=rng)
            if self.shuffle_buffer > 0
            else None,
            lambda samples: self._crops(samples, generator),
            wds.batched(self.batch_size, collation_fn=torch.stack, partial=False),
        )
        yield from itertools.islice(pipeline, batches_for_worker(self.batches_per_epoch, worker, num_workers))

    def _samples_forever(self, shards: list[str], rng: random.Random) -> Iterator[dict]:
        while True:
            order = list(shards)
            rng.shuffle(order)
            found = 0
            for sample in wds.tarfile_to_samples(handler=self.skips)(iter({"url": url} for url in order)):
                found += 1
                yield sample
            if found == 0:
                raise DatasetError(f"no readable sample in {len(shards)} shard(s), e.g. {shards[0]}")

    def _crops(self, samples: Iterator[dict], generator: torch.Generator) -> Iterator[torch.Tensor]:
        consecutive = 0
        for sample in samples:
            try:
                image = decode_image(sample)
            except ImageReadError as exc:
                self.skips(exc)
                consecutive += 1
                if consecutive >= MAX_CONSECUTIVE_SKIPS:
                    raise DatasetError(f"{consecutive} unreadable samples in a row; the shards look broken") from None
                continue
            consecutive = 0
            yield self.transform(image, generator=generator)
