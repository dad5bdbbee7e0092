"""Gaussian conditional for the latent y given the hyperprior's mean and scale."""

from __future__ import annotations

import math

import torch
from torch import nn

from hific_lit.entropy.ops import add_uniform_noise, lower_bound, quantize_around

SCALE_LOWER_BOUND = 0.11
"""sigma >= 0.11, the lowest scale of the coding table (as TFC and CompressAI)."""


def standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    """Phi(x) computed through erfc, accurate far into the lower tail."""
    return 0.5 * torch.erfc(-x / math.sqrt(2.0))


class GaussianConditional(nn.Module):
    """p(y_hat | mu, sigma) = N(mu, sigma^2) convolved with U(-1/2, 1/2), at integers around mu.

    Mean-scale hyperprior of Minnen et al. 2018 (eq. 3), as used by HiFiC. The likelihood is
    evaluated on the centred magnitude v = |y - mu| as ``Phi((1/2 - v)/sigma) - Phi((-1/2 - v)/sigma)``,
    which stays accurate in the tails.
    """

    def __init__(self, scale_bound: float = SCALE_LOWER_BOUND, likelihood_bound: float = 1e-9) -> None:
        super().__init__()
        self.scale_bound = scale_bound
        self.likelihood_bound = likelihood_bound

    def likelihood(self, y: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """p(y) for y already quantized (or noised), elementwise."""
        sigma = lower_bound(sigma, self.scale_bound)
        v = torch.abs(y - mu)
        p = standard_normal_cdf((0.5 - v) / sigma) - standard_normal_cdf((-0.5 - v) / sigma)
        return lower_bound(p, self.likelihood_bound)

    def forward(
        self, y: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(y_hat, p(y_tilde), p(y_hat))``.

        ``y_hat = round(y - mu) + mu`` (straight-through in training) is what the generator sees;
        in training the rate uses ``y_tilde = y + U(-1/2, 1/2)``, in evaluation ``y_hat``.
        """
        y_hat = quantize_around(y, mu, straight_through=self.training)
        p_hat = self.likelihood(y_hat, mu, sigma)
        p_tilde = self.likelihood(add_uniform_noise(y), mu, sigma) if self.training else p_hat
        return y_hat, p_tilde, p_hat
