"""Every config group composes and instantiates, and what it instantiates carries the paper's and the authors' numbers
(Mentzer et al. 2020; tensorflow/compression ``models/hific``: ``configs.py``, ``archs.py``, ``train.py``), pinned here
as literals: the configs are made from the package's definitions, so comparing the two would prove nothing."""

from __future__ import annotations

from pathlib import Path

import hydra
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from PIL import Image
from pytorch_lightning.strategies import DDPStrategy

from hific_lit.config import CONFIG_DIR, group_options, hific_constant
from hific_lit.config import compose_config as compose_named
from hific_lit.models.hific.arch import ARCH_PRESETS
from hific_lit.nn import Discriminator
from hific_lit.training.base import RDStage
from hific_lit.training.gan import GANStage
from hific_lit.training.losses import LossConfig
from hific_lit.training.run import compose_config, instantiate_dict, strategy_for_devices

FAST = ["perceptual.pretrained_backbone=false"]


def test_every_group_has_its_options() -> None:
    assert set(group_options("arch")) == {
        "hific",
        "jt",
        "small",
        "tiny",
        "hific_rate",
        "small_rate",
        "gc2018",
        "gc2018_small",
        "gc2018_tiny",
    }
    assert set(group_options("regime")) == {"low", "med", "high", "rate"}
    assert set(group_options("stage")) == {"base", "gan", "gc2018", "gc2018_mse"}
    assert {"cpu", "gpu", "ddp"} <= set(group_options("trainer"))
    assert set(group_options("logger")) == {"wandb", "csv", "none"}
    assert {"sample", "folder"} <= set(group_options("data"))
    for group in ("experiment", "hparams_search", "debug", "paths", "callbacks"):
        assert group_options(group), group


# The paper's networks (DESIGN.md's reference table; the authors' archs.py): g_a 60-120-240-480-960 then C = 220,
# g_s 960-480-240-120-60 with 9 residual blocks, hyperprior 320 filters, D 64-128-256-512 with a 12-channel context.
PAPER_ARCH = {
    "encoder_widths": (60, 120, 240, 480, 960),
    "latent_channels": 220,
    "generator_widths": (960, 480, 240, 120, 60),
    "residual_blocks": 9,
    "hyper_filters": 320,
    "discriminator_widths": (64, 128, 256, 512),
    "discriminator_context": 12,
    "norm": "channel",
}
# The JT port's departures, which `hific import-jt` switches on (docs/pretrained-jt.md).
JT_OPTIONS = {
    "padding": "reflect",
    "encoder_stride_pad": "jt",
    "hyper_analysis_padding": "reflect",
    "hyper_density_final_gate": True,
    "pad_scheme": "jt",
    "discriminator_style": "jt",
}
# GC2018 (Agustsson et al. 2018, App. A): E c7s1-60 d120 d240 d480 d960 c3s1-C, C = 8, L = 5; G c3s1-960, R960 x9,
# u480 u240 u120 u60 c7s1-3; a 3-scale D of C64-C128-C256-C512; InstanceNorm.
GC2018_PAPER = {
    "encoder_widths": (60, 120, 240, 480, 960),
    "latent_channels": 8,
    "levels": 5,
    "generator_widths": (960, 480, 240, 120, 60),
    "residual_blocks": 9,
    "discriminator_widths": (64, 128, 256, 512),
    "discriminator_scales": 3,
    "norm": "instance",
}


@pytest.mark.parametrize(
    ("name", "expected"), [("hific", PAPER_ARCH), ("jt", PAPER_ARCH | JT_OPTIONS), ("gc2018", GC2018_PAPER)]
)
def test_the_paper_presets_are_the_papers_networks(name: str, expected: dict, tmp_path: Path) -> None:
    arch = hydra.utils.instantiate(compose_config([f"arch={name}"], tmp_path).arch)
    assert {key: getattr(arch, key) for key in expected} == expected


