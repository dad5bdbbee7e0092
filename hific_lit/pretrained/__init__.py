"""Pretrained models from elsewhere, imported as ordinary hific-lit inference checkpoints.

:mod:`hific_lit.pretrained.jt` imports the released models of the popular PyTorch port
(github.com/Justin-Tan/high-fidelity-generative-compression): ``hific import-jt MODEL.pt -o model.ckpt``.
"""

from hific_lit.pretrained.jt import import_jt, port_arch
from hific_lit.pretrained.jt_checkpoint import (
    ALLOWED_GLOBALS,
    PortCheckpoint,
    PortModel,
    describe,
    read_port_checkpoint,
)

__all__ = [
    "ALLOWED_GLOBALS",
    "PortCheckpoint",
    "PortModel",
    "describe",
    "import_jt",
    "port_arch",
    "read_port_checkpoint",
]
