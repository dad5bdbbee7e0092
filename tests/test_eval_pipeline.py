"""End to end: tiny checkpoints, a folder of local photos, real .hfc files, baselines, summary, plots, viewer."""

from __future__ import annotations

import csv
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from hific_lit import HiFiC
from hific_lit.config import compose_config
from hific_lit.errors import CheckpointError, DatasetError
from hific_lit.eval.fid import PatchEmbedder
from hific_lit.eval.metrics import LpipsScorer
from hific_lit.eval.pipeline import checkpoint_paths, evaluate, load_scorers
from hific_lit.eval.runner import Scorers
from hific_lit.io.checkpoint import load_inference_checkpoint, save_inference_checkpoint
from hific_lit.io.images import to_uint8
from hific_lit.training.perceptual import LPIPSLoss

ROOT = Path(__file__).resolve().parents[1]


class TinyFeatures(torch.nn.Module):
    """A small stand-in for Inception: uint8 patches -> 8-d features."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 16, stride=16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.float() / 255.0).mean(dim=(2, 3))


def random_trunk_lpips() -> LpipsScorer:
    """The real LPIPS network with a random AlexNet trunk (offline; the pretrained one is tested in
    test_eval_metrics.py): the same code path as an evaluation, other numbers."""
    torch.manual_seed(0)
    return LpipsScorer(LPIPSLoss(pretrained_backbone=False))


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    crops = {
        "astronaut": data.astronaut()[:256, :320],
        "coffee": data.coffee()[:300, :300],
        "cat": data.chelsea()[:150, :200],
    }
    for name, pixels in crops.items():
        Image.fromarray(np.ascontiguousarray(pixels)).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("ckpt")
    paths = []
    for seed, name in ((1, "low"), (2, "high")):
        torch.manual_seed(seed)
        path = folder / f"{name}.pt"
        save_inference_checkpoint(HiFiC.from_preset("tiny"), path)
        paths.append(path)
    return paths


def _config(checkpoints: list[Path], photos: Path | None, *extra: str):
    data = ["eval_set=folder", f"eval_set.path={photos}"] if photos else []
    overrides = [f"ckpt=[{','.join(map(str, checkpoints))}]", *data, "device=cpu", *extra]
    return compose_config("eval", overrides)


@pytest.fixture(scope="module")
def run(checkpoints: list[Path], photos: Path, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("eval")
    torch.manual_seed(0)
    scorers = Scorers(random_trunk_lpips(), PatchEmbedder(TinyFeatures()))
    summary = evaluate(_config(checkpoints, photos, "baselines=[jpeg]", "viewer_images=2"), out, scorers)
    return summary, out


def test_bpp_comes_from_the_bytes_on_disk(run: tuple[dict, Path]) -> None:
    summary, out = run
    rows = json.loads((out / "per_image.json").read_text())
    assert len(rows) == 2 * 3 * 2  # checkpoints x images x (ours, jpeg)
    for row in rows:
        size = Path(row["file"]).stat().st_size
        assert row["bytes"] == size and row["bpp"] == 8 * size / (row["width"] * row["height"])
    for name in ("low", "high"):
        ours = [r for r in rows if r["checkpoint"] == name and r["method"] == "hific"]
        assert all(r["file"].endswith(".hfc") for r in ours)
        assert summary["checkpoints"][name]["methods"]["hific"]["bpp"] == pytest.approx(
            np.mean([r["bpp"] for r in ours])
        )
    with open(out / "per_image.csv", newline="") as f:
        assert [float(r["bpp"]) for r in csv.DictReader(f)] == [r["bpp"] for r in rows]


def test_reconstructions_are_decoded_from_the_written_files(run: tuple[dict, Path], checkpoints: list[Path]) -> None:
    _, out = run
    model = load_inference_checkpoint(checkpoints[0])
    for hfc in sorted((out / "low" / "bitstreams").glob("*.hfc")):
        decoded = to_uint8(model.decompress(hfc.read_bytes()))
        saved = np.asarray(Image.open(out / "low" / "reconstructions" / f"{hfc.stem}.png"))
        assert np.array_equal(decoded, saved)


def test_baselines_are_matched_at_or_above_our_bpp(run: tuple[dict, Path]) -> None:
    _, out = run
    rows = json.loads((out / "per_image.json").read_text())
    ours = {(r["checkpoint"], r["image"]): r["bpp"] for r in rows if r["method"] == "hific"}
    for row in (r for r in rows if r["method"] != "hific"):
        target = ours[(row["checkpoint"], row["image"])]
        assert row["bpp"] >= target or not row["matched"]
        assert row["quality"] is not None and row["psnr"] > 0


def test_summary_has_every_metric_fid_kid_and_provenance(run: tuple[dict, Path]) -> None:
    summary, out = run
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    for entry in summary["checkpoints"].values():
        for method in ("hific", "jpeg"):
            values = entry["methods"][method]
            assert values["images"] == 3 and values["patches"] == 2  # the two 256² crops give one patch each
            assert values["unmatched"] == 0
            assert None not in (values["psnr"], values["lpips"], values["fid"], values["kid_mean"])
    assert "ms_ssim" in summary["missing"]  # the 150-px crop is too small for 5-scale MS-SSIM
    assert summary["versions"]["torch"] and summary["versions"]["libjpg"] and summary["command"]
    assert summary["config"]["eval_set"]["path"]


def test_plots_and_viewers_are_written(run: tuple[dict, Path]) -> None:
    summary, out = run
    assert {Path(p).name for p in summary["outputs"]["plots"]} == {"rd_psnr.png", "rd_lpips.png", "rd_fid.png"}
    for name in ("low", "high"):
        html = (out / name / "viewer.html").read_text()
        assert html.count("<section") == 2 and html.count("data:image/") == 2 * 3  # viewer_images=2


def test_unavailable_weights_are_skipped_with_a_warning(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    cfg = _config([tmp_path / "x.pt"], tmp_path, "metrics.download_weights=false")
    missing: dict[str, str] = {}
    with caplog.at_level(logging.WARNING):
        scorers = load_scorers(cfg.metrics, torch.device("cpu"), missing)
    assert scorers.lpips is None and scorers.embed is None
    assert set(missing) == {"lpips", "fid", "kid"} and "AlexNet" in missing["lpips"] and "Inception" in missing["fid"]
    assert "skipping LPIPS" in caplog.text and "skipping FID/KID" in caplog.text


def test_missing_checkpoint_and_data_set_are_clear_errors(checkpoints: list[Path], photos: Path, tmp_path) -> None:
    with pytest.raises(CheckpointError, match=r"nope\.pt"):
        evaluate(_config([tmp_path / "nope.pt"], photos), tmp_path / "out")
    with pytest.raises(DatasetError, match="no image files"):
        evaluate(_config(checkpoints[:1], tmp_path), tmp_path / "out")
    with pytest.raises(DatasetError, match="kodak"):
        evaluate(
            _config(checkpoints[:1], None, "eval_set=kodak", f"eval_set.root={tmp_path / 'data'}"), tmp_path / "out"
        )
    assert not (tmp_path / "out").exists()


def test_script_reports_a_bad_checkpoint_without_a_traceback(tmp_path) -> None:
    bad = tmp_path / "page.pt"
    bad.write_text("<!doctype html><html>login</html>")
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "eval.py"), f"ckpt={bad}", "eval_set=folder",
         f"eval_set.path={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2  # nothing could run
    assert "HTML" in result.stdout + result.stderr and "Traceback" not in result.stdout + result.stderr


@pytest.mark.slow
def test_script_writes_the_whole_run_folder(checkpoints: list[Path], photos: Path, tmp_path) -> None:
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "eval.py"), f"ckpt=[{checkpoints[0]},{checkpoints[1]}]",
         "eval_set=folder", f"eval_set.path={photos}", "metrics.lpips=false", "metrics.fid=false",
         "baselines=[jpeg,webp]", f"hydra.run.dir={run_dir}"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["checkpoints"]) == {"low", "high"}
    assert summary["missing"]["lpips"].startswith("turned off") and "metrics.fid=false" in summary["missing"]["fid"]
    assert "scripts/eval.py" in summary["command"] and "eval_set=folder" in summary["command"]
    for name in ("low", "high"):
        assert len(list((run_dir / name / "bitstreams").glob("*.hfc"))) == 3
        assert (run_dir / name / "viewer.html").is_file()
    assert {p.name for p in (run_dir / "plots").iterdir()} == {"rd_psnr.png"}  # no LPIPS; MS-SSIM lacks the cat
    assert "low" in result.stdout + result.stderr and "results in" in result.stdout + result.stderr


def test_checkpoint_names_are_unique_and_readable() -> None:
    names = checkpoint_paths(["runs/base/inference.ckpt", "runs/gan/inference.ckpt", "low.ckpt"])
    assert list(names) == ["base_inference", "gan_inference", "low"]
    assert list(checkpoint_paths(["a/x/m.ckpt", "b/x/m.ckpt"])) == ["x_m_0", "x_m_1"]
    with pytest.raises(CheckpointError, match="no checkpoint given"):
        checkpoint_paths([])


def test_precision_loads_the_transforms_in_it(checkpoints: list[Path], photos: Path, tmp_path, monkeypatch) -> None:
    import hific_lit.eval.pipeline as pipeline

    seen = []

    def recording(model, *args, **kwargs):
        seen.append(next(model.g_s.parameters()).dtype)
        return original(model, *args, **kwargs)

    original = pipeline.evaluate_checkpoint
    monkeypatch.setattr(pipeline, "evaluate_checkpoint", recording)
    scorers = Scorers(random_trunk_lpips(), PatchEmbedder(TinyFeatures()))
    cfg = _config(checkpoints[:1], photos, "precision=bf16", "baselines=[]", "viewer_images=0")
    summary = evaluate(cfg, tmp_path, scorers)
    assert seen == [torch.bfloat16] and summary["config"]["precision"] == "bf16"
    rows = json.loads((tmp_path / "per_image.json").read_text())
    assert all(r["bytes"] == Path(r["file"]).stat().st_size for r in rows)


@pytest.mark.parametrize("eval_set", ["kodak", "clic2020", "folder"])
def test_eval_config_sits_beside_train_and_shares_its_paths(eval_set: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HIFIC_DATA", str(tmp_path / "sets"))
    cfg = compose_config("eval", ["ckpt=m.ckpt", f"eval_set={eval_set}"], tmp_path)
    train = compose_config("train", ["arch=tiny"], tmp_path)
    assert cfg.paths == train.paths and cfg.paths.data_dir == str(tmp_path / "sets")
    assert cfg.eval_set.name == eval_set and "eval_set" not in train and "data" not in cfg
    if eval_set != "folder":
        assert cfg.eval_set.root == str(tmp_path / "sets")
