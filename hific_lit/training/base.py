"""Stage 1 of HiFiC's training: the codec on rate, MSE and LPIPS, without a discriminator.

One *iteration* is one training batch: a codec step on ``λ'·R + k_M·MSE + k_P·LPIPS``
(Mentzer et al. 2020, eq. 3 without the GAN term) and an aux step on the factorized prior's
quantiles, each on its own optimizer (manual optimization). A stage may train on several
sub-batches per iteration (the GAN stage: D's, then the codec's); it asks the data module for them.
Warm-up and learning-rate schedules follow :attr:`iteration`, our own counter saved in checkpoints;
Lightning's ``global_step`` counts optimizer steps instead (two or three per iteration).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from hific_lit.data.base import CropDataModule
from hific_lit.entropy.tables import CodingBuffers
from hific_lit.errors import CheckpointError
from hific_lit.models.base import Codec
from hific_lit.models.hific.arch import ArchConfig
from hific_lit.models.hific.model import HiFiC, HiFiCOutput
from hific_lit.training.losses import (
    ADAM_LR,
    LossConfig,
    LRSchedule,
    block_mean_mse,
    green_magenta_mse,
    mse_255,
    perceptual_term,
    psnr,
)

log = logging.getLogger(__name__)

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
"""Builds an optimizer from parameters; Hydra passes ``torch.optim.Adam`` with ``_partial_: true``."""

ITERATION_KEY = "hific_iteration"
ARCH_KEY = "hific_arch"
MODEL_KEY = "hific_model"
METRICS_KEY = "hific_metrics"
"""Entries of every stage's Lightning checkpoints: our iteration counter, the model's architecture and its kind,
and the latest value of every metric logged so far."""


def scalar_metrics(metrics: Mapping[str, object]) -> dict[str, float]:
    """The one-number entries of Lightning's ``callback_metrics``, as floats."""
    return {k: float(v) for k, v in metrics.items() if isinstance(v, torch.Tensor) and v.numel() == 1}


