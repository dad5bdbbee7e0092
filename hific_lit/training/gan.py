"""Stage 2 of HiFiC's training: the base stage plus a conditional discriminator (Mentzer et al. 2020, Sec. 3).

Each iteration trains on N + 1 sub-batches, as the authors' code (tensorflow/compression
``models/hific/model.py``: ``build_input`` fetches (N+1) batches, ``build_model`` makes D's train ops
run before the generator's): first N discriminator steps, each on its own sub-batch with its own
forward pass of the codec, then the codec (generator) step on ``λ'·R + k_M·MSE + k_P·LPIPS + β·G_loss``
on the first sub-batch, judged by the updated D, then the aux step. N = 1 (``num_steps_disc``). D always
sees the detached ``y_hat`` as its condition. Usually warm-started from a base-stage checkpoint (``warmstart=``).

With a realism-conditioned codec (MRIC, ``arch.realism_conditioning``), every forward pass in training draws
β per image from [0, β_max], and the codec's G loss is weighted per image by that β (so is LPIPS, in the base
objective). D does not see β: it tells real images from reconstructions given ``y_hat``, as in the MRIC
reimplementation (Nikolai10/MRIC: ``PatchDiscriminator`` on image and latent only). A reconstruction made
at small β is easy to call fake, but its G gradient is weighted by that small β, so D's verdict on it
barely reaches g_s; at large β D is HiFiC's D. docs/fidelity.md, MRIC rows.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hific_lit.models.hific.model import HiFiCOutput
from hific_lit.training.base import RDStage
from hific_lit.training.losses import discriminator_loss, generator_losses, realism_weighted


class GANStage(RDStage):
    """The base stage's objective plus β·G_loss; ``discriminator_steps`` D steps before each codec step.

    Args:
        discriminator: D(x | y_hat), e.g. :class:`hific_lit.nn.Discriminator`; it is this stage's,
            not the codec's, so inference checkpoints never hold it.
        discriminator_steps: D steps per iteration, each on its own sub-batch (authors: 1).
        *args, **kwargs: as :class:`~hific_lit.training.base.RDStage`, whose ``discriminator_optimizer``
            is used here.
    """

    optimizer_names = ("codec", "aux", "discriminator")

    def __init__(self, *args: Any, discriminator: nn.Module, discriminator_steps: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if discriminator_steps < 1:
            raise ValueError(f"discriminator_steps must be >= 1, got {discriminator_steps}")
        self.discriminator = discriminator
        self.discriminator_steps = discriminator_steps

    @property
    def sub_batches_per_iteration(self) -> int:
        """One sub-batch per D step plus the codec's (the authors' ``num_steps_disc + 1``)."""
        return self.discriminator_steps + 1

    @property
    def optimizers_per_iteration(self) -> int:
        """Codec, aux and one step per D sub-batch."""
        return 2 + self.discriminator_steps

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """The codec's groups plus ``discriminator``; asserts that D shares no parameter with the codec."""
        groups = super().parameter_groups()
        groups["discriminator"] = list(self.discriminator.parameters())
        codec_ids = {id(p) for name in ("codec", "aux") for p in groups[name]}
        assert not codec_ids & {id(p) for p in groups["discriminator"]}, "D shares parameters with the codec"
        return groups

    def codec_objective(self, x: torch.Tensor, out: HiFiCOutput) -> dict[str, torch.Tensor]:
        """The base objective plus β·G_loss, with D judging x_hat given the detached y_hat."""
        terms = super().codec_objective(x, out)
        d_fake = self.discriminator(out.x_hat, out.y_hat.detach())
        g_losses = generator_losses(d_fake, self.loss_config.gan_loss)
        terms["loss"] = terms["loss"] + self.loss_config.beta * realism_weighted(g_losses, out.beta)
        terms["g_loss"] = g_losses.detach().mean()
        if out.beta is not None:
            terms["realism_beta"] = out.beta.mean()
        return terms

    def steps_before_codec(self, sub_batches: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """One D step per sub-batch: the codec encodes and decodes it (no gradient to the codec), and D
        learns real ``x`` from the reconstruction, both conditioned on that pass's ``y_hat``."""
        terms: dict[str, torch.Tensor] = {}
        for x in sub_batches:
            with torch.no_grad():
                out = self.model(x)
            d_real = self.discriminator(x, out.y_hat)
            d_fake = self.discriminator(out.x_hat, out.y_hat)
            d_loss = discriminator_loss(d_real, d_fake, self.loss_config.gan_loss)
            self.optimizer_step_on("discriminator", d_loss)
            terms = {
                "d_loss": d_loss.detach(),
                "d_real": torch.sigmoid(d_real.detach()).mean(),
                "d_fake": torch.sigmoid(d_fake.detach()).mean(),
            }
        return terms

    def validation_terms(self, x: torch.Tensor, out: HiFiCOutput) -> dict[str, torch.Tensor]:
        """The base stage's validation terms plus D's mean probability on real and reconstructed images."""
        terms = super().validation_terms(x, out)
        terms["d_real"] = torch.sigmoid(self.discriminator(x, out.y_hat)).mean()
        terms["d_fake"] = torch.sigmoid(self.discriminator(out.x_hat, out.y_hat)).mean()
        return terms
