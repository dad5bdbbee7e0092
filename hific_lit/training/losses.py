"""HiFiC's training objective: rate, distortion, perceptual and adversarial terms, and their schedules.

The codec (E, G) minimises (Mentzer et al. 2020, eq. 3 and Sec. 4.2)::

    L_EG = λ'·r(y) + k_M·MSE(x, x') + k_P·LPIPS(x, x') - β·log D(x', y)

with MSE on images scaled to 0..255 (a realism-conditioned model, MRIC, weights LPIPS and G per image by the
realism β its reconstruction was made with: :func:`realism_weighted`), and the discriminator minimises
``-log(1 - D(x', y)) - log D(x, y)``. The rate weight λ' is λ_A when the batch's rounded bitrate
exceeds the target rate and λ_B otherwise (eq. 4).

The numbers follow the authors' code (tensorflow/compression ``models/hific/configs.py``), which writes
the rate term as ``C/λ · R`` with ``λ = lmbda_a`` above the target and ``lmbda_b`` below
(``model.py`` ``_get_weighted_rate_loss``): ``C = 0.1·2^-5``, ``lmbda_a = 0.1·2^-6``,
``lmbda_b = 0.1·2^1`` give rate weights λ_A = 2 and λ_B = 2^-6 (the paper's text says λ_B = 2^-4).
For the first 50,000 steps that λ is multiplied by 2 (``lambda_schedule vals=[2., 1.]``), so the rate
*weight* is halved, while the target is raised by 0.20/0.14 (``target_schedule``). See docs/fidelity.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

GAN_LOSSES = ("non_saturating", "least_squares")


@dataclass(frozen=True)
class Regime:
    """A rate regime: the target rate r_t, the rate weight λ_A above it and λ_B at or below it (eq. 4).

    ``lambda_b`` is the authors' code's ``C / lmbda_b = 0.1·2^-5 / (0.1·2^1) = 2^-6`` (``configs.py``); the
    paper's text says 2^-4 (``regime.lambda_b=0.0625``). Hydra's ``regime`` group is :data:`REGIMES`
    (:mod:`hific_lit.config.store`).
    """

    target_bpp: float
    lambda_a: float
    lambda_b: float = 2.0**-6


REGIMES = {"low": Regime(0.14, 2.0), "med": Regime(0.30, 1.0), "high": Regime(0.45, 0.5)}
"""HiFiC^Lo, ^Mi, ^Hi (Mentzer et al. 2020, Table 4): target rates 0.14 / 0.30 / 0.45 bpp, λ_A 2 / 1 / 1/2."""

ADAM_LR = 1e-4
"""The learning rate of every optimizer (codec, aux, discriminator): Adam at 1e-4 (Mentzer et al. 2020, App. A.2;
the authors' ``configs.py`` ``lr``). Hydra's ``optimizer=adam`` node (:mod:`hific_lit.config.store`)."""


@dataclass(frozen=True)
class LossConfig:
    """The weights of the objective: the ``med`` regime, numbers from the authors' code (see module doc).

    ``lambda_a`` and ``lambda_b`` are rate *weights* (the paper's λ, the code's ``C / lmbda``);
    ``warmup_rate_weight_factor`` multiplies the weight during warm-up (code: λ ×2, so the weight ×1/2).
    A rate-conditioned model (``arch.rate_conditioning``) has a target and a λ_A per anchor instead,
    ``anchor_targets`` and ``anchor_lambda_a`` (``regime=rate``: the paper's low, med and high), each anchor decided
    on its own images; ``lambda_b`` and the warm-up apply to every anchor.
    """

    target_bpp: float = REGIMES["med"].target_bpp
    lambda_a: float = REGIMES["med"].lambda_a
    lambda_b: float = REGIMES["med"].lambda_b
    k_m: float = 0.075 * 2.0**-5
    k_p: float = 1.0
    beta: float = 0.15
    warmup_iterations: int = 50_000
    warmup_rate_weight_factor: float = 0.5
    warmup_target_factor: float = 0.20 / 0.14
    gan_loss: str = "non_saturating"
    k_colour: float = 0.0
    """Weight of the colour term, MSE (0..255) of 8x8-block means (:func:`block_mean_mse`); the paper has none (0).
    It weighs the local mean colour that the colour error measures (an option; docs/bundled.md says what it did)."""
    k_green_magenta: float = 0.0
    """Weight of the green-magenta term, MSE (0..255) of the error's G - (R + B)/2 (:func:`green_magenta_mse`); the
    paper has none (0). The MSE alone left the bundled model without that colour axis (docs/bundled.md)."""
    anchor_targets: tuple[float, ...] = ()
    anchor_lambda_a: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for name in ("anchor_targets", "anchor_lambda_a"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name) or ()))
        if len(self.anchor_targets) != len(self.anchor_lambda_a):
            raise ValueError("anchor_targets and anchor_lambda_a need one entry per rate anchor each")
        if any(t <= 0 for t in self.anchor_targets) or any(w < 0 for w in self.anchor_lambda_a):
            raise ValueError("anchor_targets must be > 0 and anchor_lambda_a >= 0")
        if self.gan_loss not in GAN_LOSSES:
            raise ValueError(f"unknown gan_loss {self.gan_loss!r}; known: {', '.join(GAN_LOSSES)}")
        if self.target_bpp <= 0 or self.lambda_a < 0 or self.lambda_b < 0:
            raise ValueError("target_bpp must be > 0 and lambda_a, lambda_b >= 0")
        weights = (self.warmup_iterations, self.warmup_rate_weight_factor, self.k_colour, self.k_green_magenta)
        if min(weights) < 0:
            raise ValueError("warmup_iterations, warmup_rate_weight_factor, k_colour and k_green_magenta must be >= 0")

    def in_warmup(self, iteration: int) -> bool:
        """Whether ``iteration`` (0-based, our own counter) is inside the warm-up."""
        return iteration < self.warmup_iterations

    def target_at(self, iteration: int | None, anchor: int | None = None) -> float:
        """Target rate r_t (of rate ``anchor``) at ``iteration``; ``None`` means after every warm-up (validation)."""
        target = self.target_bpp if anchor is None else self.anchor_targets[anchor]
        if iteration is not None and self.in_warmup(iteration):
            return target * self.warmup_target_factor
        return target

    def rate_weight(self, bpp_rounded: float, iteration: int | None, anchor: int | None = None) -> float:
        """λ' of eq. 4: λ_A above the target rate, λ_B at or below it, times the warm-up factor in warm-up.

        ``bpp_rounded`` is the batch's bitrate with rounded latents (the code's ``total_qbpp``); with ``anchor``,
        that of the batch's images at that rate anchor, against the anchor's target and λ_A.
        """
        lambda_a = self.lambda_a if anchor is None else self.anchor_lambda_a[anchor]
        weight = lambda_a if bpp_rounded > self.target_at(iteration, anchor) else self.lambda_b
        if iteration is not None and self.in_warmup(iteration):
            weight *= self.warmup_rate_weight_factor
        return weight


@dataclass(frozen=True)
class LRSchedule:
    """Piecewise-constant learning rate: ``factor`` times lower from ``decay_iteration`` on (authors'
    ``configs.py`` ``lr_schedule``), after an optional linear warm-up over ``warmup_iterations``
    (authors: none; short CPU runs such as the demo use one to start at a high rate safely)."""

    decay_iteration: int = 500_000
    factor: float = 0.1
    warmup_iterations: int = 0

    def __post_init__(self) -> None:
        if self.warmup_iterations < 0 or self.decay_iteration < 0 or self.factor < 0:
            raise ValueError("decay_iteration, factor and warmup_iterations must be >= 0")

    def multiplier(self, iteration: int) -> float:
        """Factor applied to each optimizer's initial learning rate at ``iteration`` (0-based)."""
        warmup = min(1.0, (iteration + 1) / self.warmup_iterations) if self.warmup_iterations else 1.0
        return warmup * (self.factor if iteration >= self.decay_iteration else 1.0)


def mse_255(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Mean squared error of images in [0, 1], measured on the 0..255 scale (as the paper's k_M assumes)."""
    return F.mse_loss(x_hat * 255.0, x * 255.0)


def block_mean_mse(x: torch.Tensor, x_hat: torch.Tensor, block: int = 8) -> torch.Tensor:
    """:func:`mse_255` of the ``block x block`` means of two images: the error of their local mean colours (the
    quantity :func:`hific_lit.eval.metrics.colour_error` measures in CIELAB)."""
    return mse_255(F.avg_pool2d(x, block), F.avg_pool2d(x_hat, block))


def green_magenta_mse(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Mean square (0..255 scale) of the error's green-magenta component, G - (R + B)/2. An error along grey
    (1, 1, 1) or along red-blue (1, 0, -1), the two axes orthogonal to it, adds nothing; one of t levels along
    (-1/2, 1, -1/2) adds (3t/2)^2, where the pixel MSE adds t^2/2."""
    error = (x_hat - x) * 255.0
    return (error[:, 1] - (error[:, 0] + error[:, 2]) / 2).pow(2).mean()


def psnr(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of per-image PSNR in dB for images in [0, 1] (x_hat clamped to [0, 1])."""
    mse = (x_hat.clamp(0.0, 1.0) - x).pow(2).flatten(1).mean(dim=1)
    return (10.0 * torch.log10(1.0 / mse.clamp_min(1e-10))).mean()


def generator_loss(d_fake: torch.Tensor, kind: str = "non_saturating") -> torch.Tensor:
    """Adversarial term of the codec: ``-log D(x')`` (non-saturating) or ``(D(x') - 1)^2`` (least squares).

    ``d_fake`` are D's logits on the reconstruction.
    """
    return generator_losses(d_fake, kind).mean()


def generator_losses(d_fake: torch.Tensor, kind: str = "non_saturating") -> torch.Tensor:
    """:func:`generator_loss` of each image (B,): the mean over its logits (D's patches)."""
    if kind == "non_saturating":
        return F.softplus(-d_fake).flatten(1).mean(dim=1)
    if kind == "least_squares":
        return (torch.sigmoid(d_fake) - 1.0).pow(2).flatten(1).mean(dim=1)
    raise ValueError(f"unknown gan_loss {kind!r}; known: {', '.join(GAN_LOSSES)}")


def realism_weighted(per_image: torch.Tensor, beta: torch.Tensor | None) -> torch.Tensor:
    """``mean_i β_i · term_i``: a realism term weighted per image by the β its reconstruction was made with
    (MRIC, Agustsson et al. 2023; Nikolai10/MRIC ``amtm2023.py``: ``reduce_mean(betas * lpips)``,
    ``reduce_mean(betas * g_loss)``); the plain batch mean when ``beta`` is ``None`` (HiFiC)."""
    return per_image.mean() if beta is None else (beta.to(per_image.dtype) * per_image).mean()


def perceptual_term(
    perceptual: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    x_hat: torch.Tensor,
    beta: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean LPIPS, the LPIPS term before k_P): the same without ``beta``; with it, β-weighted per image
    (:func:`realism_weighted`; ``perceptual`` is a batch-mean distance, so it runs image by image)."""
    if beta is None:
        lpips = perceptual(x, x_hat)
        return lpips, lpips
    per_image = torch.stack([perceptual(x[i : i + 1], x_hat[i : i + 1]) for i in range(x.shape[0])])
    return per_image.mean(), realism_weighted(per_image, beta)


def discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor, kind: str = "non_saturating") -> torch.Tensor:
    """``-log D(x) - log(1 - D(x'))`` (non-saturating) or ``(D(x) - 1)^2 + D(x')^2`` (least squares), from logits."""
    if kind == "non_saturating":
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
    if kind == "least_squares":
        return (torch.sigmoid(d_real) - 1.0).pow(2).mean() + torch.sigmoid(d_fake).pow(2).mean()
    raise ValueError(f"unknown gan_loss {kind!r}; known: {', '.join(GAN_LOSSES)}")
