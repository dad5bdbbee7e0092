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
    ``<dirpath>/rank<r>.jsonl``, on every rank (loggers write on rank zero only). For a rate-conditioned model also
    the codec step's rate and rounded bpp per image (``rates``, ``image_bpp_rounded``) and each anchor's logged
    decision and weight (``anchor<k>/...``)."""

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)
        self.last: Any = None
        self.hook: Any = None

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, idx: int) -> None:
        def keep(module: Any, args: Any, out: Any) -> None:
            self.last = out  # the codec step's pass is the batch's last

        self.hook = pl_module.model.register_forward_hook(keep)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.hook.remove()
        logged = trainer.callback_metrics
        record = {
            "rank": trainer.global_rank,
            "iteration": pl_module.iteration,
            "batch": int(batch.shape[0]),
            **{key: float(logged[f"train/{key}"]) for key in ("rate_weight", "bpp_rounded", "decision_bpp")},
        }
        if self.last.rate is not None:
            record |= {"rates": self.last.rate.tolist(), "image_bpp_rounded": self.last.image_bpp_rounded.tolist()}
            record |= {k[len("train/") :]: float(v) for k, v in logged.items() if k.startswith("train/anchor")}
        self.dirpath.mkdir(parents=True, exist_ok=True)
        with (self.dirpath / f"rank{trainer.global_rank}.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")
