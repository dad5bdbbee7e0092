"""Every arch x stage x data choice of ``hific train`` either builds or stops on one line naming the fix (issue #26).

Each combination is composed, checked (:func:`hific_lit.config.check.check_training_config`) and its data module
and stage instantiated as ``train()`` does, with the networks shrunk so that 140 stages build in seconds; nothing
trains. A combination that builds here runs (the smoke tests train each family's stages).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from hific_lit.cli.hydra_apps import main as hydra_main
from hific_lit.config.check import check_training_config
from hific_lit.errors import DatasetError, SettingError
from hific_lit.models.gc2018.arch import GC2018_PRESETS
from hific_lit.models.hific.arch import ARCH_PRESETS
from hific_lit.training.base import RDStage
from hific_lit.training.gc2018 import GC2018Stage
from hific_lit.training.run import build_datamodule, build_module, compose_config

ARCHS = sorted(ARCH_PRESETS) + sorted(GC2018_PRESETS)
STAGES = ["base", "gan", "gc2018", "gc2018_mse"]
DATA = ["default", "sample", "folder", "folder_without_dir", "openimages_wds"]
SHRINK = {
    "hific": [
        "arch.encoder_widths=[4,8,8,16,16]",
        "arch.generator_widths=[16,16,8,8,4]",
        "arch.latent_channels=8",
        "arch.hyper_filters=8",
        "arch.residual_blocks=1",
        "arch.discriminator_widths=[8,8,16,16]",
    ],
    "gc2018": [
        "arch.encoder_widths=[4,8,8,16,16]",
        "arch.generator_widths=[16,16,8,8,4]",
        "arch.residual_blocks=1",
        "arch.discriminator_widths=[8,16]",
    ],
}


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    for i in range(2):
        Image.new("RGB", (80, 64), (40 * i, 90, 160)).save(folder / f"{i}.png")
    return folder


def overrides(arch: str, stage: str, data: str, image_dir: Path) -> list[str]:
    family = "gc2018" if arch in GC2018_PRESETS else "hific"
    chosen = [f"arch={arch}", f"stage={stage}", *SHRINK[family], "perceptual=null", "loss.k_p=0"]
    if data == "folder":
        chosen += ["data=folder", f"data.train_dir={image_dir}"]
    elif data == "folder_without_dir":
        chosen.append("data=folder")
    elif data != "default":
        chosen.append(f"data={data}")
    return chosen


def attempt(arch: str, stage: str, data: str, image_dir: Path, tmp_path: Path) -> str:
    """``built`` or the one-line message the combination stops with (any other exception fails the test)."""
    cfg = compose_config(overrides(arch, stage, data, image_dir), tmp_path)
    try:
        check_training_config(cfg)
        build_datamodule(cfg)
        module = build_module(cfg)
    except (SettingError, DatasetError) as exc:
        message = str(exc)
        assert "\n" not in message, message
        return message
    gc2018 = arch in GC2018_PRESETS
    assert isinstance(module, GC2018Stage if gc2018 else RDStage) and not isinstance(
        module, RDStage if gc2018 else GC2018Stage
    )
    return "built"


def expect(arch: str, stage: str, data: str, outcome: str) -> None:
    """The outcome each combination must have: built, or the one line naming the fix."""
    gc2018 = arch in GC2018_PRESETS
    shards = data == "openimages_wds" or (data == "default" and arch in ("hific", "jt", "gc2018"))
    if stage.startswith("gc2018") != gc2018:
        expected = "stage=gc2018" if gc2018 else "stage=base"
        assert f"is a {'GC2018' if gc2018 else 'HiFiC'} model" in outcome and expected in outcome, outcome
    elif data == "folder_without_dir":
        assert outcome.startswith("data.train_dir must be set: add data.train_dir="), outcome
    elif arch.endswith("_rate"):  # the default regime=med has one target, the arch three anchors
        assert (
            outcome.startswith("arch.rate_conditioning trains one rate target per anchor") and "regime=rate" in outcome
        )
    elif shards:
        assert outcome.startswith("no training shards at") and "make shards" in outcome, outcome
    else:
        assert outcome == "built", (arch, stage, data, outcome)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_arch_with_every_stage_builds_or_names_the_fix(
    arch: str, image_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIFIC_SHARDS", str(tmp_path / "no-shards"))
    for stage in STAGES:
        expect(arch, stage, "default", attempt(arch, stage, "default", image_dir, tmp_path))


@pytest.mark.parametrize("arch", ["tiny", "gc2018_tiny"])
def test_every_data_set_with_a_matching_stage_builds_or_names_the_fix(
    arch: str, image_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIFIC_SHARDS", str(tmp_path / "no-shards"))
    stage = "gc2018" if arch in GC2018_PRESETS else "gan"
    for data in DATA:
        expect(arch, stage, data, attempt(arch, stage, data, image_dir, tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_every_arch_stage_and_data_combination_builds_or_names_the_fix(
    arch: str, image_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIFIC_SHARDS", str(tmp_path / "no-shards"))
    for stage in STAGES:
        for data in DATA:
            expect(arch, stage, data, attempt(arch, stage, data, image_dir, tmp_path))


def test_a_gan_experiment_without_warmstart_stops_on_one_line(tmp_path: Path) -> None:
    for experiment in ("hific_gan", "mric_gan"):
        with pytest.raises(SettingError, match=r"^warmstart must be set: add warmstart=<base-stage run>"):
            check_training_config(compose_config([f"experiment={experiment}"], tmp_path))
        check_training_config(compose_config([f"experiment={experiment}", "warmstart=x.ckpt"], tmp_path))


def test_a_value_the_arch_refuses_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(SettingError, match=r"^arch: unknown padding 'foo'"):
        check_training_config(compose_config(["arch=tiny", "arch.padding=foo"], tmp_path))


def test_hific_train_with_a_gc2018_arch_and_the_default_stage_says_which_stage(tmp_path: Path, capsys) -> None:
    status = hydra_main("train", ["arch=gc2018_tiny", f"hydra.run.dir={tmp_path}", "logger=none"], "hific train")
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("hific train: error: arch=gc2018_tiny is a GC2018 model") and "stage=gc2018_mse" in line
