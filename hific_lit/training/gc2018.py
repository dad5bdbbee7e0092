"""Lightning stages of GC2018 (Agustsson et al. 2018) with manual optimization.

- :class:`GC2018Stage` trains E and G on the distortion alone, ``lambda * MSE (+ k_P * perceptual)``
  (a non-adversarial warm-up, e.g. for a short CPU run, or an MSE baseline at the same rate);
- :class:`GC2018GANStage` extends it with the multi-scale discriminator: per iteration one E/G step on
  ``LSGAN_G + lambda_FM * FM + lambda * MSE (+ k_P * perceptual)`` (the paper's objective with beta = 0), then
  one D step (LSGAN) on the next batch, reconstructed by the updated E/G without gradient (the TF1 port's
  ``train.py`` lines 76-80: two ``sess.run`` calls, each drawing a batch) or on the same batch's detached
  reconstruction (``discriminator_batch="same"``, pix2pixHD's).

Both also fit the categorical prior (its own optimizer, on detached symbols): the rate is fixed by
C and L, and the prior only decides how far below the bound ``C log2(L)`` per 16 x 16 pixels the
files get. One *iteration* is one training batch; :attr:`iteration` is our own counter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from hific_lit.models.gc2018.arch import GC2018Config
from hific_lit.models.gc2018.discriminator import MultiscaleDiscriminator
from hific_lit.models.gc2018.model import GC2018, GC2018Output
from hific_lit.training.base import IterationCheckpointing, ManualSteps
from hific_lit.training.gc2018_losses import (
    GC2018_ADAM,
    PRIOR_ADAM,
    GC2018Loss,
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
)
from hific_lit.training.losses import psnr

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
DISCRIMINATOR_BATCHES = ("next", "same")
"""What D's step trains on: the next batch (the TF1 port) or the E/G step's batch (pix2pixHD)."""


def paper_adam(params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """E/G's and D's Adam (:data:`GC2018_ADAM`)."""
    return torch.optim.Adam(params, **GC2018_ADAM)


def prior_adam(params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """The categorical prior's Adam (:data:`PRIOR_ADAM`)."""
    return torch.optim.Adam(params, **PRIOR_ADAM)


