"""Architecture presets: the sizes of the networks, as one frozen dataclass.

``hific`` is the paper's model (Mentzer et al. 2020, App. A.1); ``jt`` the same sizes as the
popular PyTorch port builds them (for models imported with ``hific import-jt``); ``small`` trains
on a CPU in minutes; ``tiny`` exists for tests; ``hific_rate`` and ``small_rate`` are ``hific`` and ``small``
with the rate conditioning (one model for every rate, docs/rate-control.md). Hydra's ``arch=`` group
instantiates :class:`ArchConfig`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from hific_lit.entropy.rate_gains import MAX_OCTAVES
from hific_lit.nn.discriminator import DISCRIMINATOR_STYLES
from hific_lit.nn.hyperprior import KERNELS
from hific_lit.nn.layers import PADDINGS
from hific_lit.nn.port_layers import IMAGE_RANGES, PAD_SCHEMES, STRIDE_PADS
from hific_lit.nn.realism import BETA_MAX, EMBEDDING_WIDTH

LATENT_LIKELIHOODS = ("gaussian", "logistic")
"""The conditional entropy models of :mod:`hific_lit.entropy.conditional` (their ``kind``)."""


@dataclass(frozen=True)
class ArchConfig:
    """Widths and depths of g_a, g_s, h_a/h_s and D, and the normalisation and padding they use."""

    encoder_widths: tuple[int, ...] = (60, 120, 240, 480, 960)
    latent_channels: int = 220
    generator_widths: tuple[int, ...] = (960, 480, 240, 120, 60)
    residual_blocks: int = 9
    hyper_filters: int = 320
    discriminator_widths: tuple[int, ...] = (64, 128, 256, 512)
    discriminator_context: int = 12
    norm: str = "channel"
    padding: str = "zeros"
    """Border handling of g_a's and g_s's convolutions: ``zeros`` (the authors' Keras ``same``) or ``reflect``."""
    latent_likelihood: str = "gaussian"
    """Density of y given (mu, sigma): ``gaussian`` (the authors') or ``logistic`` (the JT port's HIFIC-med)."""
    # Options that reproduce the JT port (github.com/Justin-Tan/high-fidelity-generative-compression), for
    # models imported with ``hific import-jt``; docs/pretrained-jt.md. The defaults are the authors'.
    encoder_stride_pad: str = "same"
    """g_a's stride-2 convs: ``same`` (pad ``kernel // 2``, as ``padding`` says) or ``jt`` (reflect by 0 left,
    1 right, 1 top, 0 bottom, as the JT port)."""
    hyper_analysis_padding: str = "zeros"
    """h_a's 5x5 stride-2 convs: ``zeros`` (authors') or ``reflect`` (the JT port's)."""
    hyper_analysis_kernel: str = "rdft"
    """h_a's kernels trained as real-DFT coefficients (``rdft``: the authors', tfc 1.3 ``SignalConv2D``'s default)
    or directly (``plain``: the JT port's). The same function; Adam's steps differ (docs/fidelity.md row 27)."""
    image_range: str = "unit"
    """``unit``: g_a takes the image in [0, 1], g_s's output is the image; ``tanh``: g_a takes ``2x - 1`` and the
    image is ``(tanh(g_s) + 1) / 2`` (the JT port's ``--normalize_input_image``)."""
    hyper_density_final_gate: bool = False
    """The factorized density of z gates its last layer too (``x + tanh(a) tanh(x)``), as the JT port's does."""
    pad_scheme: str = "image"
    """``image``: the image is reflect-padded to a multiple of 64 before g_a; ``jt``: to 16, and then y to a multiple
    of 4 (the JT port's; images under 64 px a side, which the port cannot code, to 64). Same latent shapes."""
    discriminator_style: str = "hific"
    """``hific`` (the authors' compare_gan PatchGAN) or ``jt`` (the JT port's D, for fine-tuning imported models)."""
    # Multi-realism (MRIC, Agustsson et al. 2023; hific_lit.nn.realism): off by default, and then nothing changes.
    realism_conditioning: bool = False
    """g_s takes a realism weight β in [0, ``beta_max``] (FiLM on every ChannelNorm); one bitstream, any β."""
    beta_max: float = BETA_MAX
    """The largest β a file decodes at (MRIC's 2.56: Nikolai10/MRIC README, ``amtm2023.py --beta``)."""
    train_beta_max: float | None = None
    """Training draws β per image uniformly from [0, ``train_beta_max``]; ``None``: ``beta_max``. The MRIC
    reimplementation trains on [0, 5.12] (``amtm2023.py`` line 388), twice its decoding range."""
    realism_width: int = EMBEDDING_WIDTH
    """Width of the β-embedding MLP (MRIC's 512); used only with ``realism_conditioning``."""
    # Rate conditioning (gain units, Cui et al. 2021; hific_lit.entropy.rate_gains): off by default, nothing changes.
    rate_conditioning: bool = False
    """One model for every rate: the rate R in [0, 1] is chosen at encode time and stored in the file (learned
    per-channel gains on the latent's residual, trained at ``rate_anchors`` rates and interpolated between them)."""
    rate_anchors: int = 3
    """The rates trained, each with its own target and rate weight (``regime=rate``: the paper's low, med, high)."""
    rate_gain_spread: float = 0.0
    """Octaves (0 to 14) between the first and the last anchor's gains at initialisation, evenly around 1 (0: every
    gain starts at 1, the fixed-rate model a warm start comes from). In a short run from scratch where they start
    matters: an anchor whose batches sit below their target is pushed up only by the distortion (eq. 4's small λ_B),
    weak in a small model (docs/rate-control.md, "Covering the span": experiment=rate_conditioned uses 2)."""

    def __post_init__(self) -> None:
        for name in ("encoder_widths", "generator_widths", "discriminator_widths"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if len(self.encoder_widths) != 5 or len(self.generator_widths) != 5:
            raise ValueError(
                "encoder_widths and generator_widths need 5 entries each: the model downsamples by 16 "
                f"(got {len(self.encoder_widths)} and {len(self.generator_widths)})"
            )
        if self.latent_channels < 1 or self.hyper_filters < 1 or self.residual_blocks < 0:
            raise ValueError("latent_channels and hyper_filters must be >= 1, residual_blocks >= 0")
        if self.padding not in PADDINGS:
            raise ValueError(f"unknown padding {self.padding!r}; expected one of: {', '.join(PADDINGS)}")
        for name, allowed in (
            ("encoder_stride_pad", STRIDE_PADS),
            ("hyper_analysis_padding", PADDINGS),
            ("hyper_analysis_kernel", KERNELS),
            ("image_range", IMAGE_RANGES),
            ("pad_scheme", PAD_SCHEMES),
            ("discriminator_style", DISCRIMINATOR_STYLES),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; expected one of: {', '.join(allowed)}")
        if self.realism_conditioning and (self.beta_max <= 0 or self.realism_width < 1 or self.norm != "channel"):
            raise ValueError("realism_conditioning needs beta_max > 0, realism_width >= 1 and norm='channel'")
        if self.rate_conditioning and self.rate_anchors < 2:
            raise ValueError(f"rate_conditioning needs rate_anchors >= 2, got {self.rate_anchors}")
        if not 0 <= self.rate_gain_spread <= 2 * MAX_OCTAVES:
            raise ValueError(f"rate_gain_spread must be 0 to {2 * MAX_OCTAVES} octaves, got {self.rate_gain_spread}")
        if self.train_beta_max is not None and self.train_beta_max <= 0:
            raise ValueError(f"train_beta_max must be > 0 (or null: beta_max), got {self.train_beta_max}")
        if self.latent_likelihood not in LATENT_LIKELIHOODS:
            known = ", ".join(LATENT_LIKELIHOODS)
            raise ValueError(f"unknown latent_likelihood {self.latent_likelihood!r}; expected one of: {known}")

    def to_dict(self) -> dict:
        """Plain-python form, for checkpoints and configs."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


_SMALL = ArchConfig(
    encoder_widths=(16, 32, 64, 128, 192),
    latent_channels=96,
    generator_widths=(192, 128, 64, 32, 16),
    residual_blocks=3,
    hyper_filters=96,
    discriminator_widths=(32, 64, 128, 128),
    discriminator_context=8,
)
ARCH_PRESETS: dict[str, ArchConfig] = {
    "hific": ArchConfig(),
    "jt": ArchConfig(
        padding="reflect",
        encoder_stride_pad="jt",
        hyper_analysis_padding="reflect",
        hyper_analysis_kernel="plain",
        hyper_density_final_gate=True,
        pad_scheme="jt",
        discriminator_style="jt",
    ),
    "small": _SMALL,
    "tiny": ArchConfig(
        encoder_widths=(4, 8, 8, 16, 16),
        latent_channels=8,
        generator_widths=(16, 16, 8, 8, 4),
        residual_blocks=1,
        hyper_filters=8,
        discriminator_widths=(8, 8, 16, 16),
        discriminator_context=4,
    ),
    "hific_rate": ArchConfig(rate_conditioning=True),
    "small_rate": replace(_SMALL, rate_conditioning=True),
}


def arch_preset(name: str) -> ArchConfig:
    """Look up a preset by name, with an error that lists the known ones."""
    try:
        return ARCH_PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(ARCH_PRESETS)}") from None
