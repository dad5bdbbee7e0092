"""GC2018 (Agustsson et al. 2018) as a selectable model: networks, bottleneck, coding, CLI, both training stages."""

from __future__ import annotations

import json
import math
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
from PIL import Image

from hific_lit.cli import main as hific
from hific_lit.config import compose_config as compose_eval
from hific_lit.data.sample import SAMPLE_TRAIN_PHOTOS, load_sample_photo, sample_photo_path
from hific_lit.errors import BitstreamError
from hific_lit.eval.pipeline import evaluate
from hific_lit.io.checkpoint import load_inference_checkpoint, save_inference_checkpoint
from hific_lit.io.container import HEADER_SIZES, unpack
from hific_lit.models.gc2018.arch import GC2018_PRESETS, GC2018Config
from hific_lit.models.gc2018.bottleneck import SoftToHardQuantizer
from hific_lit.models.gc2018.discriminator import MultiscaleDiscriminator
from hific_lit.models.gc2018.model import GC2018
from hific_lit.models.hific.model import HiFiC
from hific_lit.training.gc2018_losses import discriminator_loss, feature_matching_loss, generator_loss
from hific_lit.training.run import compose_config, train

TINY = GC2018_PRESETS["gc2018_tiny"]


def bound_bits(arch: GC2018Config, height: int, width: int) -> float:
    """The paper's rate bound in bits: (H/16)(W/16) C log2(L)."""
    return math.ceil(height / 16) * math.ceil(width / 16) * arch.latent_channels * math.log2(arch.levels)


def test_the_bound_at_c8_is_the_ports_0_072_bpp_on_cityscapes() -> None:
    # The TF1 port (Justin-Tan/generative-compression README): C = 8 on 512x1024 Cityscapes is "0.072 bpp".
    assert GC2018Config(latent_channels=8).rate_bound(512, 1024) == pytest.approx(0.0726, abs=5e-5)
    assert GC2018Config().levels == 5 and GC2018Config().latent_channels == 8


def test_quantizer_uses_the_papers_five_centers_straight_through() -> None:
    q = SoftToHardQuantizer(5, sigma=1.0).train()
    assert q.centers.tolist() == [-2.0, -1.0, 0.0, 1.0, 2.0]
    w = torch.tensor([-3.1, -1.4, -0.2, 0.6, 1.51, 7.0], requires_grad=True)
    w_hat, symbols = q(w)
    assert w_hat.tolist() == [-2.0, -1.0, 0.0, 1.0, 2.0, 2.0] and symbols.tolist() == [0, 1, 2, 3, 4, 4]
    w_hat.sum().backward()
    # within the centers the gradient is the soft assignment's, d/dw sum_j softmax(-|w - c|)_j c_j; beyond them that
    # is flat (0) and the relaxation continues with slope 1
    w2 = w.detach().clone().requires_grad_(True)
    (torch.softmax(-(w2[:, None] - q.centers).abs(), -1) @ q.centers).sum().backward()
    assert torch.allclose(w.grad[1:5], w2.grad[1:5]) and bool((w.grad[1:5] > 0).all())
    assert w2.grad[[0, 5]].abs().max() < 1e-6 and torch.allclose(w.grad[[0, 5]], torch.ones(2))


def test_the_multiscale_discriminator_sees_three_scales() -> None:
    d = MultiscaleDiscriminator(widths=(8, 16), scales=3)
    seen = []
    for patch in d.discriminators:
        patch.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape[-2:])))
    out = d(torch.rand(2, 3, 64, 96))
    assert seen == [(64, 96), (32, 48), (16, 24)]
    assert len(out) == 3 and all(len(scale) == 3 and scale[-1].shape[1] == 1 for scale in out)


def test_feature_matching_is_zero_for_identical_inputs_only() -> None:
    d = MultiscaleDiscriminator(widths=(8, 16), scales=3)
    x = torch.rand(2, 3, 64, 64)
    assert feature_matching_loss(d(x), d(x.clone())).item() == 0.0
    assert feature_matching_loss(d(x), d(torch.rand_like(x))).item() > 0.0


