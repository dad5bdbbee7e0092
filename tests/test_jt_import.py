"""``hific import-jt``: models of the JT port, checked against the port's own outputs (issue #11).

The fixtures under tests/fixtures/jt/ were written by scripts/make_jt_fixtures.py, which ran the
port's code (its own venv, its checkout outside this repository) on seeded random weights. Each
variant keeps the port's checkpoint less its weights (``NAME.skeleton.pt``), the per-tensor seed
recipe (``NAME.json``) and the port's outputs on one photo crop (``NAME.npz``); the weights are
regenerated here, so the imported model and the port's numbers come from the same tensors.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from hific_lit import cli
from hific_lit.errors import CheckpointError
from hific_lit.io.checkpoint import DISCRIMINATOR_KEY, load_inference_checkpoint, read_inference_checkpoint
from hific_lit.io.images import load_image, save_image
from hific_lit.models.hific.arch import ArchConfig, arch_preset
from hific_lit.models.hific.model import HiFiC
from hific_lit.nn import Discriminator
from hific_lit.nn.padding import pad_to_multiple
from hific_lit.pretrained import import_jt, read_port_checkpoint
from hific_lit.tiling import (
    MEMORY_SAFETY,
    Stage,
    activation_peak_bytes,
    analysis_stage,
    plan_tiles,
    synthesis_stages,
    tiled_synthesis,
)
from hific_lit.training.run import compose_config, train
from hific_lit.training.warmstart import warm_start

FIXTURES = Path(__file__).parent / "fixtures" / "jt"
SCRIPT = Path(__file__).parents[1] / "scripts" / "make_jt_fixtures.py"


def _script():
    spec = importlib.util.spec_from_file_location("make_jt_fixtures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_port_checkpoint(name: str, path: Path) -> Path:
    """The port's checkpoint of fixture ``name``, weights regenerated from the recorded recipe."""
    recipe = json.loads((FIXTURES / f"{name}.json").read_text())["recipe"]
    regenerate = _script().regenerate
    ckpt = torch.load(FIXTURES / f"{name}.skeleton.pt", weights_only=True)
    for key in ("model_state_dict", "discriminator_state_dict"):
        if key in ckpt:
            ckpt[key] = {k: regenerate(recipe[ref.removeprefix("recipe:")]) for k, ref in ckpt[key].items()}
    torch.save(ckpt, path)
    return path


def port_outputs(name: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / f"{name}.npz") as f:
        return dict(f)


def port_input() -> torch.Tensor:
    """The photo crop the port coded, (1, 3, 128, 128) in [0, 1]."""
    with np.load(FIXTURES / "input.npz") as f:
        return torch.from_numpy(f["image"]).permute(2, 0, 1)[None].float() / 255.0


def relative_error(ours: torch.Tensor, theirs: np.ndarray) -> float:
    """max |ours - theirs| / max |theirs|: the error relative to the tensor's scale."""
    ref = torch.from_numpy(theirs).float()
    return float((ours.float() - ref).abs().max() / ref.abs().max())


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each small variant imported once: name -> inference checkpoint (``logistic`` by ``hific import-jt``,
    whose output goes to ``said.txt`` beside it)."""
    folder = tmp_path_factory.mktemp("jt")
    out = {}
    for name in ("logistic", "with_discriminator", "instance_norm"):
        source = write_port_checkpoint(name, folder / f"{name}.pt")
        out[name] = folder / f"{name}.ckpt"
        if name == "logistic":
            said = io.StringIO()
            with contextlib.redirect_stdout(said):
                assert cli.main(["import-jt", str(source), "-o", str(out[name])]) == 0
            (folder / "said.txt").write_text(said.getvalue())
        else:
            import_jt(source, out[name])
        source.unlink()
    return out


def check_against_port(ckpt: Path, name: str) -> HiFiC:
    """The imported model computes what the port computes: y, z, means, scales (1e-4 relative), z_hat
    (exactly), the rounded-rate bits (0.1 %) and the reconstruction (1e-4 max abs, images in [0, 1]),
    both in the forward pass and through a .hfc file."""
    ref = port_outputs(name)
    model = load_inference_checkpoint(ckpt)
    x = port_input()
    with torch.no_grad():
        y = model.analysis(x, max_memory=None)
        z = model.h_a(y)
        z_hat = model.entropy_bottleneck.dequantize(model.entropy_bottleneck.symbols(z))
        mu, sigma = model.hyper_decode(z_hat)
        out = model(x)
    assert relative_error(y, ref["y"]) < 1e-4
    assert relative_error(z, ref["z"]) < 1e-4
    assert torch.equal(z_hat, torch.from_numpy(ref["z_hat"]))
    assert relative_error(mu, ref["means"]) < 1e-4
    assert relative_error(torch.clamp(sigma, min=0.11), ref["scales"]) < 1e-4
    bits = float(out.bpp_rounded) * x.shape[-2] * x.shape[-1]
    assert bits == pytest.approx(float(ref["bits"][2]), rel=1e-3)
    x_hat = in_window(out.x_hat.clamp(0.0, 1.0), name)
    assert float((x_hat[0] - port_reconstruction(name)).abs().max()) < 1e-4
    data = model.compress(x)  # real coding: means and scales from the integer h_s
    assert data.estimated_bits == pytest.approx(float(ref["bits"][2]), rel=1e-3)
    decoded = in_window(model.decompress(data), name)
    assert float((decoded[0] - port_reconstruction(name)).abs().max()) < 1e-4
    return model


def in_window(image: torch.Tensor, name: str) -> torch.Tensor:
    """The part of ``image`` the fixture keeps of the port's reconstruction."""
    window = json.loads((FIXTURES / f"{name}.json").read_text())["reconstruction_window"]
    return image if window is None else image[..., slice(*window[0]), slice(*window[1])]


