"""Callbacks of the training run: reconstruction images for the dashboard, the inference export at fit end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_only
from torchvision.utils import make_grid

from hific_lit.io.images import save_image
from hific_lit.models.base import Codec
from hific_lit.training.base import RDStage
from hific_lit.training.export import export_model


class ReconstructionImages(pl.Callback):
    """Log the first validation batch, originals above reconstructions, every ``every_n_iterations``.

    To wandb as ``val/reconstruction`` when a :class:`WandbLogger` is attached, and always as
    ``<dirpath>/iter_<iteration>.png``.
    """

    def __init__(self, dirpath: str | Path, every_n_iterations: int = 1000, max_images: int = 4) -> None:
        self.dirpath = Path(dirpath)
        self.every_n_iterations = every_n_iterations
        self.max_images = max_images
        self._last_logged: int | None = None

    @rank_zero_only
    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx != 0 or trainer.sanity_checking or not isinstance(pl_module, RDStage):
            return
        iteration = pl_module.iteration
        if self._last_logged is not None and iteration - self._last_logged < self.every_n_iterations:
            return
        self._last_logged = iteration
        n = min(self.max_images, batch.shape[0])
        x, x_hat = batch[:n].detach().cpu(), outputs["x_hat"][:n].clamp(0, 1).cpu()
        grid = make_grid(torch.cat([x, x_hat]), nrow=n, padding=2)
        save_image(grid, self.dirpath / f"iter_{iteration:07d}.png")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(
                    "val/reconstruction", [grid], step=trainer.global_step, caption=[f"iteration {iteration}"]
                )


class InferenceExport(pl.Callback):
    """At fit end, build the codec's coding tables and write an inference checkpoint ``hific compress`` loads.

    The file holds weights, tables, architecture and the resolved run config; no optimizer state
    and no discriminator (:func:`hific_lit.io.checkpoint.save_inference_checkpoint`). Any stage whose
    ``model`` has ``update()`` is exported: HiFiC's and GC2018's (:mod:`hific_lit.training.gc2018`).

    ``settle_tails`` Adam steps (lr 0.5) on the aux loss first finish moving the hyperprior's lower and
    upper quantiles (its medians are kept): the aux loss needs no data, and after a short run (minutes
    on a CPU) the tails are still far from the density's, so the coding tables would escape-code many z
    symbols and files would be larger than the rate the model learned. 0 (the default) leaves them as trained.
    """

    def __init__(self, path: str | Path, config: dict | None = None, settle_tails: int = 0) -> None:
        self.path = Path(path)
        self.config = config
        self.settle_tails = settle_tails

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        model = getattr(pl_module, "model", None)
        if not trainer.is_global_zero or not isinstance(model, Codec):
            return
        if self.settle_tails:
            model.settle_tails(self.settle_tails)
        export_model(model, self.path, self.config)
