"""The training steps' random numbers, per rank: continued exactly across anything between steps and across a resume.

A training step draws from torch's global generators (the rate proxy's uniform noise, MRIC's β per image) and
may draw from numpy's and Python's. :class:`TrainingRandomState` captures their state at the end of each step
and restores it at the start of the next, so that nothing running in between (validation, checkpointing,
loggers) shifts the stream, and every checkpoint holds that state for every rank. A run resumed from a
checkpoint therefore draws exactly the numbers the uninterrupted run draws (``scripts/soak_resume.py``).
The data have their own random numbers, seeded per sample (:mod:`hific_lit.data.sampler`).
"""

from __future__ import annotations

import logging
import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

RandomState = dict[str, Any]
"""The generators' states as plain tensors, numbers and tuples (a checkpoint loads with ``weights_only=True``)."""


def capture() -> RandomState:
    """The state of torch's generators (CPU; the current CUDA device once initialised), numpy's and Python's."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    state: RandomState = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position)},
        "numpy_gauss": (int(has_gauss), float(gauss)),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore(state: RandomState) -> None:
    """Set the generators to ``state`` (from :func:`capture`); the CUDA state to the current device, if any."""
    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    has_gauss, gauss = state["numpy_gauss"]
    keys = numpy["keys"].numpy().astype(np.uint32)
    np.random.set_state((numpy["kind"], keys, numpy["position"], has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def gather_over_ranks(state: RandomState) -> list[RandomState]:
    """Every rank's ``state``, in rank order (a collective: every rank must call it); ``[state]`` on one process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [state]
    states: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(states, state)
    return states


class TrainingRandomState(pl.Callback):
    """Keep the training steps' random stream continuous, and save and restore it with every checkpoint.

    At the end of a training step the generators' state is captured; at the start of the next step it is
    restored. A checkpoint holds the captured state of every rank (gathered when the checkpoint is written, which
    every rank does together); a resumed run restores its own rank's before its first step. A checkpoint written
    by another number of ranks restores those ranks it holds and warns about the others.
    """

    def __init__(self) -> None:
        self._state: RandomState | None = None
        self._loaded: list[RandomState] | None = None

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._state is not None:
            restore(self._state)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._state = capture()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._loaded is None:
            return
        ranks, self._loaded = self._loaded, None
        if len(ranks) != trainer.world_size:
            log.warning(
                "the checkpoint holds the random states of %d rank(s), this run has %d: ranks beyond %d keep their own",
                len(ranks),
                trainer.world_size,
                len(ranks) - 1,
            )
        if trainer.global_rank < len(ranks):
            self._state = ranks[trainer.global_rank]

    def state_dict(self) -> dict[str, Any]:
        return {"ranks": gather_over_ranks(self._state if self._state is not None else capture())}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._loaded = list(state_dict["ranks"])
