"""HiFiC networks as plain torch modules: no Lightning is imported here."""

from hific_lit.nn.discriminator import Discriminator
from hific_lit.nn.encoder import Encoder
from hific_lit.nn.generator import Generator
from hific_lit.nn.hyperprior import HyperAnalysis, HyperSynthesis
from hific_lit.nn.layers import ChannelNorm2d, ResidualBlock, same_conv

__all__ = [
    "ChannelNorm2d",
    "Discriminator",
    "Encoder",
    "Generator",
    "HyperAnalysis",
    "HyperSynthesis",
    "ResidualBlock",
    "same_conv",
]
