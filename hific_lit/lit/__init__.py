"""Lightning orchestration of HiFiC's two training stages; the networks themselves import no Lightning."""

from hific_lit.lit.base import RDStage
from hific_lit.lit.callbacks import InferenceExport, ReconstructionImages
from hific_lit.lit.export import export_model, export_training_checkpoint
from hific_lit.lit.gan import GANStage
from hific_lit.lit.warmstart import load_codec_weights, warm_start

__all__ = [
    "GANStage",
    "InferenceExport",
    "RDStage",
    "ReconstructionImages",
    "export_model",
    "export_training_checkpoint",
    "load_codec_weights",
    "warm_start",
]
