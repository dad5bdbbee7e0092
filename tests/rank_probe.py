"""A callback the DDP smoke test adds with ``+callbacks.rank_probe=...``: every rank writes what it trained on.

Not a test module; ``tests/`` is put on PYTHONPATH by the test that uses it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytorch_lightning as pl


class RankProbe(pl.Callback):
    """Append ``{rank, iteration, batch, rate_weight, bpp_rounded, decision_bpp}`` per training batch to
    ``<dirpath>/rank<r>.jsonl``, on every rank (loggers write on rank zero only)."""

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        logged = trainer.callback_metrics
        record = {
            "rank": trainer.global_rank,
            "iteration": pl_module.iteration,
            "batch": int(batch.shape[0]),
            **{key: float(logged[f"train/{key}"]) for key in ("rate_weight", "bpp_rounded", "decision_bpp")},
        }
        self.dirpath.mkdir(parents=True, exist_ok=True)
        with (self.dirpath / f"rank{trainer.global_rank}.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")
