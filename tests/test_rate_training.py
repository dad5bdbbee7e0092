"""Training a rate-conditioned HiFiC: each image at a drawn rate anchor, each anchor's λ_A/λ_B decided on its own
images against its own target (the paper's regimes), in both stages; warm start from a fixed-rate model."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from hific_lit.config.check import check_training_config
from hific_lit.errors import CheckpointError, SettingError
from hific_lit.io.checkpoint import save_inference_checkpoint
from hific_lit.models.hific.arch import ARCH_PRESETS
from hific_lit.models.hific.model import HiFiC, HiFiCOutput
from hific_lit.nn import Discriminator
from hific_lit.training.base import RDStage
from hific_lit.training.gan import GANStage
from hific_lit.training.losses import LossConfig
from hific_lit.training.run import compose_config
from hific_lit.training.warmstart import load_codec_weights

TINY = ARCH_PRESETS["tiny"]
TINY_RATE = dataclasses.replace(TINY, rate_conditioning=True)
REGIMES = LossConfig(
    warmup_iterations=0, k_p=0.0, anchor_targets=(0.14, 0.30, 0.45), anchor_lambda_a=(2.0, 1.0, 0.5)
)  # regime=rate: Mentzer et al. 2020, Table 4 (low, med, high)


@pytest.fixture
def crops(astronaut: torch.Tensor) -> DataLoader:
    tiles = astronaut[0, :, :128, :256].unfold(1, 64, 64).unfold(2, 64, 64)
    return DataLoader(list(tiles.permute(1, 2, 0, 3, 4).reshape(-1, 3, 64, 64)), batch_size=4)


def fit(module: RDStage, loader: DataLoader, iterations: int) -> None:
    trainer = pl.Trainer(
        accelerator="cpu", max_steps=iterations * module.optimizers_per_iteration, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=loader)


def test_regime_rate_composes_the_papers_three_regimes() -> None:
    cfg = compose_config(["arch=small_rate", "regime=rate"], "outputs/test")
    assert list(cfg.loss.anchor_targets) == [0.14, 0.30, 0.45] and list(cfg.loss.anchor_lambda_a) == [2.0, 1.0, 0.5]
    assert cfg.arch.rate_conditioning and cfg.arch.rate_anchors == 3
    fixed = compose_config(["regime=med"], "outputs/test")
    assert fixed.loss.anchor_targets is None and fixed.loss.anchor_lambda_a is None
    assert LossConfig(anchor_targets=None, anchor_lambda_a=None).anchor_targets == ()


def test_the_config_check_names_regime_rate_for_a_rate_conditioned_arch(tmp_path: Path) -> None:
    check_training_config(compose_config(["arch=small_rate", "regime=rate"], tmp_path))
    with pytest.raises(SettingError, match=r"one rate target per anchor \(3\): add regime=rate"):
        check_training_config(compose_config(["arch=small_rate"], tmp_path))
    with pytest.raises(SettingError, match=r"add arch\.rate_conditioning=true, or pick another regime"):
        check_training_config(compose_config(["arch=small", "regime=rate"], tmp_path))


def test_each_anchor_is_decided_on_its_own_images() -> None:
    stage = RDStage(TINY_RATE, REGIMES, None)
    rate = torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0, 1.0])
    rounded = torch.tensor([0.10, 0.20, 0.50, 0.40, 0.44, 0.50])  # low: 0.15 > 0.14; med 0.5 > 0.3; high 0.447 < 0.45
    out = HiFiCOutput(None, None, None, None, None, rate=rate, image_bpp=rounded, image_bpp_rounded=rounded)
    weights, terms = stage.anchor_rate_weights(out, iteration=10)
    assert weights.tolist() == [2.0, 2.0, 1.0, 2.0**-6, 2.0**-6, 2.0**-6]
    assert float(terms["anchor0/decision_bpp"]) == pytest.approx(0.15)
    assert float(terms["anchor2/decision_bpp"]) == pytest.approx((0.40 + 0.44 + 0.50) / 3)
    weights, terms = stage.anchor_rate_weights(out._replace(rate=torch.tensor([0.0] * 6)), iteration=10)
    assert (
        set(terms) == {"anchor0/decision_bpp", "anchor0/rate_weight"} and weights.tolist() == [2.0] * 6
    )  # 0.357 > 0.14


def test_the_stage_refuses_a_regime_that_does_not_fit_the_arch() -> None:
    with pytest.raises(ValueError, match=r"needs as many loss\.anchor_targets .*regime=rate"):
        RDStage(TINY_RATE, LossConfig(k_p=0.0), None)
    with pytest.raises(ValueError, match=r"add arch\.rate_conditioning=true"):
        RDStage(TINY, REGIMES, None)
    with pytest.raises(ValueError, match="one entry per rate anchor"):
        LossConfig(anchor_targets=(0.1, 0.2), anchor_lambda_a=(1.0,))


@pytest.mark.parametrize("stage_class", [RDStage, GANStage])
def test_both_stages_train_the_gains_at_the_drawn_anchors(stage_class: type[RDStage], crops: DataLoader) -> None:
    extra = {"discriminator": Discriminator(TINY.latent_channels, TINY.discriminator_widths, 4)}
    stage = stage_class(TINY_RATE, REGIMES, None, **(extra if stage_class is GANStage else {}))
    before = stage.model.rate_gains.log_gain.detach().clone()
    fit(stage, crops, iterations=2)
    after = stage.model.rate_gains.log_gain.detach()
    assert not torch.equal(before, after) and torch.isfinite(after).all()
    assert stage.model.rate_gains.frozen.anchors.numel() == 0  # frozen only when the tables are built


def test_warm_start_from_a_fixed_rate_model_keeps_the_gains_at_one(tmp_path: Path) -> None:
    torch.manual_seed(0)
    fixed = HiFiC(TINY)
    save_inference_checkpoint(fixed, tmp_path / "fixed.ckpt")
    conditioned = HiFiC(TINY_RATE)
    load_codec_weights(conditioned, tmp_path / "fixed.ckpt")
    state = conditioned.state_dict()
    for key, value in fixed.state_dict().items():
        if "tables" not in key and "_int." not in key:
            assert torch.equal(state[key], value), key
    assert not conditioned.rate_gains.log_gain.any() and not conditioned.rate_gains.log_inverse_ratio.any()
    x = torch.rand(1, 3, 64, 64)
    fixed.eval(), conditioned.eval()
    assert torch.allclose(fixed(x).x_hat, conditioned(x, rate=0.2).x_hat, atol=1e-6)

    save_inference_checkpoint(conditioned, tmp_path / "rate.ckpt")
    with pytest.raises(
        CheckpointError, match=r"another architecture; to start from it, add: arch\.rate_conditioning=true"
    ):
        load_codec_weights(HiFiC(TINY), tmp_path / "rate.ckpt")
    again = HiFiC(TINY_RATE)
    load_codec_weights(again, tmp_path / "rate.ckpt")  # a rate-conditioned source brings its gains
    assert torch.equal(again.rate_gains.log_gain, conditioned.rate_gains.log_gain)


def test_a_gain_spread_starts_the_anchors_apart_and_a_source_with_gains_replaces_it(tmp_path: Path) -> None:
    spread = HiFiC(dataclasses.replace(TINY_RATE, rate_gain_spread=2.0))
    log_gain = spread.rate_gains.log_gain.detach()
    assert torch.equal(log_gain, torch.tensor([-1.0, 0.0, 1.0])[:, None].expand_as(log_gain))  # gains 1/2, 1, 2
    gains, inverse = spread.rate_gains(torch.tensor([0.0, 0.75]))
    assert torch.allclose(gains.flatten(1), torch.tensor([[0.5], [2**0.5]]).expand(2, log_gain.shape[1]))
    assert torch.allclose(gains * inverse, torch.ones_like(gains))  # the decoder undoes the gain from the start

    save_inference_checkpoint(HiFiC(TINY_RATE), tmp_path / "rate.ckpt")
    load_codec_weights(spread, tmp_path / "rate.ckpt")  # a training field: the warm start is allowed
    assert not spread.rate_gains.log_gain.any()


@pytest.mark.slow
def test_two_process_ddp_decides_each_anchor_on_the_global_batch(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    run_dir, probe = tmp_path / "run", tmp_path / "probe"
    args = [
        "debug=fdr", "data.samples_per_epoch=16", "data.val_tiles=1", "arch=tiny", "arch.rate_conditioning=true",
        "regime=rate", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "data.batch_size=8",
        "loss.warmup_iterations=0", "logger=csv", f"hydra.run.dir={run_dir}",
        "+callbacks.rank_probe._target_=rank_probe.RankProbe", f"+callbacks.rank_probe.dirpath={probe}",
    ]  # fmt: skip
    env = os.environ | {"WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root / "tests"), os.environ.get("PYTHONPATH")) if p)
    cmd = [sys.executable, str(root / "scripts" / "train.py"), *args]
    result = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [[json.loads(line) for line in (probe / f"rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)]
    for step0, step1 in zip(*ranks, strict=True):
        rates = step0["rates"] + step1["rates"]  # the global batch: 4 images per rank
        bpps = step0["image_bpp_rounded"] + step1["image_bpp_rounded"]
        for k, anchor in enumerate((0.0, 0.5, 1.0)):
            mine = [b for r, b in zip(rates, bpps, strict=True) if r == anchor]
            key = f"anchor{k}/decision_bpp"
            if not mine:  # no image at this anchor in this batch (what is logged is an earlier batch's)
                continue
            assert step0[key] == step1[key] == pytest.approx(sum(mine) / len(mine), rel=1e-5)
            weight = REGIMES.rate_weight(sum(mine) / len(mine), step0["iteration"] - 1, k)
            assert step0[f"anchor{k}/rate_weight"] == step1[f"anchor{k}/rate_weight"] == weight