def test_lsgan_losses_at_known_points() -> None:
    # LSGAN (paper eq. 4-5): f(y) = (y - 1)^2 for real, g(y) = y^2 for fake. D's loss summed over the 3 scales, not
    # halved; G's term from the full-resolution D only (the TF1 port's model.py lines 120-125; pix2pixHD's options).
    ones, zeros = [[torch.ones(1, 1, 2, 2)]] * 3, [[torch.zeros(1, 1, 2, 2)]] * 3
    assert discriminator_loss(ones, zeros).item() == 0.0 and generator_loss(ones).item() == 0.0
    assert discriminator_loss(zeros, ones).item() == pytest.approx(3 * 2) and generator_loss(zeros).item() == 1.0
    assert discriminator_loss(zeros, ones, 0.5).item() == pytest.approx(3.0) and generator_loss(zeros, "all") == 3.0


@pytest.mark.parametrize("name", sorted(GC2018_PRESETS))
def test_arch_presets_compose_and_the_stage_carries_the_papers_weights(name: str, tmp_path: Path) -> None:
    cfg = compose_config([f"arch={name}", "stage=gc2018"], tmp_path)
    assert hydra.utils.instantiate(cfg.arch).levels == 5  # L = 5 centers (App. A); the networks: test_config
    loss = hydra.utils.instantiate(cfg.stage.loss)
    # lambda = 10 on the MSE (the paper; the TF1 port's lambda_X was 10 until b311d52, 12 since), feature matching 10
    # (pix2pixHD; feature_matching_weight), the GAN terms in the port's form (model.py lines 119-133)
    assert (loss.distortion_weight, loss.feature_matching_weight, loss.perceptual_weight) == (10.0, 10.0, 0.0)
    assert (loss.feature_matching, loss.adversarial_scales, loss.discriminator_loss_factor) == ("sum", "full", 1.0)
    assert cfg.stage.discriminator_batch == "next" and cfg.stage.discriminator.pooling == "same"
    assert cfg.stage.codec_optimizer.lr == cfg.stage.discriminator_optimizer.lr == 2e-4  # G_/D_learning_rate
    assert list(cfg.stage.codec_optimizer.betas) == list(cfg.stage.discriminator_optimizer.betas) == [0.5, 0.999]
    stage = hydra.utils.instantiate(cfg.stage)
    optimizers = {name: factory([torch.nn.Parameter(torch.zeros(1))]) for name, factory in stage.factories.items()}
    assert optimizers["discriminator"].defaults["betas"] == (0.5, 0.999)  # pix2pixHD's beta1 0.5 reaches Adam
    assert cfg.stage.discriminator.scales == 3