def mse_symmetric(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """MSE of images in [0, 1] measured in [-1, 1], i.e. 4 x their MSE: the scale the paper's lambda assumes."""
    return 4.0 * F.mse_loss(x_hat, x)


class GC2018Stage(IterationCheckpointing, ManualSteps, pl.LightningModule):
    """E and G on the distortion (no discriminator); the categorical prior on the symbols' cross-entropy.

    Args:
        arch: network sizes (``arch=gc2018*`` preset).
        loss: the objective's weights.
        perceptual: an optional ``(x, x_hat) -> distance`` module (e.g. LPIPS); needs ``perceptual_weight > 0``.
        codec_optimizer, prior_optimizer, discriminator_optimizer: optimizer factories.
        gradient_clip: max gradient norm per optimizer name, ``None``/missing = none.
    """

    optimizer_names: tuple[str, ...] = ("codec", "prior")

    def __init__(
        self,
        arch: GC2018Config,
        loss: GC2018Loss | None = None,
        perceptual: nn.Module | None = None,
        codec_optimizer: OptimizerFactory = paper_adam,
        prior_optimizer: OptimizerFactory = prior_adam,
        discriminator_optimizer: OptimizerFactory = paper_adam,
        gradient_clip: dict[str, float | None] | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.model = GC2018(arch)
        self.loss_config = loss or GC2018Loss()
        if (perceptual is None) != (self.loss_config.perceptual_weight == 0):
            raise ValueError("a perceptual module needs loss.perceptual_weight > 0, and a weight needs the module")
        self.perceptual = perceptual
        self.factories = {"codec": codec_optimizer, "prior": prior_optimizer, "discriminator": discriminator_optimizer}
        self.gradient_clip = dict(gradient_clip or {})
        self.iteration = 0

    @property
    def optimizers_per_iteration(self) -> int:
        """Optimizer steps per iteration (how much Lightning's ``global_step`` grows per batch)."""
        return len(self.optimizer_names)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters by optimizer name."""
        return self.model.parameter_groups()._asdict()

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        groups = self.parameter_groups()
        return [self.factories[name](groups[name]) for name in self.optimizer_names]

    def distortion_terms(self, x: torch.Tensor, out: GC2018Output) -> dict[str, torch.Tensor]:
        """``lambda * MSE (+ k_P * perceptual)`` as ``loss``, and the terms to log."""
        cfg = self.loss_config
        mse = mse_symmetric(x, out.x_hat)
        loss = cfg.distortion_weight * mse
        terms = {"mse": mse.detach(), "psnr": psnr(x, out.x_hat.detach())}
        if self.perceptual is not None:
            perceptual = self.perceptual(x, out.x_hat)
            loss = loss + cfg.perceptual_weight * perceptual
            terms["perceptual"] = perceptual.detach()
        terms |= {"bpp": out.bpp.detach(), "bpp_bound": out.bpp_bound}
        return {"loss": loss, **terms}

    def codec_objective(self, x: torch.Tensor, out: GC2018Output) -> dict[str, torch.Tensor]:
        """What the E/G step minimises (``loss``); the GAN stage adds its terms."""
        return self.distortion_terms(x, out)

    def steps_after_codec(
        self, x: torch.Tensor, out: GC2018Output, others: list[torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Steps after the E/G step (the GAN stage's D step), given the other sub-batches; none here."""
        return {}

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        if batch.shape[0] % self.sub_batches_per_iteration:
            raise ValueError(
                f"a training batch of {batch.shape[0]} crops does not split into "
                f"{self.sub_batches_per_iteration} equal sub-batches"
            )
        x, *others = batch.chunk(self.sub_batches_per_iteration)
        out = self.model(x)
        terms = self.codec_objective(x, out)
        self.optimizer_step_on("codec", terms["loss"])
        terms |= self.steps_after_codec(x, out, others)
        self.optimizer_step_on("prior", out.bpp)
        self.iteration += 1
        metrics = {f"train/{k}": v.detach().float() for k, v in terms.items()}
        self.log_dict(metrics, on_step=True, prog_bar=False, batch_size=x.shape[0])

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> dict[str, torch.Tensor]:
        out = self.model(batch)
        terms = self.distortion_terms(batch, out)
        terms["rd_loss"] = terms.pop("loss").detach()  # the distortion objective: the rate is fixed by C and L
        self.log_dict({f"val/{k}": v for k, v in terms.items()}, sync_dist=True, batch_size=batch.shape[0])
        return {"x_hat": out.x_hat.detach()}


class GC2018GANStage(GC2018Stage):
    """The distortion stage plus the multi-scale discriminator, LSGAN and feature matching (the paper's objective).

    Args:
        discriminator: e.g. :class:`~hific_lit.models.gc2018.MultiscaleDiscriminator` (3 scales); this stage's,
            never in inference checkpoints.
        discriminator_batch: ``next``: D trains on a sub-batch of its own, reconstructed by the E/G just updated
            (the TF1 port); ``same``: on the E/G step's detached reconstruction (pix2pixHD).
        *args, **kwargs: as :class:`GC2018Stage`.
    """

    optimizer_names = ("codec", "prior", "discriminator")

    def __init__(
        self, *args: Any, discriminator: MultiscaleDiscriminator, discriminator_batch: str = "next", **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        if discriminator_batch not in DISCRIMINATOR_BATCHES:
            known = ", ".join(DISCRIMINATOR_BATCHES)
            raise ValueError(f"unknown discriminator_batch {discriminator_batch!r}; expected one of: {known}")
        self.discriminator = discriminator
        self.discriminator_batch = discriminator_batch

    @property
    def sub_batches_per_iteration(self) -> int:
        """2 when D trains on the next batch (its own sub-batch), else 1."""
        return 2 if self.discriminator_batch == "next" else 1

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """The codec's groups plus ``discriminator``; asserts D shares no parameter with the codec."""
        groups = super().parameter_groups()
        groups["discriminator"] = list(self.discriminator.parameters())
        taken = {id(p) for name in ("codec", "prior") for p in groups[name]}
        assert not taken & {id(p) for p in groups["discriminator"]}, "D shares parameters with the codec"
        return groups

    def codec_objective(self, x: torch.Tensor, out: GC2018Output) -> dict[str, torch.Tensor]:
        """The distortion terms plus ``gan_weight * LSGAN_G + lambda_FM * FM`` with D judging x_hat."""
        terms = super().codec_objective(x, out)
        with torch.no_grad():
            real = self.discriminator(x)
        fake = self.discriminator(out.x_hat)
        cfg = self.loss_config
        g_loss = generator_loss(fake, cfg.adversarial_scales)
        fm = feature_matching_loss(real, fake, cfg.feature_matching)
        terms["loss"] = terms["loss"] + cfg.gan_weight * g_loss + cfg.feature_matching_weight * fm
        return terms | {"g_loss": g_loss.detach(), "feature_matching": fm.detach()}

    def steps_after_codec(
        self, x: torch.Tensor, out: GC2018Output, others: list[torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """One D step after the E/G step: on the next sub-batch, reconstructed by the updated E/G without
        gradient (``next``), or on ``x`` and its detached reconstruction (``same``)."""
        if others:
            x = others[0]
            with torch.no_grad():
                x_hat = self.model(x).x_hat
        else:
            x_hat = out.x_hat.detach()
        factor = self.loss_config.discriminator_loss_factor
        d_loss = discriminator_loss(self.discriminator(x), self.discriminator(x_hat), factor)
        self.optimizer_step_on("discriminator", d_loss)
        return {"d_loss": d_loss.detach()}
