"""Entropy models: the factorized prior for z, the conditionals for y, and the integer h_s."""

from hific_lit.entropy.conditional import (
    CONDITIONALS,
    ConditionalEntropyModel,
    GaussianConditional,
    LogisticConditional,
    make_conditional,
)
from hific_lit.entropy.factorized import FactorizedPrior
from hific_lit.entropy.integer import IntegerConvNet
from hific_lit.entropy.tables import SCALE_LOWER_BOUND

__all__ = [
    "CONDITIONALS",
    "SCALE_LOWER_BOUND",
    "ConditionalEntropyModel",
    "FactorizedPrior",
    "GaussianConditional",
    "IntegerConvNet",
    "LogisticConditional",
    "make_conditional",
]
