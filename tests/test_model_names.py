"""``hific compress`` without --ckpt (the bundled model, said in one line), ``--model NAME``, and ``hific decompress``
finding the model by the file's fingerprint (cache first, then bundled), else one line naming what is needed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hific_lit import HiFiC
from hific_lit.cli import main
from hific_lit.io.checkpoint import load_inference_checkpoint, save_inference_checkpoint
from hific_lit.pretrained import registry
from hific_lit.pretrained.registry import write_model_info


def _model(folder: Path, name: str, seed: int) -> Path:
    torch.manual_seed(seed)
    ckpt = folder / f"{name}.ckpt"
    folder.mkdir(parents=True, exist_ok=True)
    save_inference_checkpoint(HiFiC.from_preset("tiny"), ckpt)
    write_model_info(ckpt, load_inference_checkpoint(ckpt).fingerprint())
    return ckpt


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "bundled": _model(root / "package", "bundled", 0),
        "cached": _model(root / "home" / "models", "hific-low", 1),
        "stranger": _model(root / "elsewhere", "stranger", 2),
    }


@pytest.fixture
def places(models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "bundled_dir", lambda: models["bundled"].parent)
    monkeypatch.setenv(registry.HOME_ENV, str(models["cached"].parents[1]))


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(path)
    return path


def test_compress_without_ckpt_uses_the_bundled_model_and_decompress_finds_it(places, models, photo, capsys) -> None:
    assert main(["compress", str(photo)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "hific compress: no --ckpt given: using the bundled model 'bundled'"
    hfc = photo.with_suffix(".hfc")
    assert main(["decompress", str(hfc)]) == 0
    note = capsys.readouterr().out.splitlines()[0]
    assert note == f"hific decompress: {hfc} was made by the bundled model 'bundled'; using it"
    decoded = np.asarray(Image.open(photo.with_suffix(".decoded.png")))
    assert main(["decompress", str(hfc), "--ckpt", str(models["bundled"]), "-o", str(photo.parent / "ref.png")]) == 0
    assert np.array_equal(decoded, np.asarray(Image.open(photo.parent / "ref.png")))


def test_model_by_name_from_the_cache_is_found_again_by_fingerprint(places, models, photo, capsys) -> None:
    assert main(["compress", str(photo), "--model", "hific-low", "-q"]) == 0
    assert main(["decompress", str(photo.with_suffix(".hfc"))]) == 0
    assert "made by the cache model 'hific-low'" in capsys.readouterr().out


def test_file_of_an_unknown_model_says_what_is_needed_in_one_line(places, models, photo, capsys) -> None:
    assert main(["compress", str(photo), "--ckpt", str(models["stranger"]), "-q"]) == 0
    capsys.readouterr()
    assert main(["decompress", str(photo.with_suffix(".hfc"))]) == 2
    err = capsys.readouterr().err.strip()
    fingerprint = load_inference_checkpoint(models["stranger"]).fingerprint().hex()
    assert "\n" not in err and fingerprint in err and "--ckpt PATH" in err and "hific download" in err


def test_unknown_name_and_both_options_are_refused(places, photo, capsys) -> None:
    assert main(["compress", str(photo), "--model", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["compress", str(photo), "--model", "bundled", "--ckpt", "x.ckpt"])
    assert exc.value.code == 2


def test_eval_takes_models_by_name(places, models) -> None:
    from hific_lit.eval.pipeline import checkpoint_paths

    named = checkpoint_paths(None, ["bundled", "hific-low"])
    assert named == {"bundled": models["bundled"], "hific-low": models["cached"]}
    assert list(checkpoint_paths("runs/x.ckpt", "bundled")) == ["x", "bundled"]


def test_bundle_model_puts_a_run_into_the_package_in_bf16(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, load_script
) -> None:
    """scripts/bundle_model.py: checkpoint (bf16 transforms), fingerprint, recipe, seed, log, curve; found by name."""
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("seed: 23\nmax_iterations: 5\n")
    (run / "train.log").write_text("iteration 5: validation photos ...\n")
    (run / "csv" / "version_0").mkdir(parents=True)
    (run / "csv" / "version_0" / "metrics.csv").write_text("step,val/psnr\n4,20.0\n")
    torch.manual_seed(3)
    save_inference_checkpoint(HiFiC.from_preset("tiny"), run / "inference.ckpt")
    package = tmp_path / "package"
    ckpt = load_script("bundle_model").bundle(run, "bf16", package)
    assert sorted(p.name for p in package.iterdir()) == [
        "bundled.ckpt", "bundled.json", "metrics.csv", "recipe.yaml", "train.log"
    ]  # fmt: skip
    monkeypatch.setattr(registry, "bundled_dir", lambda: package)
    monkeypatch.setenv(registry.HOME_ENV, str(tmp_path / "empty-home"))
    entry = registry.resolve_model("bundled")
    assert entry.path == ckpt and entry.place == "bundled"
    info = json.loads((package / "bundled.json").read_text())
    assert info["seed"] == 23 and info["iterations"] == 5 and info["weights_precision"] == "bf16"
    assert info["fingerprint"] == load_inference_checkpoint(run / "inference.ckpt").fingerprint().hex()
    raw = torch.load(ckpt, weights_only=True)["state_dict"]
    assert {v.dtype for k, v in raw.items() if k.startswith("g_s.") and v.is_floating_point()} == {torch.bfloat16}


def test_bundle_model_joins_the_curve_of_a_resumed_run(tmp_path: Path, load_script) -> None:
    """A run resumed at step 3 logs into csv/version_1 from there: the shipped curve is version_0 up to step 2, then
    version_1 (its columns added), each step once."""
    logs = []
    for version, text in enumerate(
        ["step,train/psnr\n0,10.0\n2,11.0\n3,12.0\n4,13.0\n", "step,train/psnr,val/psnr\n3,12.5,\n4,13.5,9.0\n"]
    ):
        folder = tmp_path / "csv" / f"version_{version}"
        folder.mkdir(parents=True)
        (folder / "metrics.csv").write_text(text)
        logs.append(folder / "metrics.csv")
    out = tmp_path / "metrics.csv"
    load_script("bundle_model").write_joined_curve(logs, out)
    assert out.read_text().splitlines() == [
        "step,train/psnr,val/psnr", "0,10.0,", "2,11.0,", "3,12.5,", "4,13.5,9.0"
    ]  # fmt: skip


def test_bundle_model_ships_the_run_a_warm_started_model_started_from(tmp_path: Path, load_script) -> None:
    """experiment=bundled_rate starts from experiment=bundled's run: its recipe, log and curve ship as base_*."""
    runs = {}
    warmstart = tmp_path / "base" / "inference.ckpt"
    for name, config in (
        ("base", "task_name: bundled\nseed: 23\nmax_iterations: 7\n"),
        ("rate", f"task_name: bundled_rate\nseed: 23\nmax_iterations: 5\nwarmstart: {warmstart}\n"),
    ):  # fmt: skip
        run = runs[name] = tmp_path / name
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "config.yaml").write_text(config)
        (run / "train.log").write_text(f"{name} log\n")
        (run / "csv" / "version_0").mkdir(parents=True)
        (run / "csv" / "version_0" / "metrics.csv").write_text("step,val/psnr\n4,20.0\n")
    torch.manual_seed(3)
    save_inference_checkpoint(HiFiC.from_preset("tiny"), runs["rate"] / "inference.ckpt")
    package = tmp_path / "package"
    load_script("bundle_model").bundle(runs["rate"], "fp32", package)
    assert (package / "base_train.log").read_text() == "base log\n"
    assert (package / "train.log").read_text() == "rate log\n"
    assert (package / "base_metrics.csv").is_file() and "max_iterations: 7" in (
        package / "base_recipe.yaml"
    ).read_text()
    info = json.loads((package / "bundled.json").read_text())
    assert info["experiment"] == "bundled_rate" and info["warm_start"] == {"experiment": "bundled", "iterations": 7}


def test_the_shipped_bundled_model_takes_a_target_bpp_without_a_checkpoint(
    astronaut: torch.Tensor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 23 with issue 22: the model in the package is rate-conditioned, so ``hific compress photo.png
    --target-bpp 0.3`` needs no checkpoint (the file within ±2 % of 0.3 bpp, issue 22's tolerance) and ``hific
    decompress photo.hfc`` needs no flag."""
    monkeypatch.setenv(registry.HOME_ENV, str(tmp_path / "empty-home"))
    assert registry.resolve_model("bundled").place == "bundled"
    photo = tmp_path / "photo.png"
    pixels = astronaut[0, :, :192, 128:384].mul(255).round().byte().permute(1, 2, 0).numpy()
    Image.fromarray(pixels).save(photo)
    assert main(["compress", str(photo), "--target-bpp", "0.3"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("hific compress: no --ckpt given: using the bundled")
    hfc = photo.with_suffix(".hfc")
    assert abs(8 * hfc.stat().st_size / (192 * 256) - 0.3) <= 0.02 * 0.3
    assert main(["decompress", str(hfc)]) == 0
    assert np.asarray(Image.open(photo.with_suffix(".decoded.png"))).shape == (192, 256, 3)
