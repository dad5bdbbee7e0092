"""hific-lit: High-Fidelity Generative Image Compression (Mentzer et al. 2020) in PyTorch Lightning."""

from hific_lit.arch import ARCH_PRESETS, ArchConfig, arch_preset
from hific_lit.codec import HiFiC, HiFiCOutput, Likelihoods, ParameterGroups

__version__ = "0.1.0"

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
