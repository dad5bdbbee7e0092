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

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from hific_lit.models.gc2018.discriminator import DiscriminatorOutput

FEATURE_MATCHING = ("sum", "pix2pixhd")
"""Feature matching over D's layers: the port's plain sum, or pix2pixHD's weights ``4 / layers`` and ``1 / scales``."""
ADVERSARIAL_SCALES = ("full", "all")
"""Which scales' logits G's least-squares term reads: the full-resolution D only (the port) or every scale."""

GC2018_ADAM = {"lr": 2e-4, "betas": (0.5, 0.999)}
"""E/G's and D's optimizer: Adam, lr 2e-4, beta1 0.5 (pix2pixHD's, which the paper follows; the TF1 port's G/D
rate). Hydra's ``optimizer=gc2018`` node (:mod:`hific_lit.config.store`)."""
PRIOR_ADAM = {"lr": 1e-2}
"""The categorical prior's optimizer: Adam, lr 1e-2 (ours: the paper codes at the bound ``C log2(L)`` and has no
prior to fit). Hydra's ``optimizer=gc2018_prior`` node."""


@dataclass(frozen=True)
class GC2018Loss:
    """Weights of GC2018's objective (the paper; the numbers as in the TF1 port's config.py).

    ``distortion_weight`` lambda multiplies the MSE of images in [-1, 1] (the generator's tanh range):
    10 (paper; ``lambda_X`` in the port). ``feature_matching_weight`` 10 (pix2pixHD's lambda,
    ``feature_matching_weight`` in the port). ``perceptual_weight`` is optional (pix2pixHD's VGG term
    has weight 10; 0 leaves it out). ``gan_weight`` 1 scales the LSGAN term of G.

    The form of the terms, where the paper is silent, is the TF1 port's (``model.py`` lines 119-133):
    ``feature_matching`` ``sum`` (all layers of all scales, weight 1 each; ``pix2pixhd``: ``4 / layers`` and
    ``1 / scales``, a third of it), ``adversarial_scales`` ``full`` (G's LSGAN term from the full-resolution D
    only; ``all``: every scale, pix2pixHD) and ``discriminator_loss_factor`` 1 (pix2pixHD: 0.5).
    Hydra's ``gc2018_loss=default`` node is made from these defaults (:mod:`hific_lit.config.store`).
    """

    distortion_weight: float = 10.0
    feature_matching_weight: float = 10.0
    perceptual_weight: float = 0.0
    gan_weight: float = 1.0
    feature_matching: str = "sum"
    adversarial_scales: str = "full"
    discriminator_loss_factor: float = 1.0

    def __post_init__(self) -> None:
        if self.feature_matching not in FEATURE_MATCHING:
            known = ", ".join(FEATURE_MATCHING)
            raise ValueError(f"unknown feature_matching {self.feature_matching!r}; expected one of: {known}")
        if self.adversarial_scales not in ADVERSARIAL_SCALES:
            known = ", ".join(ADVERSARIAL_SCALES)
            raise ValueError(f"unknown adversarial_scales {self.adversarial_scales!r}; expected one of: {known}")


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
