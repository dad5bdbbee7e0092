"""Every config group composes and instantiates; arch presets and paper numbers agree with the package."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
import pytorch_lightning as pl
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from hific_lit.config import CONFIG_DIR
from hific_lit.models.gc2018.arch import GC2018_PRESETS
from hific_lit.models.hific.arch import ARCH_PRESETS
from hific_lit.nn import Discriminator
from hific_lit.training.base import RDStage
from hific_lit.training.gan import GANStage
from hific_lit.training.losses import LossConfig
from hific_lit.training.run import DDP_STRATEGY, compose_config, instantiate_dict, strategy_for_devices

FAST = ["perceptual.pretrained_backbone=false"]


def options(group: str) -> list[str]:
    """A group's options: its YAML files, and the nodes registered in Hydra's ConfigStore (the arch presets)."""
    stored = ConfigStore.instance().repo.get(group, {})
    return sorted(
        {p.stem for p in (CONFIG_DIR / group).glob("*.yaml")} | {name.removesuffix(".yaml") for name in stored}
    )


def test_every_group_has_its_options() -> None:
    assert set(options("arch")) == {"hific", "jt", "small", "tiny", "gc2018", "gc2018_small", "gc2018_tiny"}
    assert set(options("regime")) == {"low", "med", "high"}
    assert set(options("stage")) == {"base", "gan", "gc2018", "gc2018_mse"}
    assert {"cpu", "gpu", "ddp"} <= set(options("trainer"))
    assert set(options("logger")) == {"wandb", "csv", "none"}
    assert {"sample", "folder"} <= set(options("data"))
    for group in ("experiment", "hparams_search", "debug", "paths", "callbacks"):
        assert options(group), group


@pytest.mark.parametrize("name", options("arch"))
def test_arch_configs_match_the_presets(name: str, tmp_path: Path) -> None:
    cfg = compose_config([f"arch={name}"], tmp_path)
    assert hydra.utils.instantiate(cfg.arch) == {**ARCH_PRESETS, **GC2018_PRESETS}[name]


@pytest.mark.parametrize(("name", "target", "lambda_a"), [("low", 0.14, 2.0), ("med", 0.30, 1.0), ("high", 0.45, 0.5)])
def test_regimes_carry_the_paper_numbers(name: str, target: float, lambda_a: float, tmp_path: Path) -> None:
    loss = hydra.utils.instantiate(compose_config([f"regime={name}"], tmp_path).loss)
    assert isinstance(loss, LossConfig)
    assert (loss.target_bpp, loss.lambda_a, loss.lambda_b) == (target, lambda_a, 0.1 * 2**-5 / (0.1 * 2**1))
    assert loss.warmup_rate_weight_factor == 1 / 2.0  # configs.py lambda_schedule vals [2., 1.] on the divisor
    assert loss.k_m == pytest.approx(0.075 * 2**-5) and loss.warmup_target_factor == pytest.approx(0.20 / 0.14)


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


@pytest.mark.parametrize(("stage", "cls"), [("base", RDStage), ("gan", GANStage)])
def test_stages_instantiate(stage: str, cls: type, tmp_path: Path) -> None:
    cfg = compose_config([f"stage={stage}", "arch=tiny", *FAST], tmp_path)
    module = hydra.utils.instantiate(cfg.stage)
    assert type(module) is cls and module.optimizers_per_iteration == (3 if stage == "gan" else 2)
    assert isinstance(getattr(module, "discriminator", None), Discriminator) == (stage == "gan")
    assert not any(k.startswith("discriminator") for k in module.model.state_dict())
    optimizers, schedulers = module.configure_optimizers()
    assert [opt.defaults["lr"] for opt in optimizers] == [1e-4] * len(module.optimizer_names)
    assert [s.optimizer for s in schedulers] == optimizers  # one LambdaLR per optimizer (configs.py lr_schedule)


@pytest.mark.parametrize("trainer", options("trainer"))
def test_trainers_instantiate(trainer: str, tmp_path: Path) -> None:
    cfg = compose_config([f"trainer={trainer}", "trainer.accelerator=cpu", "trainer.devices=1"], tmp_path)
    assert isinstance(hydra.utils.instantiate(cfg.trainer, logger=False, enable_checkpointing=False), pl.Trainer)


@pytest.mark.parametrize("logger", options("logger"))
def test_loggers_instantiate(logger: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    loggers = instantiate_dict(compose_config([f"logger={logger}"], tmp_path).get("logger"))
    assert len(loggers) == (0 if logger == "none" else 1)
    assert all(isinstance(lg, pl.loggers.Logger) for lg in loggers)


def test_callbacks_instantiate(tmp_path: Path) -> None:
    callbacks = instantiate_dict(compose_config([], tmp_path).callbacks)
    names = {type(cb).__name__ for cb in callbacks}
    assert names == {"ModelCheckpoint", "ReconstructionImages", "ResumePoints", "InferenceExport"}


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


@pytest.mark.parametrize("data", options("data"))
def test_data_modules_instantiate(data: str, tmp_path: Path) -> None:
    extra = [REQUIRED_DATA_ARGS[data].format(tmp=tmp_path)] if data in REQUIRED_DATA_ARGS else []
    datamodule = hydra.utils.instantiate(compose_config([f"data={data}", *extra], tmp_path).data)
    assert isinstance(datamodule, pl.LightningDataModule)


@pytest.mark.parametrize(
    "overrides", [["experiment=" + e] for e in options("experiment")] + [["debug=" + d] for d in options("debug")]
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


@pytest.mark.parametrize(
    ("devices", "strategy"), [(1, "auto"), ("1", "auto"), ([3], "auto"), (4, DDP_STRATEGY), ("auto", DDP_STRATEGY)]
)
def test_several_devices_get_ddp(devices: object, strategy: str, tmp_path: Path) -> None:
    assert strategy_for_devices(devices) == strategy
    assert compose_config([f"trainer.devices={devices}"], tmp_path).trainer.strategy == strategy
