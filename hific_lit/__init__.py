"""hific-lit: High-Fidelity Generative Image Compression (Mentzer et al. 2020) in PyTorch Lightning.

The models and their one interface live in :mod:`hific_lit.models`; this module re-exports the HiFiC
model and its architecture presets for ``from hific_lit import HiFiC``.
"""

from hific_lit.models.hific.arch import ARCH_PRESETS, ArchConfig, arch_preset
from hific_lit.models.hific.model import HiFiC, HiFiCOutput, Likelihoods, ParameterGroups
from hific_lit.version import __version__

__all__ = [
    "ARCH_PRESETS",
    "ArchConfig",
    "HiFiC",
    "HiFiCOutput",
    "Likelihoods",
    "ParameterGroups",
    "__version__",
    "arch_preset",
]
