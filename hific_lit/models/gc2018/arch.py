"""Architecture presets of the extreme-rate generative codec (Agustsson et al. 2018), as one frozen dataclass.

``gc2018`` is the paper's global-compression model (arXiv:1804.02958, App. A: E ``c7s1-60, d120, d240,
d480, d960, c3s1-C, q``; G ``c3s1-960, R960 x9, u480, u240, u120, u60, c7s1-3``; multi-scale D
``C64-C128-C256-C512`` at 3 scales) with C = 8 and L = 5 centers; ``gc2018_small`` trains on a CPU in
minutes; ``gc2018_tiny`` exists for tests. Hydra's ``arch=`` group instantiates :class:`GC2018Config`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from hific_lit.nn.layers import PADDINGS

NORMS = ("instance", "channel")
PAPER_BOTTLENECKS = (2, 4, 8, 16)
"""The bottleneck depths C the paper trains (the TF1 port: {2, 4, 8, 16}); any C >= 2 builds."""


@dataclass(frozen=True)
class GC2018Config:
    """Widths and depths of E, G and D, the bottleneck (C channels, L centers) and the generator's noise."""

    encoder_widths: tuple[int, ...] = (60, 120, 240, 480, 960)
    latent_channels: int = 8
    """C, the bottleneck depth: the rate is at most C * log2(L) bits per 16 x 16 pixels."""
    levels: int = 5
    """L, the number of quantization centers, evenly spaced around 0 (L = 5: -2, -1, 0, 1, 2)."""
    soft_sigma: float = 1.0
    """Softness of the soft-to-hard relaxation: softmax(-sigma |w - c_j|) (the TF1 port's temperature 1)."""
    noise_channels: int = 0
    """Gaussian noise channels concatenated to the quantized bottleneck before G (paper: optional)."""
    generator_widths: tuple[int, ...] = (960, 480, 240, 120, 60)
    residual_blocks: int = 9
    norm: str = "instance"
    """``instance`` (the paper's) or ``channel`` (HiFiC's per-pixel ChannelNorm: tileable, crop-independent)."""
    padding: str = "reflect"
    """Border handling of E's and G's convolutions (the TF1 port pads by reflection)."""
    discriminator_widths: tuple[int, ...] = (64, 128, 256, 512)
    discriminator_scales: int = 3

    def __post_init__(self) -> None:
        for name in ("encoder_widths", "generator_widths", "discriminator_widths"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if len(self.encoder_widths) != 5 or len(self.generator_widths) != 5:
            raise ValueError("encoder_widths and generator_widths need 5 entries each: the bottleneck is at 1/16")
        if self.latent_channels < 2:
            raise ValueError(f"latent_channels (C) must be >= 2, got {self.latent_channels}")
        if not 2 <= self.levels <= 255:
            raise ValueError(f"levels (L) must be in 2..255, got {self.levels}")
        if self.soft_sigma <= 0 or self.noise_channels < 0 or self.residual_blocks < 0:
            raise ValueError("soft_sigma must be > 0, noise_channels and residual_blocks >= 0")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; expected one of: {', '.join(NORMS)}")
        if self.padding not in PADDINGS:
            raise ValueError(f"unknown padding {self.padding!r}; expected one of: {', '.join(PADDINGS)}")
        if self.discriminator_scales < 1 or not self.discriminator_widths:
            raise ValueError("the discriminator needs at least one scale and one layer")

    @property
    def bits_per_latent(self) -> float:
        """log2(L): what one bottleneck symbol costs at most."""
        return math.log2(self.levels)

    def rate_bound(self, height: int, width: int) -> float:
        """The rate bound in bits per pixel, ``ceil(H/16) ceil(W/16) C log2(L) / (H W)`` (the paper's bound)."""
        latents = -(-height // 16) * -(-width // 16) * self.latent_channels
        return latents * self.bits_per_latent / (height * width)

    def to_dict(self) -> dict:
        """Plain-python form, for checkpoints and configs."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


GC2018_PRESETS: dict[str, GC2018Config] = {
    "gc2018": GC2018Config(),
    "gc2018_small": GC2018Config(
        encoder_widths=(16, 32, 64, 128, 192),
        generator_widths=(192, 128, 64, 32, 16),
        residual_blocks=3,
        norm="channel",
        discriminator_widths=(32, 64, 128),
    ),
    "gc2018_tiny": GC2018Config(
        encoder_widths=(4, 8, 8, 16, 16),
        latent_channels=4,
        generator_widths=(16, 16, 8, 8, 4),
        residual_blocks=1,
        norm="channel",
        discriminator_widths=(8, 16),
    ),
}
