"""Small differentiable operations shared by the entropy models."""

from __future__ import annotations

import torch


class _LowerBound(torch.autograd.Function):
    """max(x, bound) whose gradient still flows where it would push x above the bound.

    As in Ballé et al. 2018 (and TFC / CompressAI): a plain clamp would stop the
    gradient of scales stuck at the bound, and they would never recover.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, bound: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp_min(bound)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        pass_through = (x >= ctx.bound) | (grad < 0)
        return grad * pass_through.to(grad.dtype), None


def lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    """Clamp ``x`` from below by ``bound`` with the straight-through gradient of ``_LowerBound``."""
    return _LowerBound.apply(x, bound)


def add_uniform_noise(x: torch.Tensor) -> torch.Tensor:
    """Training proxy for rounding: x + U(-1/2, 1/2) (Ballé et al. 2017, Sec. 2)."""
    return x + torch.empty_like(x).uniform_(-0.5, 0.5)


def round_st(x: torch.Tensor) -> torch.Tensor:
    """round(x) in the forward pass, identity in the backward pass (straight-through)."""
    return x + (torch.round(x) - x).detach()


def quantize_around(x: torch.Tensor, center: torch.Tensor, straight_through: bool) -> torch.Tensor:
    """``round(x - center) + center``: the dequantized value that the decoder sees.

    HiFiC feeds the generator ``round(y - mu) + mu`` (Mentzer et al. 2020, Sec. 3.1, after
    Minnen et al. 2018); with ``straight_through`` the gradient passes as identity.
    """
    r = round_st(x - center) if straight_through else torch.round(x - center)
    return r + center


SYMBOL_LIMIT = float(1 << 62)
"""Coded symbols must lie within +-2**62 (the escape code's range)."""


def check_codable(rounded: torch.Tensor, name: str) -> None:
    """Refuse symbols that are not finite or beyond +-2**62 (the escape code's range)."""
    if not bool((rounded.abs() < SYMBOL_LIMIT).all()):
        raise ValueError(f"the {name} has values that are not finite or beyond +-2**62; the model diverged")
