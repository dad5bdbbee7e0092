"""The training objective's pieces: λ' switching, warm-up, lr decay, MSE scale, PSNR, GAN losses."""

from __future__ import annotations

import math

import pytest
import torch

from hific_lit.training.losses import LossConfig, LRSchedule, discriminator_loss, generator_loss, mse_255, psnr

# The authors' code (tensorflow/compression models/hific/configs.py, model.py): rate term C/λ·R with
# λ = lmbda_a above the target, lmbda_b below; lambda_schedule multiplies λ by 2 for the first 50k steps.
AUTHORS_C = 0.1 * 2.0**-5
AUTHORS_LMBDA_A = 0.1 * 2.0**-6
AUTHORS_LMBDA_B = 0.1 * 2.0**1
AUTHORS_LAMBDA_SCHEDULE = (2.0, 1.0)  # vals, steps=[50000]


def authors_rate_weight(bpp_rounded: float, step: int, target: float = 0.14) -> float:
    """C / λ of model.py ``_get_weighted_rate_loss`` with the low-rate config of configs.py."""
    schedule = AUTHORS_LAMBDA_SCHEDULE[0] if step < 50_000 else AUTHORS_LAMBDA_SCHEDULE[1]
    scheduled_target = target * (0.20 / 0.14 if step < 50_000 else 1.0)
    lmbda = AUTHORS_LMBDA_A if bpp_rounded > scheduled_target else AUTHORS_LMBDA_B
    return AUTHORS_C / (lmbda * schedule)


def test_rate_weight_switches_at_the_target_after_warmup() -> None:
    cfg = LossConfig(target_bpp=0.3, lambda_a=1.0, lambda_b=2**-6, warmup_iterations=10)
    assert cfg.rate_weight(0.31, iteration=10) == 1.0
    assert cfg.rate_weight(0.30, iteration=10) == 2**-6
    assert cfg.rate_weight(0.29, iteration=None) == 2**-6


def test_defaults_give_the_authors_rate_weights_2_and_2_to_the_minus_6() -> None:
    cfg = LossConfig(target_bpp=0.14, lambda_a=2.0)  # the low regime, the only one configs.py spells out
    above, below = AUTHORS_C / AUTHORS_LMBDA_A, AUTHORS_C / AUTHORS_LMBDA_B
    assert (above, below) == (2.0, 2**-6)
    assert (cfg.lambda_a, cfg.lambda_b) == (above, below)
    for step in (0, 49_999, 50_000, 400_000):
        for bpp in (0.10, 0.14, 0.17, 0.20, 0.21, 0.5):
            assert cfg.rate_weight(bpp, step) == pytest.approx(authors_rate_weight(bpp, step)), (step, bpp)


def test_warmup_halves_the_rate_weight_and_raises_the_target() -> None:
    cfg = LossConfig(target_bpp=0.14, lambda_a=2.0, warmup_iterations=10)
    assert cfg.target_at(9) == pytest.approx(0.20)
    assert cfg.target_at(10) == pytest.approx(0.14)
    # 0.17 bpp is above the final target but below the warm-up target: λ_B, halved
    assert cfg.rate_weight(0.17, iteration=9) == pytest.approx(2**-6 / 2)
    assert cfg.rate_weight(0.21, iteration=9) == pytest.approx(1.0)
    assert cfg.rate_weight(0.17, iteration=10) == pytest.approx(2.0)


def test_the_papers_text_is_one_override_away() -> None:
    paper = LossConfig(
        target_bpp=0.14, lambda_a=2.0, lambda_b=2**-4, warmup_rate_weight_factor=2.0, warmup_iterations=10
    )
    assert paper.rate_weight(0.10, iteration=10) == 2**-4
    assert paper.rate_weight(0.21, iteration=9) == 4.0


def test_authors_defaults() -> None:
    cfg = LossConfig()
    assert cfg.k_m == pytest.approx(AUTHORS_C * 0.75)  # C * CD
    assert cfg.k_p == 1.0 and cfg.beta == pytest.approx(0.1 * 1.5)  # lpips_weight, CP
    assert cfg.warmup_iterations == 50_000 and cfg.warmup_target_factor == pytest.approx(0.20 / 0.14)
    assert cfg.gan_loss == "non_saturating"  # compare_gan loss_lib.non_saturating
    assert LRSchedule().multiplier(499_999) == 1.0 and LRSchedule().multiplier(500_000) == pytest.approx(0.1)


def test_learning_rate_warmup_is_linear_and_off_by_default() -> None:
    assert LRSchedule().multiplier(0) == 1.0  # the authors' configs.py has no lr warm-up
    ramp = LRSchedule(decay_iteration=10, factor=0.1, warmup_iterations=4)
    assert [ramp.multiplier(i) for i in (0, 1, 3, 9)] == pytest.approx([0.25, 0.5, 1.0, 1.0])
    assert ramp.multiplier(10) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        LRSchedule(warmup_iterations=-1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"gan_loss": "wasserstein"},
        {"target_bpp": 0.0},
        {"lambda_a": -1.0},
        {"warmup_iterations": -1},
        {"warmup_rate_weight_factor": -1.0},
    ],
)
def test_invalid_loss_config_is_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        LossConfig(**kwargs)


def test_mse_is_on_the_0_255_scale_and_psnr_matches() -> None:
    x = torch.zeros(2, 3, 8, 8)
    x_hat = torch.full_like(x, 0.1)
    assert mse_255(x, x_hat).item() == pytest.approx(25.5**2, rel=1e-5)
    assert psnr(x, x_hat).item() == pytest.approx(20.0, rel=1e-5)
    assert psnr(x, torch.full_like(x, 2.0)).item() == pytest.approx(0.0, abs=1e-5)  # clamped to 1


def test_non_saturating_losses_at_known_points() -> None:
    zero = torch.zeros(4, 1, 8, 8)
    assert generator_loss(zero).item() == pytest.approx(math.log(2.0))
    assert discriminator_loss(zero, zero).item() == pytest.approx(2 * math.log(2.0))
    confident = discriminator_loss(torch.full_like(zero, 10.0), torch.full_like(zero, -10.0))
    assert confident.item() < 1e-3
    assert generator_loss(torch.full_like(zero, -10.0)).item() == pytest.approx(10.0, rel=1e-3)


def test_least_squares_losses_at_known_points() -> None:
    zero = torch.zeros(2, 1, 4, 4)
    assert generator_loss(zero, "least_squares").item() == pytest.approx(0.25)
    assert discriminator_loss(zero, zero, "least_squares").item() == pytest.approx(0.5)


def test_gan_losses_push_the_right_way() -> None:
    d_fake = torch.zeros(1, 1, 4, 4, requires_grad=True)
    generator_loss(d_fake).backward()
    assert torch.all(d_fake.grad < 0)  # G wants D's logit on fakes to rise
    d_real, d_fake = torch.zeros(1, 1, 4, 4, requires_grad=True), torch.zeros(1, 1, 4, 4, requires_grad=True)
    discriminator_loss(d_real, d_fake).backward()
    assert torch.all(d_real.grad < 0) and torch.all(d_fake.grad > 0)
