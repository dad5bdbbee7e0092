"""scripts/demo.py: the model is named from what its checkpoint records; JPEG is matched at the same rate."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import torch

from hific_lit import HiFiC
from hific_lit.checkpoint import save_inference_checkpoint

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "demo.py"


def load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_model_label_reads_kind_preset_stage_and_length(tmp_path: Path) -> None:
    demo = load_demo()
    config = {"stage": {"_target_": "hific_lit.lit.GANStage"}, "max_iterations": 7}
    save_inference_checkpoint(HiFiC.from_preset("tiny").eval(), tmp_path / "gan.ckpt", config=config)
    assert demo.model_label(tmp_path / "gan.ckpt") == "HiFiC tiny, GANStage, 7 it."
    save_inference_checkpoint(HiFiC.from_preset("small").eval(), tmp_path / "bare.ckpt")
    assert demo.model_label(tmp_path / "bare.ckpt") == "HiFiC small"


def test_colour_offset_is_the_mean_shift_in_levels() -> None:
    demo = load_demo()
    x = torch.full((3, 4, 4), 0.5)
    shifted = x + torch.tensor([10.0, -5.0, 0.0]).view(3, 1, 1) / 255
    assert [round(v, 3) for v in demo.colour_offset(x, shifted)] == [10.0, -5.0, 0.0]


def test_jpeg_is_matched_at_or_above_the_rate() -> None:
    demo = load_demo()
    x = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
    quality, bpp, decoded = demo.jpeg_at(x, 2.0)
    assert bpp >= 2.0 and 1 <= quality <= 100 and decoded.shape == x.shape
