"""Multi-realism (MRIC, Agustsson et al. 2023): one .hfc file, decoded at any realism weight β.

Unit tests use tiny models whose FiLM layers are given random weights (a trained model's are non-zero; a
fresh one's are zero, i.e. plain HiFiC); the smoke tests train the quick CPU recipe on the sample photos.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image
from skimage import data

from hific_lit import HiFiC
from hific_lit.cli import main
from hific_lit.config import compose_config
from hific_lit.errors import CheckpointError, SettingError
from hific_lit.eval.fid import PatchEmbedder
from hific_lit.eval.pipeline import evaluate
from hific_lit.eval.runner import Scorers
from hific_lit.io.checkpoint import load_inference_checkpoint, save_inference_checkpoint
from hific_lit.models.hific.arch import arch_preset
from hific_lit.nn.generator import Generator
from hific_lit.nn.realism import BETA_MAX, FiLMChannelNorm2d, fourier_features
from hific_lit.pretrained.jt import port_arch
from hific_lit.pretrained.jt_checkpoint import PortModel
from hific_lit.training.base import ARCH_KEY
from hific_lit.training.losses import perceptual_term, realism_weighted
from hific_lit.training.warmstart import REALISM_FIELDS, load_codec_weights

ROOT = Path(__file__).resolve().parents[1]


def conditioned_model(seed: int = 0) -> HiFiC:
    """A tiny realism-conditioned model with random (non-zero) FiLM weights and coding tables."""
    torch.manual_seed(seed)
    arch = dataclasses.replace(arch_preset("tiny"), realism_conditioning=True, realism_width=16)
    model = HiFiC(arch).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, FiLMChannelNorm2d):
                module.film.weight.normal_(0.0, 0.3)
    model.update()
    return model


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    return torch.from_numpy(data.astronaut()[:80, :112].copy()).permute(2, 0, 1)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("mric")
    torch.manual_seed(0)
    paths = {"plain": folder / "plain.ckpt", "mric": folder / "mric.ckpt"}
    save_inference_checkpoint(HiFiC.from_preset("tiny"), paths["plain"])
    save_inference_checkpoint(conditioned_model(), paths["mric"])
    return paths


def test_without_the_flag_the_generator_is_plain_hific() -> None:
    assert not arch_preset("hific").realism_conditioning
    names = HiFiC.from_preset("tiny").state_dict()
    assert not any("film" in k or "realism" in k for k in names)


def test_fourier_features_are_the_nerf_encoding_of_the_mric_reimplementation() -> None:
    # Nikolai10/MRIC fourier_cond.py: get_embedder(multires=10): [x, sin(x), cos(x), sin(2x), cos(2x), ...].
    beta = torch.tensor([0.0, 1.28])
    feats = fourier_features(beta)
    assert feats.shape == (2, 21)
    assert torch.equal(feats[0], torch.tensor([0.0] + [0.0, 1.0] * 10))
    expected = [1.28] + [f(1.28 * 2.0**k) for k in range(10) for f in (math.sin, math.cos)]
    assert torch.allclose(feats[1], torch.tensor(expected), atol=1e-4)  # float32 angles up to 655 rad


def test_a_fresh_conditioned_generator_is_hific_at_every_beta(photo: torch.Tensor) -> None:
    torch.manual_seed(0)
    arch = dataclasses.replace(arch_preset("tiny"), realism_conditioning=True, realism_width=16)
    model = HiFiC(arch).eval()
    x = photo[None].float() / 255.0
    with torch.no_grad():
        assert torch.equal(model(x, beta=0.0).x_hat, model(x, beta=BETA_MAX).x_hat)


def test_the_film_conditioning_learns_a_beta_dependent_output() -> None:
    # A target that moves with β (grey level 0.2 at β = 0 up to 0.8 at β_max): 200 Adam steps of a tiny g_s must
    # follow it, so that β reaches the image through Fourier features, MLP and FiLM (what MRIC training needs).
    torch.manual_seed(0)
    g_s = Generator(8, (16, 16, 8, 8, 4), 1, realism_width=64).train()
    opt = torch.optim.Adam(g_s.parameters(), 1e-3)
    y_hat = torch.randn(4, 8, 2, 2)
    for _ in range(200):
        beta = torch.rand(4) * BETA_MAX
        loss = (g_s(y_hat, beta) - (0.2 + 0.6 * beta / BETA_MAX)[:, None, None, None]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        levels = [float(g_s.eval()(y_hat, b).mean()) for b in (0.0, BETA_MAX / 2, BETA_MAX)]
    assert levels == sorted(levels) and levels[2] - levels[0] > 0.4


def test_one_file_decodes_differently_at_beta_zero_and_beta_max(photo: torch.Tensor) -> None:
    model = conditioned_model()
    data_ = model.compress(photo)
    low, high = model.decompress(data_, beta=0.0), model.decompress(data_, beta=BETA_MAX)
    assert low.shape == high.shape == (1, 3, 80, 112)
    assert (low - high).abs().mean() > 1e-3
    assert torch.equal(model.decompress(data_), high)  # default: beta_max
    # the generator's tiles see the same β as a whole-image pass (tiles sum in another order: float32 rounding)
    tiled = model.decompress(data_, beta=0.0, max_memory=1 << 20)
    torch.testing.assert_close(tiled, model.decompress(data_, beta=0.0, max_memory=None), atol=1e-5, rtol=0)
    assert (tiled - high).abs().mean() > 1e-3
    assert model.compress(photo) == data_  # decoding at any β leaves the encoder's file as it was


@pytest.mark.parametrize("beta", [-0.1, BETA_MAX + 0.01, float("nan")])
def test_beta_out_of_range_is_a_one_line_setting_error(photo: torch.Tensor, beta: float) -> None:
    model = conditioned_model()
    with pytest.raises(SettingError, match=r"outside this model's realism range \[0, 2.56\]") as info:
        model.decompress(model.compress(photo), beta=beta)
    assert "\n" not in str(info.value)


def test_a_plain_model_refuses_beta(photo: torch.Tensor) -> None:
    torch.manual_seed(0)
    model = HiFiC.from_preset("tiny").eval()
    model.update()
    with pytest.raises(SettingError, match="not realism-conditioned"):
        model.decompress(model.compress(photo), beta=1.0)


def test_training_draws_beta_per_image_and_weights_the_realism_terms() -> None:
    model = conditioned_model().train()
    out = model(torch.rand(6, 3, 64, 64))
    assert out.beta.shape == (6,) and bool(((out.beta >= 0) & (out.beta <= BETA_MAX)).all())
    assert len(set(out.beta.tolist())) == 6
    per_image = torch.tensor([1.0, 2.0, 3.0])
    assert realism_weighted(per_image, torch.tensor([0.0, 0.0, 0.0])) == 0.0
    assert realism_weighted(per_image, torch.tensor([0.0, 1.0, 2.0])) == pytest.approx((0 + 2 + 6) / 3)
    x, x_hat = torch.rand(3, 3, 8, 8), torch.rand(3, 3, 8, 8)

    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).abs().mean()

    mean, weighted = perceptual_term(distance, x, x_hat, torch.tensor([0.0, 0.0, 1.0]))
    assert mean == pytest.approx(float(distance(x, x_hat)), rel=1e-6)
    assert weighted == pytest.approx(float(distance(x[2:], x_hat[2:])) / 3, rel=1e-6)


def test_cli_decodes_one_file_at_two_realisms(ckpts: dict[str, Path], tmp_path: Path, capsys) -> None:
    src = tmp_path / "photo.png"
    Image.fromarray(data.astronaut()[:80, :112]).save(src)
    assert main(["compress", str(src), "--ckpt", str(ckpts["mric"]), "-o", str(tmp_path / "photo.hfc")]) == 0
    outs = {}
    for realism in ("0", "1"):
        out = tmp_path / f"r{realism}.png"
        argv = ["decompress", str(tmp_path / "photo.hfc"), "--ckpt", str(ckpts["mric"]), "--realism", realism]
        assert main([*argv, "-o", str(out)]) == 0
        assert f"realism {float(realism):.2f}" in capsys.readouterr().out
        outs[realism] = np.asarray(Image.open(out))
    assert outs["0"].shape == outs["1"].shape == (80, 112, 3) and not np.array_equal(outs["0"], outs["1"])
    assert main(["info", str(ckpts["mric"]), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["realism"].startswith("yes") and info["beta_max"] == BETA_MAX and info["default_realism"] == 1.0
    assert main(["info", str(ckpts["plain"])]) == 0
    assert "no (one operating point)" in capsys.readouterr().out


def test_cli_refuses_realism_out_of_range_and_on_a_plain_checkpoint(
    ckpts: dict[str, Path], tmp_path: Path, capsys
) -> None:
    torch.manual_seed(0)
    hfc = tmp_path / "plain.hfc"
    hfc.write_bytes(load_inference_checkpoint(ckpts["plain"]).compress(torch.rand(3, 32, 32)))
    assert main(["decompress", str(hfc), "--ckpt", str(ckpts["plain"]), "--realism", "0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not realism-conditioned" in err and len(err.splitlines()) == 1
    with pytest.raises(SystemExit) as exit_info:
        main(["decompress", str(hfc), "--ckpt", str(ckpts["mric"]), "--realism", "1.5"])
    assert exit_info.value.code == 2
    assert "--realism 1.5 is outside 0..1" in capsys.readouterr().err


def test_checkpoint_keeps_the_default_realism(tmp_path: Path) -> None:
    model = conditioned_model()
    model.g_s.default_beta = 0.64
    save_inference_checkpoint(model, tmp_path / "m.ckpt")
    loaded = load_inference_checkpoint(tmp_path / "m.ckpt")
    assert loaded.g_s.conditioned and loaded.g_s.default_beta == pytest.approx(0.64)
    assert loaded.fingerprint() == model.fingerprint()


class _MeanFeatures(torch.nn.Module):
    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.float() / 255.0).mean(dim=2)


def test_eval_writes_one_row_per_beta_at_the_same_bpp(ckpts: dict[str, Path], tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(data.astronaut()[:256, :320]).save(photos / "astronaut.png")
    Image.fromarray(data.coffee()[:256, :300]).save(photos / "coffee.png")
    cfg = compose_config(
        "eval",
        [f"ckpt={ckpts['mric']}", "eval_set=folder", f"eval_set.path={photos}", "device=cpu", "baselines=[jpeg]",
         "realism_betas=[0,1.28,2.56]"],
    )  # fmt: skip
    torch.manual_seed(0)
    features = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 16, stride=16), torch.nn.Flatten(2))
    embed = PatchEmbedder(_MeanFeatures(features))  # a small stand-in for Inception: FID per β runs offline
    summary = evaluate(cfg, tmp_path / "out", scorers=Scorers(embed=embed))
    methods = summary["checkpoints"]["mric"]["methods"]
    rows = [methods[f"hific_beta{b}"] for b in ("0", "1.28", "2.56")]
    assert len({r["bpp"] for r in rows}) == 1 and rows[0]["bpp"] == methods["hific"]["bpp"]
    assert rows[0]["psnr"] != rows[2]["psnr"] and rows[0]["fid"] != rows[2]["fid"]
    assert rows[2]["psnr"] == methods["hific"]["psnr"]  # the default β of this checkpoint is β_max
    lines = (tmp_path / "out" / "per_image.csv").read_text().splitlines()
    assert sum(",hific_beta" in line for line in lines) == 2 * 3  # one row per image and β
    plots = {Path(p).name for p in summary["outputs"]["plots"]}
    assert {"realism_psnr.png", "realism_fid.png"} <= plots
    viewer = Path(summary["outputs"]["viewers"]["mric"]).read_text()
    assert "HiFiC β=0" in viewer and "HiFiC β=2.56" in viewer
    cfg.ckpt = str(ckpts["plain"])
    with pytest.raises(CheckpointError, match="not realism-conditioned"):
        evaluate(cfg, tmp_path / "out2", scorers=Scorers())


def test_mric_experiments_compose_on_hific_stages() -> None:
    base = compose_config("train", ["experiment=mric_base"])
    gan = compose_config("train", ["experiment=mric_gan", "warmstart=x.ckpt"])
    for cfg, target in ((base, "hific_lit.training.base.RDStage"), (gan, "hific_lit.training.gan.GANStage")):
        assert cfg.arch.realism_conditioning and cfg.arch.beta_max == 2.56 and cfg.arch.realism_width == 512
        assert cfg.stage._target_ == target and cfg.loss.k_p == 1.0 and cfg.loss.beta == 0.15
        assert cfg.arch.latent_channels == 220 and cfg.stage.gradient_clip.codec is None


def lightning_checkpoint(model: HiFiC, path: Path, arch: bool = True) -> Path:
    """What a run's ``last.ckpt`` holds of the codec: the stage's ``model.*`` tensors and (``arch``) its arch."""
    checkpoint = {"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}
    torch.save({**checkpoint, ARCH_KEY: model.arch.to_dict()} if arch else checkpoint, path)
    return path


def test_decompress_batch_decodes_at_the_beta_asked_for(photo: torch.Tensor) -> None:
    model = conditioned_model()
    data_ = model.compress(photo)
    low = model.decompress(data_, beta=0.0)
    assert all(torch.equal(x_hat, low) for x_hat in model.decompress_batch([data_, data_], beta=0.0))
    assert not torch.equal(model.decompress_batch([data_])[0], low)  # without beta: the default, beta_max


def test_mric_warm_starts_from_plain_hific_as_the_plain_model_at_every_beta(
    photo: torch.Tensor, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    torch.manual_seed(0)
    plain = HiFiC.from_preset("tiny").eval()
    save_inference_checkpoint(plain, tmp_path / "model.ckpt")
    x = photo[None].float() / 255.0
    with torch.no_grad():
        expected = plain(x)
    # realism_width and beta_max differ from the plain checkpoint's stored (unused) values: ignored too
    arch = dataclasses.replace(plain.arch, realism_conditioning=True, realism_width=16, beta_max=1.0)
    for path in (tmp_path / "model.ckpt", lightning_checkpoint(plain, tmp_path / "last.ckpt")):
        torch.manual_seed(1)
        model = HiFiC(arch).eval()
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="hific_lit.training.warmstart"):
            load_codec_weights(model, path)
        said = [r.getMessage() for r in caplog.records if "realism" in r.getMessage()]
        assert len(said) == 1 and "plain HiFiC" in said[0] and "20 tensors" in said[0], said
        films = [m.film for m in model.modules() if isinstance(m, FiLMChannelNorm2d)]
        assert len(films) == 8 and not any(f.weight.any() or f.bias.any() for f in films)
        with torch.no_grad():
            for beta in (0.0, 1.0):
                out = model(x, beta=beta)
                assert torch.equal(out.x_hat, expected.x_hat) and torch.equal(out.bpp, expected.bpp), (path, beta)
    other = HiFiC(dataclasses.replace(arch, padding="reflect"))
    with pytest.raises(CheckpointError, match=r"add: arch.padding=\"zeros\"$"):  # anything else is still refused
        load_codec_weights(other, tmp_path / "model.ckpt")


def test_a_plain_model_refuses_to_start_from_mric_and_drop_its_conditioning(
    ckpts: dict[str, Path], tmp_path: Path
) -> None:
    plain = HiFiC.from_preset("tiny")
    with pytest.raises(CheckpointError, match=r"add: arch.realism_conditioning=true arch.realism_width=16$"):
        load_codec_weights(plain, ckpts["mric"])
    no_arch = lightning_checkpoint(conditioned_model(), tmp_path / "last.ckpt", arch=False)
    with pytest.raises(CheckpointError, match=r"holds a realism-conditioned g_s .* add arch.realism_conditioning=true"):
        load_codec_weights(plain, no_arch)


def test_the_readme_command_fine_tunes_an_imported_jt_model_into_mric() -> None:
    # README: `hific train experiment=mric_gan arch=jt arch.latent_likelihood=logistic warmstart=hific-med.ckpt`; the
    # run's architecture differs from what `hific import-jt HIFIC-med.pt` writes only where warm start allows it.
    overrides = ["experiment=mric_gan", "arch=jt", "arch.latent_likelihood=logistic", "warmstart=hific-med.ckpt"]
    cfg = compose_config("train", overrides)
    assert cfg.stage._target_ == "hific_lit.training.gan.GANStage" and cfg.warmstart == "hific-med.ckpt"
    med = PortModel(
        latent_channels=220, residual_blocks=9, likelihood="logistic", normalize_input=False, channel_norm=True,
        regime="med", model_type="compression_gan", steps=None, epoch=None, has_discriminator=True,
    )  # fmt: skip
    run, imported = instantiate(cfg.arch).to_dict(), port_arch(med).to_dict()
    assert {k for k, v in imported.items() if run[k] != v} == {"realism_conditioning"} <= set(REALISM_FIELDS)


def test_export_sets_the_default_realism_and_info_shows_it(photo: torch.Tensor, tmp_path: Path, capsys) -> None:
    source = lightning_checkpoint(conditioned_model(), tmp_path / "last.ckpt")
    assert main(["export", str(source), str(tmp_path / "m.ckpt"), "--realism", "0.25"]) == 0
    capsys.readouterr()
    assert main(["info", str(tmp_path / "m.ckpt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["default_realism"] == 0.25
    model = load_inference_checkpoint(tmp_path / "m.ckpt")
    data_ = model.compress(photo)
    assert torch.equal(model.decompress(data_), model.decompress(data_, beta=0.25 * BETA_MAX))
    plain = lightning_checkpoint(HiFiC.from_preset("tiny"), tmp_path / "plain.ckpt")
    assert main(["export", str(plain), str(tmp_path / "p.ckpt"), "--realism", "0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not realism-conditioned" in err and len(err.splitlines()) == 1 and not (tmp_path / "p.ckpt").exists()


def test_mric_paper_composes_to_the_reference_recipe() -> None:
    # Nikolai10/MRIC at db250de: src/config.py (mse_weight = 1/100, lpips_weight = 4.26, lmbda_weight = 100),
    # src/amtm2023.py (betas ~ uniform(0, 5.12) in train_step; decode --beta in [0, 2.56]; Adam lr 1e-4 with
    # global_clipnorm=1.0 on G only; lr / 10 from 0.85 * total steps in stage 1, constant in stage 2; --batchsize 16
    # split into G's and D's halves), README (lambda 0.128; 2M + 0.3M steps; official: 10x lambda for the first 15 %).
    base = compose_config("train", ["experiment=mric_paper_base"])
    gan = compose_config("train", ["experiment=mric_paper", "warmstart=x.ckpt"])
    for cfg in (base, gan):
        arch, loss = instantiate(cfg.arch), instantiate(cfg.loss)
        assert arch.realism_conditioning and arch.beta_max == 2.56 and arch.train_beta_max == 5.12
        assert loss.k_m == 1 / 100 and loss.k_p == 4.26
        assert loss.lambda_a == loss.lambda_b == pytest.approx(0.128 * 100)  # one rate weight, whatever the rate
        assert cfg.stage.gradient_clip.codec == 1.0 and cfg.stage.codec_optimizer.lr == 1e-4
        assert cfg.data.batch_size == 16 // 2 and cfg.data.crop_size == 256
    base_loss, gan_loss = instantiate(base.loss), instantiate(gan.loss)
    assert base.stage._target_ == "hific_lit.training.base.RDStage" and base.max_iterations == 2_000_000
    assert base.stage.lr_schedule.decay_iteration == int(0.85 * 2_000_000) and base.stage.lr_schedule.factor == 0.1
    assert base_loss.rate_weight(0.0, 0) == pytest.approx(10 * 12.8)  # official: 10x lambda for the first 15 %
    assert base_loss.in_warmup(int(0.15 * 2_000_000) - 1) and not base_loss.in_warmup(int(0.15 * 2_000_000))
    assert gan.stage._target_ == "hific_lit.training.gan.GANStage" and gan.max_iterations == 300_000
    assert gan_loss.beta == 1.0 and gan_loss.gan_loss == "non_saturating"  # reduce_mean(betas * g_loss)
    assert gan.stage.lr_schedule.factor == 1.0 and gan.stage.gradient_clip.discriminator is None
    assert gan.stage.discriminator_optimizer.lr == 1e-4 and gan_loss.rate_weight(1.0, 0) == pytest.approx(12.8)


def test_training_draws_beta_from_its_own_range_and_decoding_keeps_the_other() -> None:
    arch = dataclasses.replace(arch_preset("tiny"), realism_conditioning=True, realism_width=8, train_beta_max=5.12)
    g_s = Generator.from_arch(arch).train()
    torch.manual_seed(0)
    drawn = g_s.betas(None, 4096, torch.device("cpu"))
    assert float(drawn.max()) > 2.56 * 1.9 and float(drawn.max()) <= 5.12 and float(drawn.min()) >= 0.0
    with pytest.raises(SettingError, match=r"outside this model's realism range \[0, 2.56\]"):
        g_s.eval().betas(3.0, 1, torch.device("cpu"))
