"""Stage 2 of HiFiC's training: the base stage plus a conditional discriminator (Mentzer et al. 2020, Sec. 3).

Each iteration: a codec (generator) step on ``λ'·R + k_M·MSE + k_P·LPIPS + β·G_loss``, then a
discriminator step on real and (detached) reconstructed images, both conditioned on the detached
``y_hat``, then the aux step. Usually warm-started from a base-stage checkpoint (``warmstart=``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hific_lit.codec import HiFiCOutput
from hific_lit.lit.base import RDStage
from hific_lit.losses import discriminator_loss, generator_loss


class GANStage(RDStage):
    """The base stage's objective plus β·G_loss, alternating codec and discriminator steps.

    Args:
        discriminator: D(x | y_hat), e.g. :class:`hific_lit.nn.Discriminator`; it is this stage's,
            not the codec's, so inference checkpoints never hold it.
        *args, **kwargs: as :class:`~hific_lit.lit.base.RDStage`, whose ``discriminator_optimizer``
            is used here.
    """

    optimizer_names = ("codec", "aux", "discriminator")

    def __init__(self, *args: Any, discriminator: nn.Module, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.discriminator = discriminator

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
        g_loss = generator_loss(d_fake, self.loss_config.gan_loss)
        terms["loss"] = terms["loss"] + self.loss_config.beta * g_loss
        terms["g_loss"] = g_loss.detach()
        return terms

    def after_codec_step(self, x: torch.Tensor, out: HiFiCOutput) -> dict[str, torch.Tensor]:
        """One discriminator step on x (real) and the detached x_hat (fake), conditioned on y_hat."""
        y_hat = out.y_hat.detach()
        d_real = self.discriminator(x, y_hat)
        d_fake = self.discriminator(out.x_hat.detach(), y_hat)
        d_loss = discriminator_loss(d_real, d_fake, self.loss_config.gan_loss)
        self.optimizer_step_on("discriminator", d_loss)
        return {
            "d_loss": d_loss.detach(),
            "d_real": torch.sigmoid(d_real.detach()).mean(),
            "d_fake": torch.sigmoid(d_fake.detach()).mean(),
        }

    def validation_terms(self, x: torch.Tensor, out: HiFiCOutput) -> dict[str, torch.Tensor]:
        """The base stage's validation terms plus D's mean probability on real and reconstructed images."""
        terms = super().validation_terms(x, out)
        terms["d_real"] = torch.sigmoid(self.discriminator(x, out.y_hat)).mean()
        terms["d_fake"] = torch.sigmoid(self.discriminator(out.x_hat, out.y_hat)).mean()
        return terms
