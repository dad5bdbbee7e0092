"""GC2018's adversarial losses (Agustsson et al. 2018, App. A; pix2pixHD, Wang et al. 2018).

The GAN objective is least squares (LSGAN, ``f(y) = (y - 1)^2``, ``g(y) = y^2``) over the scales of
:class:`~hific_lit.models.gc2018.discriminator.MultiscaleDiscriminator`; the generator also matches D's
intermediate features of x and x_hat (pix2pixHD's feature-matching loss, weight 10 in the paper). Where the
paper is silent, the form is the TF1 port's (Justin-Tan/generative-compression at 38d34c8, ``model.py`` lines
119-133; ``tests/fixtures/gc2018`` holds its values): D's loss summed over the three scales and not halved, G's
least-squares term of the full-resolution D only, feature matching summed over all layers of all scales.
pix2pixHD's forms are options. docs/fidelity.md, rows G5, G6 and G16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hific_lit.models.gc2018.discriminator import DiscriminatorOutput

FEATURE_MATCHING = ("sum", "pix2pixhd")
"""Feature matching over D's layers: the port's plain sum, or pix2pixHD's weights ``4 / layers`` and ``1 / scales``."""
ADVERSARIAL_SCALES = ("full", "all")
"""Which scales' logits G's least-squares term reads: the full-resolution D only (the port) or every scale."""


def discriminator_loss(real: DiscriminatorOutput, fake: DiscriminatorOutput, factor: float = 1.0) -> torch.Tensor:
    """LSGAN loss of D, ``(D_k(x) - 1)^2 + D_k(x_hat)^2`` summed over the scales k, times ``factor``
    (the port: 1, ``model.py`` lines 120-125; pix2pixHD halves it)."""
    total = sum(((r[-1] - 1.0).pow(2).mean() + f[-1].pow(2).mean()) for r, f in zip(real, fake, strict=True))
    return factor * total


def generator_loss(fake: DiscriminatorOutput, scales: str = "full") -> torch.Tensor:
    """LSGAN loss of G, ``(D_k(x_hat) - 1)^2``: of the full-resolution D only (``full``, the port's ``model.py``
    line 121) or summed over every scale (``all``, pix2pixHD)."""
    if scales not in ADVERSARIAL_SCALES:
        raise ValueError(f"unknown scales {scales!r}; expected one of: {', '.join(ADVERSARIAL_SCALES)}")
    used = fake[:1] if scales == "full" else fake
    return sum((f[-1] - 1.0).pow(2).mean() for f in used)


def feature_matching_loss(real: DiscriminatorOutput, fake: DiscriminatorOutput, kind: str = "sum") -> torch.Tensor:
    """Feature matching: mean |D_k^(i)(x) - D_k^(i)(x_hat)| over the intermediate layers i of each scale k, summed
    (``sum``: the port's ``model.py`` lines 130-133, 12 terms for 3 scales of 4 layers) or weighted ``4 / layers`` per
    layer and ``1 / scales`` per scale (``pix2pixhd``, a third of the port's for the paper's D). The real features
    are targets (detached)."""
    if kind not in FEATURE_MATCHING:
        raise ValueError(f"unknown feature matching {kind!r}; expected one of: {', '.join(FEATURE_MATCHING)}")
    total = real[0][0].new_zeros(())
    for r, f in zip(real, fake, strict=True):
        layers = len(r) - 1
        weight = 1.0 if kind == "sum" else (4.0 / layers) / len(real)
        for feat_real, feat_fake in zip(r[:-1], f[:-1], strict=True):
            total = total + weight * F.l1_loss(feat_fake, feat_real.detach())
    return total