@pytest.fixture(scope="module")
def fitted() -> GC2018:
    """The tiny model with its categorical prior fitted (200 Adam steps) to the symbols of the training photos."""
    torch.manual_seed(0)
    model = GC2018(TINY).eval()
    with torch.no_grad():
        symbols = [model(load_sample_photo(name)[..., :256, :256]).symbols for name in SAMPLE_TRAIN_PHOTOS]
    opt = torch.optim.Adam([model.prior.logits], lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        sum(model.prior.bits(s) for s in symbols).backward()
        opt.step()
    model.update(force=True)
    return model


def test_the_prior_codes_real_photos_below_the_bound(fitted: GC2018) -> None:
    x = load_sample_photo()  # the held-out astronaut
    data = fitted.compress(x)
    header, _, stream, _ = unpack(bytes(data))
    height, width = x.shape[-2:]
    assert header.kind == 1 and header.y_shape == (TINY.latent_channels, height // 16, width // 16)
    assert len(stream) * 8 < bound_bits(TINY, height, width)
    assert len(data) * 8 <= bound_bits(TINY, height, width) + HEADER_SIZES[2] * 8
    assert data.estimated_bits == pytest.approx(len(stream) * 8, rel=0.05)


def test_compress_decompress_round_trip_and_tiling(fitted: GC2018) -> None:
    x = load_sample_photo()[..., :200, :136]  # not multiples of 16
    data = fitted.compress(x)
    assert fitted.compress(x, max_memory=None) == data  # E is tiled by default; the file does not depend on it
    x_hat = fitted.decompress(data)
    assert x_hat.shape == (1, 3, 200, 136) and float(x_hat.min()) >= 0 and float(x_hat.max()) <= 1
    tiled, whole = fitted.decompress(data, max_memory=1 << 20), fitted.decompress(data, max_memory=None)
    assert torch.allclose(tiled, whole, atol=1e-5)  # G on tiles: the same up to float summation order
    with torch.no_grad():  # the coded path is the forward pass at evaluation
        assert torch.allclose(fitted(x).x_hat.clamp(0, 1), x_hat, atol=1e-5)


def test_noise_channels_decode_deterministically() -> None:
    model = GC2018(GC2018Config(**{**TINY.to_dict(), "noise_channels": 2})).eval()
    model.update()
    data = model.compress(torch.rand(3, 48, 64))
    assert torch.equal(model.decompress(data), model.decompress(data))


def test_files_of_the_other_model_kind_are_refused(fitted: GC2018) -> None:
    x = torch.rand(3, 64, 64)
    hific = HiFiC.from_preset("tiny").eval()
    hific.update()
    with pytest.raises(BitstreamError, match="hific model, not a gc2018"):
        fitted.decompress(hific.compress(x))
    with pytest.raises(BitstreamError):
        hific.decompress(fitted.compress(x))
    other = GC2018(TINY).eval()
    other.update()
    with pytest.raises(BitstreamError, match="another model"):
        other.decompress(fitted.compress(x))


def test_round_trip_through_the_hific_command(fitted: GC2018, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ckpt = tmp_path / "gc.ckpt"
    save_inference_checkpoint(fitted, ckpt)
    loaded = load_inference_checkpoint(ckpt)  # as the command loads it (transforms channels_last)
    assert isinstance(loaded, GC2018)
    photo = sample_photo_path("astronaut")
    assert hific(["compress", str(photo), "--ckpt", str(ckpt), "-o", str(tmp_path / "a.hfc"), "-q"]) == 0
    assert hific(["decompress", str(tmp_path / "a.hfc"), "--ckpt", str(ckpt), "-o", str(tmp_path / "a.png"), "-q"]) == 0
    capsys.readouterr()
    assert hific(["info", str(tmp_path / "a.hfc"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model"] == "gc2018" and "likelihood" not in info and (info["height"], info["width"]) == (512, 512)
    bound_bpp = TINY.rate_bound(512, 512) + HEADER_SIZES[2] * 8 / (512 * 512)
    assert info["bpp"] <= bound_bpp
    decoded = torch.from_numpy(np.array(Image.open(tmp_path / "a.png")))
    expected = loaded.decompress((tmp_path / "a.hfc").read_bytes(), uint8=True)[0].permute(1, 2, 0)
    assert torch.equal(decoded, expected)


SMOKE = [
    "debug=fdr",
    "arch=gc2018_tiny",
    "data.samples_per_epoch=4",
    "data.val_tiles=1",
    "callbacks.reconstruction_images=null",
]


@pytest.mark.parametrize("stage", ["gc2018_mse", "gc2018"])
def test_debug_runs_of_both_stages_export_a_working_model(stage: str, tmp_path: Path) -> None:
    metrics = train(compose_config([*SMOKE, f"stage={stage}"], tmp_path))
    assert metrics["iteration"] == 2
    keys = ["train/loss", "val/rd_loss", "val/psnr", "val/bpp", "train/bpp_bound"]
    keys += ["train/g_loss", "train/feature_matching", "train/d_loss"] if stage == "gc2018" else []
    for key in keys:
        assert math.isfinite(metrics[key]), key
    model = load_inference_checkpoint(tmp_path / "inference.ckpt")
    x = torch.rand(3, 64, 80)
    assert model.decompress(model.compress(x)).shape == (1, 3, 64, 80)


def test_eval_with_matched_jpeg_and_the_viewer_take_a_gc2018_checkpoint(fitted: GC2018, tmp_path: Path) -> None:
    save_inference_checkpoint(fitted, tmp_path / "gc.ckpt")
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.open(sample_photo_path("astronaut")).crop((0, 0, 192, 128)).save(photos / "a.png")
    overrides = [f"ckpt=[{tmp_path / 'gc.ckpt'}]", "eval_set=folder", f"eval_set.path={photos}", "device=cpu"]
    overrides += ["baselines=[jpeg]", "metrics.lpips=false", "metrics.fid=false"]
    evaluate(compose_eval("eval", overrides), tmp_path / "out")
    rows = {r["method"]: r for r in json.loads((tmp_path / "out" / "per_image.json").read_text())}
    ours, jpeg = rows["hific"], rows["jpeg"]
    assert ours["file"].endswith(".hfc") and ours["bytes"] == Path(ours["file"]).stat().st_size
    assert ours["bpp"] <= TINY.rate_bound(128, 192) + HEADER_SIZES[2] * 8 / (128 * 192)
    assert jpeg["bpp"] >= ours["bpp"] or not jpeg["matched"]
    assert "data:image/" in (tmp_path / "out" / "gc" / "viewer.html").read_text()


def test_the_papers_instance_norm_runs_untiled_with_a_warning() -> None:
    model = GC2018(GC2018Config(**{**TINY.to_dict(), "norm": "instance"})).eval()
    model.update()
    x = torch.rand(3, 64, 96)
    with pytest.warns(UserWarning, match="untiled"):
        data = model.compress(x)
    with pytest.warns(UserWarning, match="untiled"):
        assert model.decompress(data).shape == (1, 3, 64, 96)


@pytest.mark.parametrize("discriminator_batch", ["next", "same"])
def test_the_gan_stage_trains_d_after_e_g_on_the_next_batch_as_the_port(discriminator_batch: str) -> None:
    # The TF1 port's train.py lines 76-80: one sess.run of G's train op, then one of D's; each run draws a batch from
    # the iterator and recomputes the reconstruction, so D learns from the next batch reconstructed by the updated G.
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    from hific_lit.training.gc2018 import GC2018GANStage

    torch.manual_seed(0)
    stage = GC2018GANStage(
        TINY, discriminator=MultiscaleDiscriminator((8, 16)), discriminator_batch=discriminator_batch
    )
    crops = torch.rand(2, 3, 64, 64)
    calls: list[tuple[str, int, bool]] = []

    def which(x: torch.Tensor) -> int:
        return next((i for i in range(2) if torch.equal(x, crops[i : i + 1])), -1)

    stage.model.register_forward_pre_hook(
        lambda _m, args: calls.append(("E/G", which(args[0]), torch.is_grad_enabled()))
    )
    stage.discriminator.register_forward_pre_hook(lambda _m, args: calls.append(("D", which(args[0]), False)))
    count = stage.sub_batches_per_iteration
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(stage, train_dataloaders=DataLoader([crops[i] for i in range(count)], batch_size=count))
    e_g = [(name, index, grad) for name, index, grad in calls if name == "E/G"]
    d_real = [index for name, index, _ in calls if name == "D" and index >= 0]
    if discriminator_batch == "next":
        assert e_g == [("E/G", 0, True), ("E/G", 1, False)] and d_real == [0, 1]  # G's real x, then D's step on crop 1
    else:
        assert e_g == [("E/G", 0, True)] and d_real == [0, 0]
