"""Hyper-analysis h_a and hyper-synthesis h_s of the mean-scale hyperprior.

Ballé et al. 2018 ("Variational image compression with a scale hyperprior") and
Minnen et al. 2018 (mean & scale); sizes as HiFiC (Mentzer et al. 2020, App. A.1):
320 filters, h_a = conv3x3 s1 - conv5x5 s2 - conv5x5 s2 with ReLU between, h_s mirrors it,
with separate networks for the mean and the scale. Zero padding (the authors' ``same_zeros``),
so that the 1x1 hyperlatents of tiny images work; kernels initialised as ``tfc.SignalConv2D``'s
(:func:`hific_lit.nn.init.variance_scaling_`). The authors' h_a keeps ``tfc.SignalConv2D``'s default kernel
parameterization, the RDFT (tensorflow/compression ``models/hific/archs.py`` lines 436-451 set no
``kernel_parameterizer``; ``layers/signal_conv.py`` at v1.3 defaults to ``RDFTParameterizer``), while h_s sets
``kernel_parameterizer=None``: :class:`~hific_lit.nn.rdft.RDFTConv2d` (``kernel="rdft"``).
"""

from __future__ import annotations

import torch
from torch import nn

from hific_lit.nn.init import variance_scaling_
from hific_lit.nn.layers import PADDINGS
from hific_lit.nn.port_layers import ReflectConv2d
from hific_lit.nn.rdft import RDFT_CLASSES, convert_kernel_state

KERNELS = ("rdft", "plain")
"""How h_a's kernels are trained: as real-DFT coefficients (the authors') or directly (the JT port's)."""


class HyperAnalysis(nn.Module):
    """h_a: latent y (B, C, h, w) -> hyperlatent z (B, N, h/4, w/4).

    ``padding="reflect"`` pads the two 5x5 stride-2 convs by reflection (the JT port's h_a;
    :class:`~hific_lit.nn.port_layers.ReflectConv2d`); the first conv pads zeros either way. ``kernel="rdft"``
    trains every conv's kernel as real-DFT coefficients (:class:`~hific_lit.nn.rdft.RDFTConv2d`, the authors'),
    starting from the kernels the plain h_a is initialised with, so that both compute the same z bit for bit
    until they train. Loading converts kernels stored the other way (:func:`~hific_lit.nn.rdft.convert_kernel_state`).
    """

    def __init__(
        self, latent_channels: int = 220, filters: int = 320, padding: str = "zeros", kernel: str = "rdft"
    ) -> None:
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"unknown padding {padding!r}; expected one of: {', '.join(PADDINGS)}")
        if kernel not in KERNELS:
            raise ValueError(f"unknown kernel {kernel!r}; expected one of: {', '.join(KERNELS)}")
        self.net = self._layers(latent_channels, filters, padding, {})
        variance_scaling_(self)
        if kernel == "rdft":
            state = self.net.state_dict()
            with torch.device("meta"):  # no second initialisation: the seed's stream is left as the plain h_a leaves it
                self.net = self._layers(latent_channels, filters, padding, RDFT_CLASSES)
            convert_kernel_state(self.net, state)
            self.net.load_state_dict(state, assign=True)
        self.register_load_state_dict_pre_hook(_convert_kernels)

    @staticmethod
    def _layers(channels: int, filters: int, padding: str, classes: dict[type, type]) -> nn.Sequential:
        conv, reflect = (classes.get(c, c) for c in (nn.Conv2d, ReflectConv2d))

        def down() -> nn.Conv2d:
            if padding == "reflect":
                return reflect(filters, filters, 5, stride=2)
            return conv(filters, filters, 5, stride=2, padding=2)

        return nn.Sequential(
            conv(channels, filters, 3, stride=1, padding=1), nn.ReLU(True), down(), nn.ReLU(True), down()
        )

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y)


def _convert_kernels(module: nn.Module, state: dict, prefix: str, *_: object) -> None:
    """Load-state-dict pre-hook: kernels stored plain or as RDFT coefficients load into either form."""
    convert_kernel_state(module, state, prefix)


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
