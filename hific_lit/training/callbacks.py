"""Callbacks of the training run: reconstruction images, PSNR and colour error per validation photo, the export."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_only
from torchvision.utils import make_grid

from hific_lit.eval.metrics import colour_error
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


log = logging.getLogger(__name__)


def _uint8_images(batch: torch.Tensor) -> Any:
    """(B, 3, H, W) floats in [0, 1] -> (B, H, W, 3) uint8 numpy, rounded as a decoded image is."""
    return batch.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


class PhotoMetrics(pl.Callback):
    """PSNR and colour error (:func:`~hific_lit.eval.metrics.colour_error`) of each validation photo.

    For data modules whose validation batches are whole photos, one per batch, named by ``val_names``
    (:class:`~hific_lit.data.photo_module.PhotoSetDataModule`): each check logs ``val/photo_psnr/<name>``,
    ``val/delta_e/<name>`` and their means over the photos ``val/photo_psnr`` and ``val/delta_e``, and writes
    one line per check to the run's log. Both are computed on 8-bit images, as on decoded files. Other data
    modules: it does nothing.
    """

    def __init__(self) -> None:
        self._rows: dict[str, tuple[float, float]] = {}

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._rows = {}

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        names = getattr(trainer.datamodule, "val_names", None)
        if not names or not isinstance(outputs, dict) or "x_hat" not in outputs:
            return
        x, x_hat = _uint8_images(batch), _uint8_images(outputs["x_hat"])
        mse = float(((x.astype("float64") - x_hat) ** 2).mean())
        psnr = math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)
        delta_e = sum(colour_error(a, b) for a, b in zip(x, x_hat, strict=True)) / len(x)
        self._rows[names[batch_idx]] = (psnr, delta_e)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._rows or trainer.sanity_checking:
            return
        metrics = {}
        for name, (psnr, delta_e) in self._rows.items():
            metrics |= {f"val/photo_psnr/{name}": psnr, f"val/delta_e/{name}": delta_e}
        metrics["val/photo_psnr"] = sum(p for p, _ in self._rows.values()) / len(self._rows)
        metrics["val/delta_e"] = sum(d for _, d in self._rows.values()) / len(self._rows)
        pl_module.log_dict(metrics)
        per_photo = ", ".join(f"{name} {p:.2f} dB / {d:.2f}" for name, (p, d) in self._rows.items())
        iteration = getattr(pl_module, "iteration", trainer.global_step)
        log.info(
            "iteration %d: validation photos PSNR / colour error (CIEDE2000): mean %.2f dB / %.2f; %s",
            iteration,
            metrics["val/photo_psnr"],
            metrics["val/delta_e"],
            per_photo,
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