@pytest.mark.parametrize("name", group_options("arch"))
def test_every_arch_instantiates_and_takes_overrides(name: str, tmp_path: Path) -> None:
    arch = hydra.utils.instantiate(compose_config([f"arch={name}", "arch.residual_blocks=1"], tmp_path).arch)
    assert type(arch).__name__ == ("GC2018Config" if name.startswith("gc2018") else "ArchConfig")
    assert arch.residual_blocks == 1


@pytest.mark.parametrize(("name", "target", "lambda_a"), [("low", 0.14, 2.0), ("med", 0.30, 1.0), ("high", 0.45, 0.5)])
def test_regimes_carry_the_paper_numbers(name: str, target: float, lambda_a: float, tmp_path: Path) -> None:
    loss = hydra.utils.instantiate(compose_config([f"regime={name}"], tmp_path).loss)
    assert isinstance(loss, LossConfig)
    assert (loss.target_bpp, loss.lambda_a, loss.lambda_b) == (target, lambda_a, 0.1 * 2**-5 / (0.1 * 2**1))
    assert loss.warmup_rate_weight_factor == 1 / 2.0  # configs.py lambda_schedule vals [2., 1.] on the divisor
    assert loss.k_m == pytest.approx(0.75 * 0.1 * 2**-5)  # configs.py CD * C
    assert loss.warmup_target_factor == pytest.approx(0.20 / 0.14)  # configs.py target_schedule
    assert loss.k_p == 1.0 and loss.beta == pytest.approx(0.1 * 1.5**1)  # configs.py lpips_weight, CP
    text = hydra.utils.instantiate(compose_config([f"regime={name}", "regime.lambda_b=0.0625"], tmp_path).loss)
    assert text.lambda_b == 2**-4  # the paper's text, one override away


def test_the_default_recipe_is_the_authors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # tensorflow/compression models/hific: train.py --batch_size 8 --crop_size 256 --num_steps 1M;
    # configs.py lr 1e-4, lr_schedule vals [1., 0.1] steps [500000], lambda/target schedules steps [50000],
    # num_steps_disc 1; model.py compare_gan non_saturating loss.
    monkeypatch.setenv("HIFIC_SHARDS", str(tmp_path))
    cfg = compose_config(["stage=gan"], tmp_path)
    assert (cfg.data.batch_size, cfg.data.crop_size, cfg.max_iterations) == (8, 256, 1_000_000)
    assert (cfg.stage.lr_schedule.decay_iteration, cfg.stage.lr_schedule.factor) == (500_000, 0.1)
    assert cfg.loss.warmup_iterations == 50_000 and cfg.loss.gan_loss == "non_saturating"
    assert (cfg.data.scale_range[0], cfg.data.scale_range[1], cfg.data.interpolation, cfg.data.flip) == (
        0.75,
        0.95,
        "bilinear",
        False,
    )
    assert cfg.perceptual.pretrained_backbone  # LPIPS on a trained AlexNet (lpips_weight__net-lin_alex_v0.1)
    module = hydra.utils.instantiate(cfg.stage, perceptual=torch.nn.Identity(), arch=ARCH_PRESETS["tiny"])
    assert module.sub_batches_per_iteration == 1 + 1  # num_steps_disc + 1
    assert module.lr_schedule.multiplier(499_999) == 1.0 and module.lr_schedule.multiplier(500_000) == 0.1
    optimizers, _ = module.configure_optimizers()
    assert [type(opt).__name__ for opt in optimizers] == ["Adam"] * 3  # codec, aux, discriminator
    assert [opt.defaults["lr"] for opt in optimizers] == [1e-4] * 3  # configs.py lr