def port_reconstruction(name: str) -> torch.Tensor:
    """The port's decoded image (3, H, W) in [0, 1] (stored as 16-bit integers: +-7.6e-6)."""
    return torch.from_numpy(port_outputs(name)["reconstruction"].astype(np.float32)) / 65535.0


@pytest.mark.parametrize("name", ["logistic", "with_discriminator", "instance_norm"])
def test_imported_model_computes_what_the_port_computes(imported: dict[str, Path], name: str) -> None:
    check_against_port(imported[name], name)


def test_nine_block_gaussian_model_matches_the_port(tmp_path: Path) -> None:
    """HIFIC-low/high's layout (Gaussian, 9 blocks, C = 220, -norm): ~737 MB of regenerated weights."""
    source = write_port_checkpoint("gaussian9", tmp_path / "gaussian9.pt")
    info = import_jt(source, tmp_path / "gaussian9.ckpt")
    source.unlink()
    assert (info.likelihood, info.residual_blocks, info.latent_channels) == ("gaussian", 9, 220)
    assert (info.normalize_input, info.regime, info.steps) == (True, "low", 412345)
    model = check_against_port(tmp_path / "gaussian9.ckpt", "gaussian9")
    assert model.arch.image_range == "tanh" and model.arch.latent_likelihood == "gaussian"


def test_discriminator_is_kept_and_computes_the_ports_logits(imported: dict[str, Path]) -> None:
    name = "with_discriminator"
    ref = port_outputs(name)
    payload = read_inference_checkpoint(imported[name])
    arch = ArchConfig(**payload["arch"])
    assert arch.discriminator_style == "jt"
    disc = Discriminator.from_arch(arch)
    disc.load_state_dict(payload[DISCRIMINATOR_KEY])
    disc.eval()
    y_hat = torch.from_numpy(np.round(ref["y"] - ref["means"]) + ref["means"])
    with torch.no_grad():
        real = disc(port_input(), y_hat)
    assert real.shape == (1, 1, 8, 8)
    assert relative_error(real.reshape(-1, 1), ref["d_logits_real"]) < 1e-4


def test_import_compress_decompress_round_trip_from_the_command_line(imported: dict[str, Path], tmp_path: Path) -> None:
    name = "logistic"
    ckpt = imported[name]
    said = (ckpt.parent / "said.txt").read_text()
    assert "regime med" in said and "logistic likelihood" in said and "2 residual blocks" in said
    assert "200,001 steps trained" in said
    image = tmp_path / "crop.png"
    save_image(port_input()[0], image)
    assert cli.main(["compress", str(image), "--ckpt", str(ckpt), "-o", str(tmp_path / "crop.hfc"), "-q"]) == 0
    assert (
        cli.main(["decompress", str(tmp_path / "crop.hfc"), "--ckpt", str(ckpt), "-o", str(tmp_path / "out.png"), "-q"])
        == 0
    )
    decoded = load_image(tmp_path / "out.png")  # 8 bits: within half a level of the port's decoded image
    assert float((in_window(decoded, name) - port_reconstruction(name)).abs().max()) <= 0.5 / 255 + 1e-4


