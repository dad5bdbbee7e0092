"""MRIC trained for a minute on a CPU (experiment=mric_quick_base, then mric_quick_gan): on the held-out photo,
the file decodes at β = 0 with a PSNR at least that at β = β_max (the numbers are in README, "Multi-realism").

At this budget the margin is small and, over other seeds of the GAN stage, of either sign (README); the recipe's
seed is fixed, so the test is deterministic: it guards the end-to-end path (train, export, one file, two β)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hific_lit.data.sample import load_sample_photo
from hific_lit.io.checkpoint import load_inference_checkpoint
from hific_lit.nn.realism import BETA_MAX
from hific_lit.training.losses import psnr
from hific_lit.training.run import compose_config, train


@pytest.mark.slow
def test_quick_mric_training_orders_psnr_by_realism(tmp_path: Path) -> None:
    base, gan = tmp_path / "base", tmp_path / "gan"
    train(compose_config(["experiment=mric_quick_base"], base))
    train(compose_config(["experiment=mric_quick_gan", f"warmstart={base}/checkpoints/last.ckpt"], gan))
    model = load_inference_checkpoint(gan / "inference.ckpt")
    x = load_sample_photo()  # the astronaut, never trained on (data.val_photo)
    data = model.compress(x)
    low, high = model.decompress(data, beta=0.0), model.decompress(data, beta=BETA_MAX)
    assert low.shape == high.shape == x.shape and not torch.equal(low, high)
    assert float(psnr(x, low)) >= float(psnr(x, high))
