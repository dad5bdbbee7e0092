"""Entropy models: the factorized prior for z and the Gaussian conditional for y."""

from hific_lit.entropy.factorized import FactorizedPrior
from hific_lit.entropy.gaussian import SCALE_LOWER_BOUND, GaussianConditional

__all__ = ["SCALE_LOWER_BOUND", "FactorizedPrior", "GaussianConditional"]
