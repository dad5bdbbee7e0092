"""Evaluation: real bitstreams on Kodak / CLIC2020 / folders, metrics, matched-bpp baselines, RD plots, viewer."""

from hific_lit.eval.baselines import available_baselines, match_bpp
from hific_lit.eval.fid import PatchEmbedder, fid_kid, fid_patches, load_inception
from hific_lit.eval.metrics import LpipsScorer, ms_ssim, psnr_uint8
from hific_lit.eval.pipeline import evaluate
from hific_lit.eval.plots import plot_rd
from hific_lit.eval.runner import Scorers, evaluate_checkpoint
from hific_lit.eval.viewer import ViewerImage, ViewerVariant, write_viewer

__all__ = [
    "LpipsScorer",
    "PatchEmbedder",
    "Scorers",
    "ViewerImage",
    "ViewerVariant",
    "available_baselines",
    "evaluate",
    "evaluate_checkpoint",
    "fid_kid",
    "fid_patches",
    "load_inception",
    "match_bpp",
    "ms_ssim",
    "plot_rd",
    "psnr_uint8",
    "write_viewer",
]