class _WritesFile:
    """Unpickling this object would create ``path`` (``exec`` through ``__reduce__``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (exec, (f"open({str(self.path)!r}, 'w').write('ran')",))


def _tiny_port_state() -> dict[str, torch.Tensor]:
    return {
        "Encoder.conv_block_out.1.weight": torch.zeros(4, 2, 3, 3),
        "Generator.resblock_0.conv1.weight": torch.zeros(1),
    }


def test_code_carrying_checkpoint_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    torch.save({"model_state_dict": _tiny_port_state(), "args": _WritesFile(marker)}, path)
    with pytest.raises(CheckpointError, match=r"refused: .* object exec\b.*nothing from the file was executed"):
        read_port_checkpoint(path)
    assert not marker.exists()
    rc = cli.main(["import-jt", str(path), "-o", str(tmp_path / "out.ckpt")])
    assert rc == 2 and not marker.exists() and not (tmp_path / "out.ckpt").exists()
    torch.load(path, weights_only=False)  # negative control: the payload is live
    assert marker.read_text() == "ran"


def test_namespace_args_are_allowed(tmp_path: Path) -> None:
    path = tmp_path / "ns.pt"
    args = argparse.Namespace(likelihood_type="logistic", regime="med", normalize_input_image=False)
    state = {f"module.{k}": v for k, v in _tiny_port_state().items()}  # a DataParallel model's keys
    torch.save({"model_state_dict": state, "args": args, "steps": 7}, path)
    port = read_port_checkpoint(path)
    assert (port.model.likelihood, port.model.regime, port.model.steps) == ("logistic", "med", 7)
    assert (port.model.latent_channels, port.model.residual_blocks) == (4, 1)


def test_lpips_and_entropy_model_copies_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "extra.pt"
    state = _tiny_port_state() | {
        "perceptual_loss.model.net.lin0.model.1.weight": torch.zeros(1, 64, 1, 1),
        "Hyperprior.prior_entropy_model.CDF": torch.zeros(64, 10, dtype=torch.int32),
    }
    torch.save({"model_state_dict": state, "args": {}, "compression_optimizer_state_dict": {"state": {}}}, path)
    port = read_port_checkpoint(path)
    assert not any(k.startswith("perceptual_loss.") for k in port.state) and not port.discriminator


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"use_latent_mixture_model": True}, "logistic mixture"),
        ({"sample_noise": True}, "samples noise"),
        ({"likelihood_type": "laplace"}, "'laplace'"),
    ],
)
def test_unrepresentable_variants_are_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, args: dict, message: str
) -> None:
    path = tmp_path / "variant.pt"
    torch.save({"model_state_dict": _tiny_port_state(), "args": args}, path)
    assert cli.main(["import-jt", str(path), "-o", str(tmp_path / "out.ckpt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot import this JT-port model" in err[0] and message in err[0]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"state_dict": {}}, "no 'model_state_dict'"),
        ({"model_state_dict": {"Encoder.x": torch.zeros(1)}}, "no 'args'"),
        ({"model_state_dict": {"Encoder.x": torch.zeros(1)}, "args": {}}, "no Encoder.* / Generator.*"),
    ],
)
def test_foreign_files_are_refused(tmp_path: Path, payload: dict, message: str) -> None:
    path = tmp_path / "foreign.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=re.escape(message)):
        read_port_checkpoint(path)


def test_gan_stage_warm_starts_from_an_imported_model(imported: dict[str, Path]) -> None:
    """Fine-tuning starts from the imported codec and the port's discriminator (``arch=jt``, ``stage=gan``)."""
    payload = read_inference_checkpoint(imported["with_discriminator"])
    arch = ArchConfig(**payload["arch"])
    stage = nn.Module()
    stage.model = HiFiC(arch)
    stage.discriminator = Discriminator.from_arch(arch)
    warm_start(stage, imported["with_discriminator"])
    for key, value in stage.discriminator.state_dict().items():
        assert torch.equal(value, payload[DISCRIMINATOR_KEY][key]), key
    for key in ("g_a.net.3.conv.weight", "g_s.up.12.weight", "h_s_sigma.net.4.weight", "entropy_bottleneck.factors.3"):
        assert torch.equal(stage.model.state_dict()[key], payload["state_dict"][key]), key


@pytest.mark.slow
def test_train_py_fine_tunes_an_imported_model(imported: dict[str, Path], tmp_path: Path) -> None:
    """``scripts/train.py stage=gan arch=jt warmstart=imported.ckpt`` runs (2 GAN iterations, tiny crops)."""
    overrides = ["debug=fdr", "data=sample", "data.samples_per_epoch=8", "data.val_tiles=1", "stage=gan", "arch=jt"]
    overrides += ["arch.latent_channels=16", "arch.residual_blocks=1", f"warmstart={imported['with_discriminator']}"]
    metrics = train(compose_config(overrides, tmp_path))
    assert math.isfinite(metrics["train/loss"])
    model = load_inference_checkpoint(tmp_path / "inference.ckpt")
    assert model.arch == ArchConfig(**read_inference_checkpoint(imported["with_discriminator"])["arch"])