@pytest.mark.parametrize(("stage", "cls"), [("base", RDStage), ("gan", GANStage)])
def test_stages_instantiate(stage: str, cls: type, tmp_path: Path) -> None:
    cfg = compose_config([f"stage={stage}", "arch=tiny", "stage.codec_optimizer.lr=3e-4", *FAST], tmp_path)
    module = hydra.utils.instantiate(cfg.stage)
    assert type(module) is cls and module.optimizers_per_iteration == (3 if stage == "gan" else 2)
    assert isinstance(getattr(module, "discriminator", None), Discriminator) == (stage == "gan")
    assert not any(k.startswith("discriminator") for k in module.model.state_dict())
    optimizers, schedulers = module.configure_optimizers()
    assert [opt.defaults["lr"] for opt in optimizers] == [3e-4] + [1e-4] * (len(module.optimizer_names) - 1)
    assert [s.optimizer for s in schedulers] == optimizers  # one LambdaLR per optimizer (configs.py lr_schedule)


@pytest.mark.parametrize("trainer", group_options("trainer"))
def test_trainers_instantiate(trainer: str, tmp_path: Path) -> None:
    cfg = compose_config([f"trainer={trainer}", "trainer.accelerator=cpu"], tmp_path)
    built = hydra.utils.instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    assert isinstance(built, pl.Trainer) and built.precision == "32-true"
    ddp = trainer == "ddp"
    assert built.num_devices == (2 if ddp else 1)
    assert isinstance(built.strategy, DDPStrategy) == ddp
    if ddp:  # each manual backward touches one optimizer's parameters
        assert built.strategy._ddp_kwargs == {"find_unused_parameters": True}


