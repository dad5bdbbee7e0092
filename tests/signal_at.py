"""A callback tests add with ``+callbacks.signal_at=...``: the process signals itself in a chosen iteration.

Not a test module; tests that start a training in a subprocess put ``tests/`` on PYTHONPATH.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import pytorch_lightning as pl


class SignalAt(pl.Callback):
    """Send ``signal_name`` to this process once iteration ``iteration`` (1-based) has stepped, before it ends."""

    def __init__(self, iteration: int, signal_name: str = "SIGTERM") -> None:
        self.iteration = iteration
        self.signum = signal.Signals[signal_name]

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if pl_module.iteration == self.iteration:
            os.kill(os.getpid(), self.signum)