def test_what_the_import_found(imported: dict[str, Path]) -> None:
    kept = read_inference_checkpoint(imported["instance_norm"])
    assert kept["arch"]["norm"] == "instance" and DISCRIMINATOR_KEY not in kept
    assert kept["config"]["imported"] == {
        "from": "jt-port",
        "file": "instance_norm.pt",
        "regime": "med",
        "model_type": "compression",
        "likelihood": "gaussian",
        "normalize_input_image": False,
        "steps": 5000,
        "epoch": 3,
    }


def test_imported_model_codes_images_smaller_than_the_port_can(imported: dict[str, Path]) -> None:
    """The port cannot code images under 128 px a side (its h_a reflect-pads 2 x 2 maps); ours can."""
    model = load_inference_checkpoint(imported["with_discriminator"])
    for height, width in ((1, 1), (37, 70)):
        x = torch.rand(1, 3, height, width)
        assert model.decompress(model.compress(x)).shape == (1, 3, height, width)


def _budget(stage: Stage, shape: tuple[int, ...], tiles: int) -> int:
    """A memory budget that cuts the longer side of ``shape`` into about ``tiles`` tiles."""
    extent = [min(n, -(-n // tiles // stage.align) * stage.align + stage.overlap) for n in shape[-2:]]
    return int(MEMORY_SAFETY * activation_peak_bytes(stage.module, (*shape[:2], *extent), torch.float32)) + 1


def test_imported_model_tiles_exactly(imported: dict[str, Path], astronaut: torch.Tensor) -> None:
    """g_a with the port's off-centre pads, and g_s, give the same on tiles as on the whole image."""
    model = load_inference_checkpoint(imported["with_discriminator"])
    x = pad_to_multiple(astronaut[..., :192, :320])
    stage = analysis_stage(model.g_a)
    budget = _budget(stage, x.shape, 3)
    assert plan_tiles(stage, x.shape, x.dtype, budget).count > 1
    with torch.no_grad():
        y = model.analysis(x, max_memory=None)
        # float rounding only: oneDNN picks its channels_last kernels by size, so a tile may round differently
        torch.testing.assert_close(model.analysis(x, max_memory=budget), y, atol=1e-5, rtol=1e-5)
        _, up = synthesis_stages(model.g_s)
        y_hat = torch.round(y)
        features = (1, model.arch.generator_widths[0], *y_hat.shape[-2:])
        budget = _budget(up, features, 3)
        assert plan_tiles(up, features, y_hat.dtype, budget).count > 1
        whole = model.synthesis(y_hat, max_memory=None)
        torch.testing.assert_close(model.synthesis(y_hat, max_memory=budget), whole, atol=1e-5, rtol=0)


def test_tanh_output_tiles_exactly() -> None:
    """g_s ending in (tanh + 1) / 2 (``image_range="tanh"``) on tiles equals g_s on the whole latent."""
    arch = dataclasses.replace(arch_preset("tiny"), image_range="tanh", padding="reflect")
    g_s = HiFiC(arch).eval().g_s
    y_hat = torch.randn(1, arch.latent_channels, 12, 20) * 3
    _, up = synthesis_stages(g_s)
    with torch.no_grad():
        whole = g_s(y_hat)
        budget = _budget(up, (1, arch.generator_widths[0], 12, 20), 3)
        assert plan_tiles(up, (1, arch.generator_widths[0], 12, 20), torch.float32, budget).count > 1
        torch.testing.assert_close(tiled_synthesis(g_s, y_hat, budget), whole, atol=1e-5, rtol=0)
    assert float(whole.min()) >= 0.0 and float(whole.max()) <= 1.0


def test_sizes_that_are_not_multiples_of_64_match_the_port(imported: dict[str, Path]) -> None:
    """``pad_scheme="jt"``: the image padded to 16 and y to 4, as the port does, through a .hfc file."""
    name = "with_discriminator"
    meta = json.loads((FIXTURES / f"{name}.json").read_text())
    ref = port_outputs(name)
    model = load_inference_checkpoint(imported[name])
    assert model.arch.pad_scheme == "jt"
    with np.load(FIXTURES / "input.npz") as f:
        x = torch.from_numpy(f["odd_image"]).permute(2, 0, 1)[None].float() / 255.0
    assert x.shape[-2:] == (150, 200)
    data = model.compress(x)
    assert data.estimated_bits == pytest.approx(float(ref["odd_bits"]), rel=1e-3)
    rows, cols = (slice(*w) for w in meta["odd_window"])
    decoded = model.decompress(data)[0, :, rows, cols]
    theirs = torch.from_numpy(ref["odd_reconstruction"].astype(np.float32)) / meta["reconstruction_scale"]
    assert float((decoded - theirs).abs().max()) < 1e-4
    with torch.no_grad():
        x_hat = model(x).x_hat.clamp(0.0, 1.0)
    assert float((x_hat[0, :, rows, cols] - theirs).abs().max()) < 1e-4
