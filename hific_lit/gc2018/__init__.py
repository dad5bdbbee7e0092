"""Extreme-rate generative compression (Agustsson et al. 2018, arXiv:1804.02958) on hific-lit's bitstreams.

Networks and coding only (no Lightning): :class:`GC2018` (codec), :class:`GC2018Config` and
:data:`GC2018_PRESETS`, :class:`MultiscaleDiscriminator` and its losses. The training stages are in
:mod:`hific_lit.gc2018.stage`.
"""

from hific_lit.gc2018.arch import GC2018_PRESETS, GC2018Config
from hific_lit.gc2018.bottleneck import CategoricalPrior, SoftToHardQuantizer
from hific_lit.gc2018.codec import GC2018, GC2018Output
from hific_lit.gc2018.discriminator import (
    MultiscaleDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
)

__all__ = [
    "GC2018",
    "GC2018_PRESETS",
    "CategoricalPrior",
    "GC2018Config",
    "GC2018Output",
    "MultiscaleDiscriminator",
    "SoftToHardQuantizer",
    "discriminator_loss",
    "feature_matching_loss",
    "generator_loss",
]
