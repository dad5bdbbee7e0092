"""Unit tests of the entropy models (likelihoods, quantization, quantiles)."""

from __future__ import annotations

import math

import pytest
import torch

from hific_lit.entropy import (
    SCALE_LOWER_BOUND,
    FactorizedPrior,
    GaussianConditional,
    LogisticConditional,
    make_conditional,
)
from hific_lit.entropy.ops import lower_bound, quantize_around


def test_gaussian_likelihood_matches_discretised_normal() -> None:
    gc = GaussianConditional()
    mu, sigma = torch.tensor([0.3]), torch.tensor([1.7])
    y = torch.tensor([2.3])
    normal = torch.distributions.Normal(mu, sigma)
    expected = normal.cdf(y + 0.5) - normal.cdf(y - 0.5)
    assert torch.allclose(gc.likelihood(y, mu, sigma), expected, atol=1e-6)


def test_gaussian_pmf_sums_to_one_and_respects_scale_bound() -> None:
    gc = GaussianConditional()
    values = torch.arange(-60, 61, dtype=torch.float32)
    for s in (0.01, SCALE_LOWER_BOUND, 1.0, 10.0):
        p = gc.likelihood(values, torch.zeros(()), torch.tensor(s))
        assert abs(p.sum().item() - 1.0) < 1e-4
    tiny_scale = gc.likelihood(torch.zeros(1), torch.zeros(1), torch.tensor([1e-6]))
    at_bound = gc.likelihood(torch.zeros(1), torch.zeros(1), torch.tensor([SCALE_LOWER_BOUND]))
    assert torch.equal(tiny_scale, at_bound)


def test_likelihoods_in_unit_interval_even_far_in_the_tail() -> None:
    gc = GaussianConditional()
    y = torch.tensor([0.0, 1e3, -1e6])
    p = gc.likelihood(y, torch.zeros(3), torch.full((3,), 0.2))
    assert torch.all(p > 0) and torch.all(p <= 1)


def test_gaussian_training_uses_noise_and_straight_through_rounding() -> None:
    gc = GaussianConditional().train()
    y = torch.randn(2, 3, 4, 4, requires_grad=True)
    mu = torch.randn(2, 3, 4, 4)
    y_hat, p_tilde, p_hat = gc(y, mu, torch.ones_like(mu))
    assert torch.allclose(y_hat - mu, torch.round(y - mu).detach(), atol=1e-6)
    assert not torch.allclose(p_tilde, p_hat)
    y_hat.sum().backward()
    assert torch.equal(y.grad, torch.ones_like(y))
    gc.eval()
    _, p_tilde, p_hat = gc(y, mu, torch.ones_like(mu))
    assert torch.equal(p_tilde, p_hat)


def test_factorized_pmf_sums_to_one() -> None:
    prior = FactorizedPrior(3)
    values = torch.arange(-200, 201, dtype=torch.float32).view(1, 1, -1, 1).expand(1, 3, -1, 1)
    p = prior.likelihood(values)
    assert torch.allclose(p.sum(dim=2).flatten(), torch.ones(3), atol=1e-4)
    assert torch.all(p > 0) and torch.all(p <= 1)


def test_aux_loss_trains_only_the_quantiles() -> None:
    prior = FactorizedPrior(4)
    opt = torch.optim.Adam([prior.quantiles], lr=1.0)
    before = prior.aux_loss().item()
    for _ in range(400):
        opt.zero_grad()
        loss = prior.aux_loss()
        loss.backward()
        assert all(p.grad is None for p in prior.density_parameters())
        opt.step()
    assert prior.aux_loss().item() < 0.01 * before
    q = prior.quantiles.detach()
    assert torch.all(q[:, 0, 0] < q[:, 0, 1]) and torch.all(q[:, 0, 1] < q[:, 0, 2])


def test_factorized_rounds_around_the_medians() -> None:
    prior = FactorizedPrior(2).eval()
    with torch.no_grad():
        prior.quantiles[:, 0, 1] = torch.tensor([0.25, -0.4])
    z = torch.randn(1, 2, 3, 3) * 3
    z_hat, _, _ = prior(z)
    offsets = z_hat - prior.medians()
    assert torch.allclose(offsets, offsets.round(), atol=1e-5)


def test_lower_bound_lets_gradient_push_up() -> None:
    x = torch.tensor([0.01, 0.5], requires_grad=True)
    y = lower_bound(x, 0.11)
    assert torch.allclose(y, torch.tensor([0.11, 0.5]))
    (-y.sum()).backward()  # gradient descent would increase both: both pass
    assert torch.equal(x.grad, torch.tensor([-1.0, -1.0]))
    x.grad = None
    lower_bound(x, 0.11).sum().backward()  # would push the bounded one further down: blocked
    assert torch.equal(x.grad, torch.tensor([0.0, 1.0]))


def test_quantize_around_is_exact_integer_offset() -> None:
    x, c = torch.tensor([1.49, -2.51, 0.2]), torch.tensor([0.1, 0.1, 0.1])
    assert torch.allclose(quantize_around(x, c, straight_through=False), torch.tensor([1.1, -2.9, 0.1]))


def test_logistic_likelihood_matches_scipys_logistic() -> None:
    from scipy.stats import logistic

    conditional = LogisticConditional()
    y, mu, s = torch.tensor([2.0, -7.0, 0.3]), torch.tensor([0.4, 0.0, 0.3]), torch.tensor([1.7, 0.5, 3.0])
    expected = logistic.cdf(y + 0.5, mu, s) - logistic.cdf(y - 0.5, mu, s)
    assert torch.allclose(conditional.likelihood(y, mu, s).double(), torch.from_numpy(expected), rtol=1e-5)
    assert LogisticConditional.tail_quantile(1e-9) == pytest.approx(logistic.isf(0.5e-9), rel=1e-12)


def test_gaussian_tail_quantile_matches_scipys_normal() -> None:
    from scipy.stats import norm

    # erfinv(1 - 1e-9): 1 - 1e-9 rounds in float64 (3e-9 relative here); format 1's tables used this value
    assert GaussianConditional.tail_quantile(1e-9) == pytest.approx(norm.isf(0.5e-9), rel=1e-8)


def test_make_conditional_names_the_known_kinds() -> None:
    assert isinstance(make_conditional("logistic"), LogisticConditional)
    assert (GaussianConditional.code, LogisticConditional.code) == (0, 1)
    with pytest.raises(ValueError, match="gaussian, logistic"):
        make_conditional("laplace")


def test_final_gate_adds_a_gate_after_the_last_layer() -> None:
    plain, gated = FactorizedPrior(2), FactorizedPrior(2, final_gate=True)
    assert (len(plain.factors), len(gated.factors)) == (3, 4)
    gated.load_state_dict(plain.state_dict(), strict=False)
    x = torch.linspace(-3, 3, 7).view(1, 1, -1).expand(2, 1, -1)
    assert torch.equal(gated.logits_cumulative(x), plain.logits_cumulative(x)), "tanh(0) = 0: no change yet"
    with torch.no_grad():
        gated.factors[3].fill_(1.0)
    last = plain.logits_cumulative(x)
    assert torch.allclose(gated.logits_cumulative(x), last + math.tanh(1.0) * torch.tanh(last))