@pytest.mark.parametrize(
    ("logger", "kind"), [("wandb", "ResumableWandbLogger"), ("csv", "ResumableCSVLogger"), ("none", None)]
)
def test_loggers_instantiate(logger: str, kind: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    loggers = instantiate_dict(compose_config([f"logger={logger}"], tmp_path).get("logger"))
    assert [type(lg).__name__ for lg in loggers] == ([kind] if kind else [])
    assert all(Path(lg.save_dir) == tmp_path for lg in loggers)  # inside the run folder


def test_callbacks_instantiate(tmp_path: Path) -> None:
    callbacks = {type(cb).__name__: cb for cb in instantiate_dict(compose_config([], tmp_path).callbacks)}
    assert set(callbacks) == {"ModelCheckpoint", "ReconstructionImages", "ResumePoints", "InferenceExport"}
    checkpoint = callbacks["ModelCheckpoint"]
    assert (checkpoint.monitor, checkpoint.mode, checkpoint.save_last) == ("val/rd_loss", "min", True)
    assert Path(checkpoint.dirpath) == tmp_path / "checkpoints"
    assert Path(callbacks["InferenceExport"].path) == tmp_path / "inference.ckpt"
    assert Path(callbacks["ResumePoints"].dirpath) == tmp_path / "checkpoints"


REQUIRED_DATA_ARGS = {"folder": "data.train_dir={tmp}"}


@pytest.mark.parametrize(
    ("arch", "data"), [("hific", "WebDataModule"), ("small", "SampleDataModule"), ("tiny", "SampleDataModule")]
)
def test_the_paper_model_trains_on_shards_and_the_small_ones_on_the_sample_photos(
    arch: str, data: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HIFIC_SHARDS", raising=False)
    monkeypatch.delenv("HIFIC_DATA", raising=False)
    cfg = compose_config([f"arch={arch}"], tmp_path)
    assert cfg.data._target_ == f"hific_lit.data.{data}"
    if arch == "hific":
        assert cfg.data.train_shards == str(CONFIG_DIR.parent / "data" / "openimages" / "shards")
        monkeypatch.setenv("HIFIC_SHARDS", str(tmp_path))
        assert compose_config([], tmp_path).data.train_shards == str(tmp_path)


AUTHORS_CROPS = {
    "batch_size": 8,
    "crop_size": 256,
    "scale_range": (0.75, 0.95),
    "interpolation": "bilinear",
    "flip": False,
}
"""models/hific: train.py --batch_size 8 --crop_size 256; model.py _get_dataset: scale 0.75..0.95, bilinear resize
without antialiasing, no flip."""
CROP_DEPARTURES = {"photos": {"crop_size": 128, "flip": True}}
"""Data sets that change the authors' crops on purpose (data=photos: the bundled model's recipe, docs/bundled.md)."""


@pytest.mark.parametrize("data", group_options("data"))
def test_every_data_option_makes_the_authors_crops(data: str, tmp_path: Path) -> None:
    extra = [REQUIRED_DATA_ARGS[data].format(tmp=tmp_path)] if data in REQUIRED_DATA_ARGS else []
    datamodule = hydra.utils.instantiate(compose_config([f"data={data}", *extra], tmp_path).data)
    assert isinstance(datamodule, pl.LightningDataModule)
    crops = datamodule.train_transform
    made = {"batch_size": datamodule.batch_size, "crop_size": datamodule.crop_size}
    made |= {key: getattr(crops, key) for key in ("scale_range", "interpolation", "flip")}
    assert crops.crop_size == datamodule.crop_size
    assert made == AUTHORS_CROPS | CROP_DEPARTURES.get(data, {})


@pytest.mark.parametrize("data", ["sample", "folder"])
def test_data_overrides_reach_the_batches(data: str, tmp_path: Path) -> None:
    if data == "folder":
        for i in range(3):
            Image.fromarray(np.full((64, 80, 3), 40 * i, dtype=np.uint8)).save(tmp_path / f"img{i}.png")
    extra = [REQUIRED_DATA_ARGS[data].format(tmp=tmp_path)] if data in REQUIRED_DATA_ARGS else []
    overrides = [f"data={data}", *extra, "data.crop_size=32", "data.batch_size=2", "data.num_workers=0"]
    datamodule = hydra.utils.instantiate(compose_config(overrides, tmp_path).data)
    datamodule.setup("fit")
    assert next(iter(datamodule.train_dataloader())).shape == (2, 3, 32, 32)


@pytest.mark.parametrize(
    "overrides",
    [["experiment=" + e] for e in group_options("experiment")] + [["debug=" + d] for d in group_options("debug")],
)
def test_experiments_and_debug_presets_compose(overrides: list[str], tmp_path: Path) -> None:
    cfg = compose_config([*overrides, "warmstart=null"], tmp_path)
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    assert cfg.max_iterations > 0


def test_rate_sweep_is_a_multirun_over_regimes(tmp_path: Path) -> None:
    search = OmegaConf.load(CONFIG_DIR / "hparams_search" / "rate_sweep.yaml")
    assert search.hydra.mode == "MULTIRUN"
    assert set(search.hydra.sweeper.params.regime.split(",")) == {"low", "med", "high"}
    assert compose_config(["hparams_search=rate_sweep"], tmp_path).optimized_metric == "val/rd_loss"


DDP = "ddp_find_unused_parameters_true"


@pytest.mark.parametrize(("devices", "strategy"), [(1, "auto"), ("1", "auto"), ([3], "auto"), (4, DDP), ("auto", DDP)])
def test_several_devices_get_ddp(devices: object, strategy: str, tmp_path: Path) -> None:
    assert strategy_for_devices(devices) == strategy
    assert compose_config([f"trainer.devices={devices}"], tmp_path).trainer.strategy == strategy


def test_eval_refuses_decompression_bombs_at_2_to_the_28_pixels(tmp_path: Path) -> None:
    assert compose_named("eval", ["ckpt=m.ckpt"], tmp_path).max_pixels == 2**28  # docs/coding.md, the command line
    assert compose_named("eval", ["ckpt=m.ckpt", "max_pixels=1000"], tmp_path).max_pixels == 1000
    with pytest.raises(ValueError, match="constant of hific_lit"):
        hific_constant("os.environ")
