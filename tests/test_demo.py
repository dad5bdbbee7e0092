"""scripts/demo.py: the model is named from what its checkpoint records; JPEG is matched at the same rate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import torch

from hific_lit import HiFiC
from hific_lit.io.checkpoint import save_inference_checkpoint
from hific_lit.models.hific.arch import arch_preset


def test_model_label_reads_kind_preset_stage_and_length(
    load_script: Callable[[str], ModuleType], tmp_path: Path
) -> None:
    demo = load_script("demo")
    config = {"stage": {"_target_": "hific_lit.training.gan.GANStage"}, "max_iterations": 7}
    save_inference_checkpoint(HiFiC.from_preset("tiny").eval(), tmp_path / "gan.ckpt", config=config)
    assert demo.model_label(tmp_path / "gan.ckpt") == "HiFiC tiny, GANStage, 7 it."
    save_inference_checkpoint(HiFiC.from_preset("small").eval(), tmp_path / "bare.ckpt")
    assert demo.model_label(tmp_path / "bare.ckpt") == "HiFiC small"


def test_model_label_lists_the_sizes_of_an_architecture_that_is_no_preset(
    load_script: Callable[[str], ModuleType], tmp_path: Path
) -> None:
    demo = load_script("demo")
    arch = replace(arch_preset("tiny"), encoder_widths=(4, 8, 8, 16, 12), latent_channels=6, residual_blocks=2)
    save_inference_checkpoint(HiFiC(arch).eval(), tmp_path / "custom.ckpt", config={"max_iterations": 3})
    label = "HiFiC (g_a 4-12, C 6, g_s 16-4, 2 residual blocks), 3 it."
    assert demo.model_label(tmp_path / "custom.ckpt") == label


def test_colour_offset_is_the_mean_shift_in_levels(load_script: Callable[[str], ModuleType]) -> None:
    demo = load_script("demo")
    x = torch.full((3, 4, 4), 0.5)
    shifted = x + torch.tensor([10.0, -5.0, 0.0]).view(3, 1, 1) / 255
    assert [round(v, 3) for v in demo.colour_offset(x, shifted)] == [10.0, -5.0, 0.0]


def test_jpeg_is_matched_at_or_above_the_rate(load_script: Callable[[str], ModuleType]) -> None:
    demo = load_script("demo")
    x = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
    quality, bpp, decoded = demo.jpeg_at(x, 2.0)
    assert bpp >= 2.0 and 1 <= quality <= 100 and decoded.shape == x.shape
