"""GC2018's adversarial losses (Agustsson et al. 2018, App. A; pix2pixHD, Wang et al. 2018).

The GAN objective is least squares (LSGAN, ``f(y) = (y - 1)^2``, ``g(y) = y^2``) over the scales of
:class:`~hific_lit.models.gc2018.discriminator.MultiscaleDiscriminator`; the generator also matches D's
intermediate features of x and x_hat (pix2pixHD's feature-matching loss, weight 10 in the paper).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hific_lit.models.gc2018.discriminator import DiscriminatorOutput


def discriminator_loss(real: DiscriminatorOutput, fake: DiscriminatorOutput) -> torch.Tensor:
    """LSGAN loss of D, ``(D(x) - 1)^2 + D(x_hat)^2`` summed over scales, halved (pix2pixHD)."""
    total = sum(((r[-1] - 1.0).pow(2).mean() + f[-1].pow(2).mean()) for r, f in zip(real, fake, strict=True))
    return 0.5 * total


def generator_loss(fake: DiscriminatorOutput) -> torch.Tensor:
    """LSGAN loss of G, ``(D(x_hat) - 1)^2`` summed over scales."""
    return sum((f[-1] - 1.0).pow(2).mean() for f in fake)


def feature_matching_loss(real: DiscriminatorOutput, fake: DiscriminatorOutput) -> torch.Tensor:
    """pix2pixHD's feature matching: mean |D_k^(i)(x) - D_k^(i)(x_hat)| over the intermediate layers i of each scale k,
    weighted ``4 / layers`` per layer and ``1 / scales`` per scale; the real features are targets (detached)."""
    total = real[0][0].new_zeros(())
    for r, f in zip(real, fake, strict=True):
        layers = len(r) - 1
        for feat_real, feat_fake in zip(r[:-1], f[:-1], strict=True):
            total = total + (4.0 / layers) / len(real) * F.l1_loss(feat_fake, feat_real.detach())
    return total
