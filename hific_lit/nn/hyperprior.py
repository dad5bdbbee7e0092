"""Hyper-analysis h_a and hyper-synthesis h_s of the mean-scale hyperprior.

Ballé et al. 2018 ("Variational image compression with a scale hyperprior") and
Minnen et al. 2018 (mean & scale); sizes as HiFiC (Mentzer et al. 2020, App. A.1):
320 filters, h_a = conv3x3 s1 - conv5x5 s2 - conv5x5 s2 with ReLU between, h_s mirrors it,
with separate networks for the mean and the scale. Zero padding (the authors' ``same_zeros``),
so that the 1x1 hyperlatents of tiny images work; kernels initialised as ``tfc.SignalConv2D``'s
(:func:`hific_lit.nn.init.variance_scaling_`). The authors' h_a keeps ``tfc.SignalConv2D``'s default kernel
parameterization, the RDFT (tensorflow/compression ``models/hific/archs.py`` lines 436-451 set no
``kernel_parameterizer``; ``layers/signal_conv.py`` at v1.3 defaults to ``RDFTParameterizer``), while h_s sets
``kernel_parameterizer=None``: :class:`RDFTConv2d` (``kernel="rdft"``).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

from hific_lit.nn.init import variance_scaling_
from hific_lit.nn.layers import PADDINGS
from hific_lit.nn.port_layers import ReflectConv2d

KERNELS = ("rdft", "plain")
"""How h_a's kernels are trained: as real-DFT coefficients (the authors') or directly (the JT port's)."""


@functools.lru_cache(maxsize=8)
def real_dft_basis(size: int) -> torch.Tensor:
    """(size, size) orthonormal real Fourier basis, one vector per column: the constant, then cos and sin of each
    frequency 1 .. (size - 1) / 2, and the alternating vector for even sizes (the vectors of tfc's
    ``irdft_matrix`` up to their order and sign, to which Adam's per-coordinate steps are indifferent)."""
    t = torch.arange(size, dtype=torch.float64)
    columns = [torch.full((size,), 1.0 / math.sqrt(size), dtype=torch.float64)]
    for k in range(1, (size + 1) // 2):
        angle = 2.0 * math.pi * k * t / size
        columns += [angle.cos() * math.sqrt(2.0 / size), angle.sin() * math.sqrt(2.0 / size)]
    if size % 2 == 0:
        columns.append(torch.cos(math.pi * t) / math.sqrt(size))
    return torch.stack(columns, dim=1)


class RDFTConv2d(nn.Conv2d):
    """A convolution whose trainable ``weight`` holds the kernel's 2-D real-DFT coefficients (tfc's
    ``RDFTParameterizer``): kernel = basis @ coefficients per (output, input) channel pair. The basis is
    orthonormal, so the initial kernel and the function are those of a plain conv; what changes is the geometry of
    the optimizer's steps. The state dict holds the kernel itself (loads and saves as a plain conv's)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        with torch.no_grad():
            self.weight.copy_(self.to_coefficients(self.weight))

    def basis(self, like: torch.Tensor) -> torch.Tensor:
        """The (kh kw, kh kw) basis on ``like``'s device and dtype (made there, so a meta-device model stays meta)."""
        kh, kw = self.kernel_size
        return torch.kron(real_dft_basis(kh), real_dft_basis(kw)).to(like.device, like.dtype)

    def to_coefficients(self, kernel: torch.Tensor) -> torch.Tensor:
        """The coefficients of ``kernel`` (out, in, kh, kw) in the basis (same shape)."""
        return (kernel.flatten(2) @ self.basis(kernel)).view_as(kernel)

    def kernel(self) -> torch.Tensor:
        """The convolution kernel the coefficients stand for."""
        return (self.weight.flatten(2) @ self.basis(self.weight).T).view_as(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.kernel(), self.bias)

    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        kernel = self.kernel()
        destination[prefix + "weight"] = kernel if keep_vars else kernel.detach()

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object) -> None:
        key = prefix + "weight"
        if key in state_dict and state_dict[key].shape == self.weight.shape:
            state_dict[key] = self.to_coefficients(state_dict[key])
        super()._load_from_state_dict(state_dict, prefix, *args)


def use_rdft_kernels(net: nn.Sequential) -> None:
    """Replace each (initialised) spatial conv of ``net`` by an :class:`RDFTConv2d` with the same kernel and bias."""
    for index, conv in enumerate(net):
        if type(conv) is nn.Conv2d and conv.kernel_size != (1, 1):
            with torch.random.fork_rng(devices=[]):  # the throwaway initialisation leaves the seed's stream alone
                rdft = RDFTConv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding)
            rdft.load_state_dict(conv.state_dict())
            net[index] = rdft


class HyperAnalysis(nn.Module):
    """h_a: latent y (B, C, h, w) -> hyperlatent z (B, N, h/4, w/4).

    ``padding="reflect"`` pads the two 5x5 stride-2 convs by reflection (the JT port's h_a;
    :class:`~hific_lit.nn.port_layers.ReflectConv2d`); the first conv pads zeros either way. ``kernel="rdft"``
    trains the zero-padded convs' kernels as real-DFT coefficients (:class:`RDFTConv2d`, the authors').
    """

    def __init__(
        self, latent_channels: int = 220, filters: int = 320, padding: str = "zeros", kernel: str = "plain"
    ) -> None:
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"unknown padding {padding!r}; expected one of: {', '.join(PADDINGS)}")
        if kernel not in KERNELS:
            raise ValueError(f"unknown kernel {kernel!r}; expected one of: {', '.join(KERNELS)}")

        def down() -> nn.Conv2d:
            if padding == "reflect":
                return ReflectConv2d(filters, filters, 5, stride=2)
            return nn.Conv2d(filters, filters, 5, stride=2, padding=2)

        self.net = nn.Sequential(
            nn.Conv2d(latent_channels, filters, 3, stride=1, padding=1),
            nn.ReLU(True),
            down(),
            nn.ReLU(True),
            down(),
        )
        variance_scaling_(self)
        if kernel == "rdft":
            use_rdft_kernels(self.net)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y)


class HyperSynthesis(nn.Module):
    """h_s (one of two, mean or scale): hyperlatent z_hat (B, N, h/4, w/4) -> (B, C, h, w)."""

    def __init__(self, latent_channels: int = 220, filters: int = 320) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.ConvTranspose2d(filters, filters, 5, stride=2, padding=2, output_padding=1),
            nn.ReLU(True),
            nn.ConvTranspose2d(filters, filters, 5, stride=2, padding=2, output_padding=1),
            nn.ReLU(True),
            nn.Conv2d(filters, latent_channels, 3, stride=1, padding=1),
        )
        variance_scaling_(self)

    def forward(self, z_hat: torch.Tensor) -> torch.Tensor:
        return self.net(z_hat)
