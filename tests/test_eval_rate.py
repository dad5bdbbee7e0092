"""``hific eval`` of a rate-conditioned checkpoint: its whole RD curve from one model (``rates``, ``target_bpps``),
every point from real files, with the baselines matched at each point's bpp."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from hific_lit.config import compose_config
from hific_lit.errors import CheckpointError, SettingError
from hific_lit.eval.pipeline import evaluate
from hific_lit.eval.runner import Scorers
from hific_lit.io.checkpoint import save_inference_checkpoint
from hific_lit.models.hific.arch import ARCH_PRESETS
from hific_lit.models.hific.model import HiFiC


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    model = HiFiC(dataclasses.replace(ARCH_PRESETS["tiny"], rate_conditioning=True))
    with torch.no_grad():
        model.rate_gains.log_gain.copy_(torch.linspace(-2.0, 1.0, 3)[:, None].expand(3, 8))
    save_inference_checkpoint(model, folder / "rate.pt")
    save_inference_checkpoint(HiFiC.from_preset("tiny"), folder / "fixed.pt")
    return {"rate": folder / "rate.pt", "fixed": folder / "fixed.pt"}


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(np.ascontiguousarray(data.astronaut()[:128, :192])).save(folder / "astronaut.png")
    Image.fromarray(np.ascontiguousarray(data.coffee()[:128, :128])).save(folder / "coffee.png")
    return folder


def config(checkpoint: Path, photos: Path, *extra: str):
    overrides = [f"ckpt={checkpoint}", "eval_set=folder", f"eval_set.path={photos}", "device=cpu", "baselines=[jpeg]"]
    return compose_config("eval", [*overrides, *extra])


def test_rates_draw_the_curve_of_one_checkpoint(checkpoints: dict[str, Path], photos: Path, tmp_path: Path) -> None:
    summary = evaluate(config(checkpoints["rate"], photos, "rates=[0,0.5,1]"), tmp_path, Scorers())
    names = ["rate@rate0", "rate@rate0.5", "rate@rate1"]
    assert list(summary["checkpoints"]) == names
    bpps = [summary["checkpoints"][n]["methods"]["hific"]["bpp"] for n in names]
    assert bpps == sorted(bpps) and bpps[0] < bpps[-1]
    rows = json.loads((tmp_path / "per_image.json").read_text())
    for name, rate in zip(names, (0.0, 0.5, 1.0), strict=True):
        ours = [r for r in rows if r["checkpoint"] == name and r["method"] == "hific"]
        assert len(ours) == 2 and all(r["rate"] == pytest.approx(rate, abs=1e-4) for r in ours)
        jpeg = {r["image"]: r for r in rows if r["checkpoint"] == name and r["method"] == "jpeg"}
        assert all(jpeg[r["image"]]["bpp"] >= r["bpp"] or not jpeg[r["image"]]["matched"] for r in ours)
        assert (tmp_path / name / "viewer.html").is_file()
    assert summary["checkpoints"]["rate@rate0.5"]["coding"] == {"rate": 0.5}
    assert (tmp_path / "plots" / "rd_psnr.png").is_file()


def test_target_bpps_code_each_image_at_its_own_rate(
    checkpoints: dict[str, Path], photos: Path, tmp_path: Path
) -> None:
    summary = evaluate(config(checkpoints["rate"], photos, "target_bpps=[0.4]"), tmp_path, Scorers())
    rows = [r for r in json.loads((tmp_path / "per_image.json").read_text()) if r["method"] == "hific"]
    assert list(summary["checkpoints"]) == ["rate@0.4bpp"]
    assert all(abs(r["bpp"] / 0.4 - 1) <= 0.02 for r in rows) and rows[0]["rate"] != rows[1]["rate"]


def test_rates_need_a_rate_conditioned_checkpoint(checkpoints: dict[str, Path], photos: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint fixed has one rate"):
        evaluate(config(checkpoints["fixed"], photos, "rates=[0.5]"), tmp_path, Scorers())
    with pytest.raises(SettingError, match=r"1\.5 is out of range"):
        evaluate(config(checkpoints["rate"], photos, "rates=[1.5]"), tmp_path, Scorers())