def default_adam(params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """Adam at the paper's learning rate (:data:`~hific_lit.training.losses.ADAM_LR`)."""
    return torch.optim.Adam(params, lr=ADAM_LR)


def check_same_kernel_form(own: Mapping, stored: Mapping | None) -> None:
    """Refuse, in one line, to resume a checkpoint whose h_a kernels have the other form (``plain``/``rdft``): its
    optimizer state belongs to the stored form. A checkpoint written before the field existed holds plain kernels."""
    if not stored or "hyper_analysis_kernel" not in own:
        return
    kernel = stored.get("hyper_analysis_kernel", "plain")
    if kernel != own["hyper_analysis_kernel"]:
        raise CheckpointError(
            f"this run trained h_a's kernels {kernel} and its optimizer state is theirs: resume it with"
            f" arch.hyper_analysis_kernel={kernel}, or start a new stage from it (warmstart=) to change them"
        )


class IterationCheckpointing:
    """Lightning hooks of every stage: our iteration counter, the model's architecture and its kind go into each
    checkpoint (:data:`ITERATION_KEY`, :data:`ARCH_KEY`, :data:`MODEL_KEY`), and the counter comes back on resume;
    so do the metrics logged so far (:data:`METRICS_KEY`, as :attr:`metrics_before_resume`), which a run resumed
    after its last validation still reports."""

    iteration: int
    model: Codec
    metrics_before_resume: Mapping[str, float] = MappingProxyType({})

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[ITERATION_KEY] = self.iteration
        checkpoint[ARCH_KEY] = self.model.arch.to_dict()
        checkpoint[MODEL_KEY] = self.model.kind
        trainer = self._trainer
        logged = {} if trainer is None else scalar_metrics(trainer.callback_metrics)
        checkpoint[METRICS_KEY] = dict(self.metrics_before_resume) | logged

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.iteration = int(checkpoint.get(ITERATION_KEY, 0))
        check_same_kernel_form(self.model.arch.to_dict(), checkpoint.get(ARCH_KEY))
        self.metrics_before_resume = dict(checkpoint.get(METRICS_KEY, {}))
        log.info("resumed at iteration %d", self.iteration)


class ManualSteps:
    """Manual optimization by optimizer name, in Lightning's canonical shape, and the sub-batches each iteration
    draws from the data module (every stage's steps)."""

    optimizer_names: tuple[str, ...]
    gradient_clip: dict[str, float | None]

    def named_optimizers(self) -> dict[str, pl.core.optimizer.LightningOptimizer]:
        """This stage's optimizers by name, in the order of :attr:`optimizer_names`."""
        opts = self.optimizers()
        opts = opts if isinstance(opts, list) else [opts]
        return dict(zip(self.optimizer_names, opts, strict=True))

    def optimizer_step_on(self, name: str, loss: torch.Tensor) -> None:
        """toggle → zero_grad → backward → clip → step for the optimizer ``name`` (Lightning's canonical shape)."""
        opt = self.named_optimizers()[name]
        with self.toggled_optimizer(opt):
            opt.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            clip = self.gradient_clip.get(name)
            if clip is not None:
                self.clip_gradients(opt, gradient_clip_val=clip, gradient_clip_algorithm="norm")
            opt.step()

    @property
    def sub_batches_per_iteration(self) -> int:
        """Sub-batches of ``batch_size`` crops one iteration trains on: the codec's, plus any for D."""
        return 1

    def setup(self, stage: str) -> None:
        """Ask the data module for :attr:`sub_batches_per_iteration` sub-batches per training batch."""
        datamodule = self.trainer.datamodule
        if isinstance(datamodule, CropDataModule):
            datamodule.sub_batches = self.sub_batches_per_iteration


class RDStage(IterationCheckpointing, ManualSteps, pl.LightningModule):
    """Rate-distortion-perception stage of HiFiC, the base the GAN stage extends.

    Args:
        arch: network sizes (``arch=`` preset).
        loss: weights and warm-up of the objective (``regime=`` fills target and λ).
        perceptual: the LPIPS module, a callable ``(x, x_hat) -> mean distance``; ``None`` drops the
            perceptual term (only with ``loss.k_p == 0``: a rate-MSE model, e.g. the CPU demo).
        codec_optimizer, aux_optimizer: optimizer factories for the codec and the quantiles.
        discriminator_optimizer: optimizer factory for D, used by stages with a discriminator
            (paper: Adam at :data:`~hific_lit.training.losses.ADAM_LR`, one D step per codec step).
        lr_schedule: learning-rate decay along :attr:`iteration`, applied to every optimizer.
        gradient_clip: max gradient norm per optimizer name (``codec``, ``aux``, ``discriminator``);
            missing or ``None`` means no clipping.
        rate_gain_lr_factor: a rate-conditioned model's gains learn at this multiple of the codec's learning rate
            (1: the same; short CPU runs need the anchors to part faster than Adam's steps of about lr each allow).
    """

    optimizer_names: tuple[str, ...] = ("codec", "aux")

    def __init__(
        self,
        arch: ArchConfig,
        loss: LossConfig,
        perceptual: nn.Module | None,
        codec_optimizer: OptimizerFactory = default_adam,
        aux_optimizer: OptimizerFactory = default_adam,
        discriminator_optimizer: OptimizerFactory = default_adam,
        lr_schedule: LRSchedule | None = None,
        gradient_clip: Mapping[str, float | None] | None = None,
        rate_gain_lr_factor: float = 1.0,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.model = HiFiC(arch)
        self.loss_config = loss
        if perceptual is None and loss.k_p != 0:
            raise ValueError(f"perceptual=None drops the LPIPS term, but loss.k_p={loss.k_p}: set loss.k_p=0")
        self.perceptual = perceptual
        self.optimizer_factories: dict[str, OptimizerFactory] = {
            "codec": codec_optimizer,
            "aux": aux_optimizer,
            "discriminator": discriminator_optimizer,
        }
        self.lr_schedule = lr_schedule or LRSchedule()
        self.gradient_clip = dict(gradient_clip or {})
        unknown = set(self.gradient_clip) - {"codec", "aux", "discriminator"}
        if unknown:
            raise ValueError(
                f"gradient_clip names unknown optimizers {sorted(unknown)}; known: codec, aux, discriminator"
            )
        self.iteration = 0
        self.rate_gain_lr_factor = rate_gain_lr_factor
        self._check_anchors(arch, loss)
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(self, self.coding_table_buffers())

    @staticmethod
    def _check_anchors(arch: ArchConfig, loss: LossConfig) -> None:
        """A rate-conditioned model needs one target per rate anchor (``regime=rate``); a fixed-rate one none."""
        if arch.rate_conditioning and len(loss.anchor_targets) != arch.rate_anchors:
            raise ValueError(
                f"a rate-conditioned model with {arch.rate_anchors} anchors needs as many loss.anchor_targets and "
                f"loss.anchor_lambda_a (got {len(loss.anchor_targets)}): regime=rate"
            )
        if not arch.rate_conditioning and loss.anchor_targets:
            raise ValueError("loss.anchor_targets are for a rate-conditioned model: add arch.rate_conditioning=true")

    def coding_table_buffers(self) -> list[str]:
        """Names of the codec's coding-table buffers: built once at export, never synchronised by DDP.

        (gloo cannot broadcast their int16 CDFs, and every rank builds the same tables anyway.)
        """
        tables = [name for name, m in self.named_modules() if isinstance(m, CodingBuffers)]
        return [f"{prefix}.{buffer}" for prefix in tables for buffer, _ in self.get_submodule(prefix).named_buffers()]

    @property
    def optimizers_per_iteration(self) -> int:
        """Optimizer steps per iteration, i.e. how much Lightning's ``global_step`` grows per batch."""
        return len(self.optimizer_names)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """This stage's trainable parameters by optimizer name: the codec's ``codec`` and ``aux`` groups."""
        return self.model.parameter_groups()._asdict()

    def configure_optimizers(self) -> tuple[list[torch.optim.Optimizer], list[torch.optim.lr_scheduler.LRScheduler]]:
        """One optimizer per name in :attr:`optimizer_names`, each with a ``LambdaLR`` following :attr:`lr_schedule`.

        The schedulers step once per iteration (not per optimizer step); Lightning saves and restores
        their state with the run, so a resumed run continues the schedule where it stopped.
        """
        groups = self.parameter_groups()
        gains = [] if self.model.rate_gains is None else list(self.model.rate_gains.parameters())
        if gains:  # the gains in a group of their own, at rate_gain_lr_factor times the codec's learning rate
            own = {id(p) for p in gains}
            groups["codec"] = [{"params": [p for p in groups["codec"] if id(p) not in own]}, {"params": gains}]
        optimizers = [self.optimizer_factories[name](groups[name]) for name in self.optimizer_names]
        if gains:
            optimizers[self.optimizer_names.index("codec")].param_groups[1]["lr"] *= self.rate_gain_lr_factor
        schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, self.lr_schedule.multiplier) for opt in optimizers]
        return optimizers, schedulers

    def step_lr_schedulers(self) -> None:
        """Advance every optimizer's learning-rate scheduler by one iteration."""
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            scheduler.step()

    def rd_terms(self, x: torch.Tensor, out: HiFiCOutput, iteration: int | None) -> dict[str, torch.Tensor]:
        """Rate, distortion and perception terms and their weighted sum ``loss`` (eq. 3 without β·G).

        ``iteration=None`` uses the weights after warm-up, so that validation losses compare over time.
        """
        cfg = self.loss_config
        terms: dict[str, torch.Tensor] = {}
        if out.rate is None:
            decision_bpp = out.bpp_rounded if iteration is None else self.mean_over_ranks(out.bpp_rounded)
            weight = cfg.rate_weight(decision_bpp.item(), iteration)
            rate_term = weight * out.bpp
        else:
            weights, terms = self.anchor_rate_weights(out, iteration)
            decision_bpp, weight = out.bpp_rounded, weights.mean().item()
            rate_term = (weights * out.image_bpp).mean()
        mse = mse_255(x, out.x_hat)
        loss = rate_term + cfg.k_m * mse
        if cfg.k_colour:
            colour = block_mean_mse(x, out.x_hat)
            loss = loss + cfg.k_colour * colour
            terms["colour_mse"] = colour.detach()
        if cfg.k_green_magenta:
            green_magenta = green_magenta_mse(x, out.x_hat)
            loss = loss + cfg.k_green_magenta * green_magenta
            terms["green_magenta_mse"] = green_magenta.detach()
        if self.perceptual is not None:
            lpips, perceptual = perceptual_term(self.perceptual, x, out.x_hat, out.beta)  # β-weighted for MRIC
            loss = loss + cfg.k_p * perceptual
            terms["lpips"] = lpips.detach()
        return terms | {
            "loss": loss,
            "bpp": out.bpp.detach(),
            "bpp_rounded": out.bpp_rounded,
            "decision_bpp": decision_bpp.detach(),
            "rate_weight": torch.tensor(weight),
            "mse": mse.detach(),
            "psnr": psnr(x, out.x_hat.detach()),
        }

    def anchor_rate_weights(
        self, out: HiFiCOutput, iteration: int | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """A rate-conditioned model's rate weight per image (B,): eq. 4 for each rate anchor, decided on the mean
        rounded bitrate of that anchor's images in the global batch (summed over the DDP ranks) against the
        anchor's target; and each anchor's decision bitrate and weight to log (``anchor<k>/...``)."""
        gains = self.model.rate_gains
        anchor = gains.anchor_index(out.rate)
        members = torch.nn.functional.one_hot(anchor, gains.anchors).to(out.image_bpp_rounded.dtype)
        sums = torch.cat([members.T @ out.image_bpp_rounded.detach(), members.sum(0)])
        if iteration is not None:
            sums = self.reduce_over_ranks(sums, "sum")
        weights, terms = torch.zeros(gains.anchors), {}
        for k in range(gains.anchors):
            if sums[gains.anchors + k] > 0:
                decision = sums[k] / sums[gains.anchors + k]
                weights[k] = self.loss_config.rate_weight(decision.item(), iteration, k)
                terms |= {f"anchor{k}/decision_bpp": decision, f"anchor{k}/rate_weight": weights[k].clone()}
        return weights.to(out.image_bpp.device, out.image_bpp.dtype)[anchor], terms

    def reduce_over_ranks(self, value: torch.Tensor, op: str) -> torch.Tensor:
        """``value`` reduced (``"sum"`` or ``"mean"``) over every DDP rank (all-reduce); itself on one process."""
        trainer = self._trainer
        if trainer is None or trainer.world_size == 1:
            return value.detach()
        return trainer.strategy.reduce(value.detach().clone(), reduce_op=op)

    def mean_over_ranks(self, value: torch.Tensor) -> torch.Tensor:
        """``value`` averaged over every DDP rank (all-reduce); itself on one process.

        The λ_A/λ_B decision uses the global batch's rounded bitrate, so that every rank applies the
        same rate weight (the authors decide on the whole batch of 8, ``model.py`` ``total_qbpp``).
        Ranks hold equal local batches, so the mean of their means is the global batch's mean.
        """
        return self.reduce_over_ranks(value, "mean")

    def codec_objective(self, x: torch.Tensor, out: HiFiCOutput) -> dict[str, torch.Tensor]:
        """What the codec step minimises (``loss``) and the terms to log; the GAN stage adds β·G."""
        return self.rd_terms(x, out, self.iteration)

    def split_sub_batches(self, batch: torch.Tensor) -> list[torch.Tensor]:
        """The iteration's :attr:`sub_batches_per_iteration` equal sub-batches, stacked along dimension 0."""
        count = self.sub_batches_per_iteration
        if batch.shape[0] % count:
            raise ValueError(
                f"a training batch of {batch.shape[0]} crops does not split into {count} equal sub-batches; "
                "the data module delivers sub_batches x (batch_size / world_size) crops when the stage asks"
            )
        return list(batch.chunk(count))

    def steps_before_codec(self, sub_batches: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Steps of the iteration before the codec's, on the sub-batches after the first; none in this stage."""
        return {}

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        lr_factor = self.lr_schedule.multiplier(self.iteration)
        x, *others = self.split_sub_batches(batch)
        terms = self.steps_before_codec(others)
        out = self.model(x)
        terms |= self.codec_objective(x, out)
        self.optimizer_step_on("codec", terms["loss"])
        aux = self.model.aux_loss()
        self.optimizer_step_on("aux", aux)
        self.iteration += 1
        self.step_lr_schedulers()
        terms |= {"aux_loss": aux, "lr_factor": torch.tensor(lr_factor), "iteration": torch.tensor(self.iteration)}
        shown = ("loss", "bpp_rounded")
        for prog_bar in (True, False):
            metrics = {f"train/{k}": v.detach().float() for k, v in terms.items() if (k in shown) == prog_bar}
            self.log_dict(metrics, on_step=True, prog_bar=prog_bar, batch_size=x.shape[0])

    def validation_terms(self, x: torch.Tensor, out: HiFiCOutput) -> dict[str, torch.Tensor]:
        """What validation logs: ``rd_loss`` with the post-warm-up weights, and its terms."""
        terms = self.rd_terms(x, out, iteration=None)
        terms["rd_loss"] = terms.pop("loss").detach()
        return {k: v for k, v in terms.items() if k not in ("rate_weight", "decision_bpp") and "/" not in k}

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> dict[str, torch.Tensor]:
        """The validation terms; a rate-conditioned model's at each rate anchor (``anchor<k>/...``) and their means."""
        gains = self.model.rate_gains
        if gains is None:
            out = self.model(batch)
            terms = self.validation_terms(batch, out)
        else:
            anchors = [self.model(batch, rate=float(r)) for r in gains.positions()]
            each = [self.validation_terms(batch, a) for a in anchors]
            terms = {k: torch.stack([t[k].float() for t in each]).mean() for k in each[0]}
            terms |= {f"anchor{i}/{k}": t[k] for i, t in enumerate(each) for k in ("bpp_rounded", "psnr")}
            out = anchors[len(anchors) // 2]
        for prog_bar in (True, False):
            metrics = {f"val/{k}": v for k, v in terms.items() if (k in ("rd_loss", "psnr")) == prog_bar}
            self.log_dict(metrics, prog_bar=prog_bar, sync_dist=True, batch_size=batch.shape[0])
        return {"x_hat": out.x_hat.detach()}
