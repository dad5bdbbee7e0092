"""Realism conditioning of g_s: one bitstream, a reconstruction for any realism weight β (MRIC).

Agustsson, Minnen, Toderici, Mentzer, "Multi-Realism Image Compression with a Conditional Generator"
(CVPR 2023): the generator takes β, the weight of the realism terms it was trained with, so that the
receiver picks a low-distortion (β = 0) or a realistic (β = β_max) reconstruction of the same latent.
As the public TF2 reimplementation (github.com/Nikolai10/MRIC, ``src/fourier_cond.py``), β enters as
NeRF-style Fourier features ``[β, sin(2^k β), cos(2^k β)]`` for ``k = 0..9`` (21 numbers) and a two-layer
ReLU MLP of width 512, and β lies in ``[0, 2.56]``. Here the MLP's output modulates every ChannelNorm of
HiFiC's generator per image and channel (FiLM: ``norm(x) · (1 + s) + t``; the reimplementation adds a
per-channel shift after each convolution of its ELIC blocks). The modulation starts at zero, so an
untrained conditioned generator computes what the unconditioned one does.

The modulation is set for a whole call of g_s (:meth:`RealismCondition.applied`), so that the networks
that run parts of g_s on tiles (:mod:`hific_lit.tiling`) need not know about β: a FiLM norm is still a
per-pixel layer (a :class:`~hific_lit.nn.layers.ChannelNorm2d`). The applied β is state of the generator:
one model decodes one image (or batch) at a time, as ``hific decompress`` and ``hific eval`` do; threads
that decode at different β need a model each.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from hific_lit.errors import SettingError
from hific_lit.nn.layers import ChannelNorm2d, ResidualBlock

BETA_MAX = 2.56
"""The largest realism weight of MRIC (Nikolai10/MRIC README and ``amtm2023.py`` ``--beta``)."""
FOURIER_FREQUENCIES = 10
"""Octaves of the Fourier features (the reimplementation's ``get_embedder(multires=10)``)."""
EMBEDDING_WIDTH = 512
"""Width of the β-MLP (the reimplementation's ``BetaMlp(channels=512)``)."""


def fourier_features(beta: torch.Tensor, frequencies: int = FOURIER_FREQUENCIES) -> torch.Tensor:
    """``[β, sin(β), cos(β), sin(2β), cos(2β), ..., sin(2^(F-1) β), cos(2^(F-1) β)]``: (B,) -> (B, 1 + 2F), float32.

    The NeRF positional encoding (Mildenhall et al. 2020) as Nikolai10/MRIC applies it to β, in its order
    (``include_input``, ``log_sampling``, per frequency sin then cos); float32 whatever the network's precision.
    """
    beta = beta.float().reshape(-1, 1)
    angles = beta * 2.0 ** torch.arange(frequencies, device=beta.device, dtype=torch.float32)
    return torch.cat([beta, torch.stack([angles.sin(), angles.cos()], dim=2).flatten(1)], dim=1)


class RealismEmbedding(nn.Module):
    """β (B,) -> Fourier features -> Linear - ReLU - Linear - ReLU -> (B, width), the code every FiLM norm reads."""

    def __init__(self, width: int = EMBEDDING_WIDTH, frequencies: int = FOURIER_FREQUENCIES) -> None:
        super().__init__()
        self.frequencies = frequencies
        self.mlp = nn.Sequential(nn.Linear(1 + 2 * frequencies, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())
        with torch.no_grad():  # Keras Dense's default: Glorot-uniform kernels, zero biases
            for layer in self.mlp:
                if isinstance(layer, nn.Linear):
                    nn.init.xavier_uniform_(layer.weight)
                    layer.bias.zero_()

    def forward(self, beta: torch.Tensor) -> torch.Tensor:
        weight = self.mlp[0].weight
        return self.mlp(fourier_features(beta, self.frequencies).to(weight.device, weight.dtype))


class RealismCondition:
    """The embedding of the β currently applied to a generator, shared by its FiLM norms (not a module)."""

    def __init__(self) -> None:
        self.embedding: torch.Tensor | None = None

    @contextmanager
    def applied(self, embedding: torch.Tensor) -> Iterator[None]:
        """Make the FiLM norms use ``embedding`` (B, width) while the block runs."""
        previous, self.embedding = self.embedding, embedding
        try:
            yield
        finally:
            self.embedding = previous


class FiLMChannelNorm2d(ChannelNorm2d):
    """ChannelNorm modulated per image and channel by the realism embedding: ``norm(x) · (1 + s) + t``.

    ``(s, t)`` is a linear map of the embedding, initialised to zero (so training starts from plain HiFiC).
    """

    def __init__(self, channels: int, condition: RealismCondition, width: int = EMBEDDING_WIDTH) -> None:
        super().__init__(channels)
        self.condition = condition
        self.film = nn.Linear(width, 2 * channels)
        with torch.no_grad():
            self.film.weight.zero_()
            self.film.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        embedding = self.condition.embedding
        if embedding is None:
            raise RuntimeError("a realism-conditioned layer ran without β: call the generator with beta=")
        scale, shift = self.film(embedding.to(self.film.weight.dtype)).to(x.dtype)[:, :, None, None].chunk(2, dim=1)
        return super().forward(x) * (1.0 + scale) + shift


class FiLMResidualBlock(ResidualBlock):
    """HiFiC's residual block (conv - norm - ReLU - conv - norm, plus the identity) with FiLM norms."""

    def __init__(self, channels: int, condition: RealismCondition, width: int, padding: str = "zeros") -> None:
        super().__init__(channels, "channel", padding)
        for index in (1, 4):
            self.body[index] = FiLMChannelNorm2d(channels, condition, width)


def check_beta(beta: float | torch.Tensor, beta_max: float, batch: int, device: torch.device) -> torch.Tensor:
    """β as a float32 tensor (batch,) on ``device``; :class:`SettingError` unless every value is in [0, beta_max]."""
    values = torch.as_tensor(beta, dtype=torch.float32).detach()
    if values.dim() > 1 or (values.dim() == 1 and values.numel() not in (1, batch)):
        raise SettingError(f"beta must be a number or one per image ({batch}), got shape {tuple(values.shape)}")
    bad = values[~(torch.isfinite(values) & (values >= 0) & (values <= beta_max))]
    if bad.numel():
        raise SettingError(
            f"beta {float(bad.flatten()[0]):g} is outside this model's realism range [0, {beta_max:g}]"
            " (hific decompress --realism takes 0..1, mapped onto it)"
        )
    return values.to(device).expand(batch).clone() if values.numel() == 1 else values.to(device)


def not_conditioned_error() -> SettingError:
    """The error for a β given to a model trained without realism conditioning."""
    return SettingError(
        "this model is not realism-conditioned (trained without arch.realism_conditioning): it has one "
        "operating point; drop beta / --realism"
    )
