"""The Lightning stages take real optimizer steps: counters, schedules, clipping, warm start."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from hific_lit.errors import CheckpointError
from hific_lit.io.checkpoint import save_inference_checkpoint
from hific_lit.models.hific.arch import ArchConfig, arch_preset
from hific_lit.models.hific.model import HiFiC
from hific_lit.nn import Discriminator
from hific_lit.training.base import RDStage
from hific_lit.training.gan import GANStage
from hific_lit.training.losses import LossConfig, LRSchedule
from hific_lit.training.perceptual import LPIPSLoss
from hific_lit.training.warmstart import load_codec_weights, warm_start


@pytest.fixture(scope="module")
def lpips_random() -> LPIPSLoss:
    return LPIPSLoss(pretrained_backbone=False)


@pytest.fixture
def crops(astronaut: torch.Tensor) -> DataLoader:
    """Eight 64x64 crops of a real photo, batches of two."""
    tiles = astronaut[0, :, :128, :256].unfold(1, 64, 64).unfold(2, 64, 64)  # (3, 2, 4, 64, 64)
    return DataLoader(list(tiles.permute(1, 2, 0, 3, 4).reshape(-1, 3, 64, 64)), batch_size=2)


def make_stage(cls: type[RDStage], lpips: LPIPSLoss, arch: str = "tiny", **kwargs: object) -> RDStage:
    a = arch_preset(arch)
    if issubclass(cls, GANStage):
        kwargs.setdefault(
            "discriminator", Discriminator(a.latent_channels, a.discriminator_widths, a.discriminator_context)
        )
    return cls(a, LossConfig(warmup_iterations=1), lpips, **kwargs)


def fit(module: RDStage, loader: DataLoader, iterations: int) -> pl.Trainer:
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=iterations * module.optimizers_per_iteration,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, train_dataloaders=loader)
    return trainer


def snapshot(params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


def changed(before: list[torch.Tensor], params: list[torch.nn.Parameter]) -> bool:
    return all(not torch.equal(b, p.detach()) for b, p in zip(before, params, strict=True))


def test_base_stage_steps_codec_and_aux(lpips_random: LPIPSLoss, crops: DataLoader) -> None:
    module = make_stage(RDStage, lpips_random)
    groups = module.model.parameter_groups()
    codec, aux = snapshot(groups.codec[:4]), snapshot(groups.aux)
    trainer = fit(module, crops, iterations=3)
    assert module.iteration == 3 and trainer.global_step == 6  # two optimizer steps per iteration
    assert changed(codec, groups.codec[:4]) and changed(aux, groups.aux)
    assert not hasattr(module, "discriminator") and set(module.parameter_groups()) == {"codec", "aux"}
    logged = trainer.callback_metrics
    for key in ("train/loss", "train/bpp", "train/bpp_rounded", "train/mse", "train/lpips", "train/aux_loss"):
        assert torch.isfinite(logged[key]), key
    assert logged["train/rate_weight"].item() in (1.0, 2**-6)  # warm-up is over by the third iteration


def test_gan_stage_alternates_generator_discriminator_and_aux(lpips_random: LPIPSLoss, crops: DataLoader) -> None:
    module = make_stage(GANStage, lpips_random)
    groups = module.parameter_groups()
    codec, disc = snapshot(groups["codec"][:4]), snapshot(groups["discriminator"])
    trainer = fit(module, crops, iterations=2)
    assert module.iteration == 2 and trainer.global_step == 6
    assert changed(codec, groups["codec"][:4])
    assert any(not torch.equal(b, p) for b, p in zip(disc, groups["discriminator"], strict=True))
    logged = trainer.callback_metrics
    assert 0 < logged["train/d_real"].item() < 1 and 0 < logged["train/d_fake"].item() < 1
    assert torch.isfinite(logged["train/g_loss"]) and torch.isfinite(logged["train/d_loss"])


def test_gan_stage_trains_d_first_on_its_own_sub_batch_then_the_codec_on_the_other(
    lpips_random: LPIPSLoss, astronaut: torch.Tensor
) -> None:
    # models/hific/model.py: build_input fetches num_steps_disc + 1 sub-batches; D's train ops (own forward
    # pass of the codec, reconstruction under stop_gradient) run before the generator's, which uses the first.
    module = make_stage(GANStage, lpips_random)
    assert module.sub_batches_per_iteration == 2 and module.optimizers_per_iteration == 3
    codec_batch, d_batch = astronaut[..., :64, :64].repeat(2, 1, 1, 1), astronaut[..., 64:128, :64].repeat(2, 1, 1, 1)
    d_before = snapshot(module.parameter_groups()["discriminator"])
    calls: list[tuple[str, str, bool, bool]] = []

    def which(x: torch.Tensor) -> str:
        return "codec batch" if torch.equal(x, codec_batch) else "D batch" if torch.equal(x, d_batch) else "x_hat"

    def record(name: str) -> Callable:
        def hook(_: torch.nn.Module, args: tuple) -> None:
            d_updated = not torch.equal(d_before[0], module.discriminator.parameters().__next__().detach())
            calls.append((name, which(args[0]), torch.is_grad_enabled(), d_updated))

        return hook

    module.model.register_forward_pre_hook(record("codec"))
    module.discriminator.register_forward_pre_hook(record("D"))
    fit(module, DataLoader([torch.cat([codec_batch, d_batch])[i] for i in range(4)], batch_size=4), iterations=1)
    assert calls == [
        ("codec", "D batch", False, False),  # D's own forward pass of the codec, no gradient to it
        ("D", "D batch", True, False),  # real
        ("D", "x_hat", True, False),  # fake
        ("codec", "codec batch", True, True),  # then the codec step on the other sub-batch, D already updated
        ("D", "x_hat", True, True),  # G loss from the updated D
    ]


def test_without_a_perceptual_module_the_stage_trains_on_rate_and_mse(crops: DataLoader) -> None:
    with pytest.raises(ValueError, match=r"loss\.k_p=0"):
        RDStage(arch_preset("tiny"), LossConfig(), None)
    module = RDStage(arch_preset("tiny"), LossConfig(k_p=0.0, warmup_iterations=1), None)
    trainer = fit(module, crops, iterations=1)
    assert "train/lpips" not in trainer.callback_metrics and torch.isfinite(trainer.callback_metrics["train/mse"])


def test_settling_the_tails_before_export_keeps_the_medians() -> None:
    model = HiFiC.from_preset("tiny")
    (quantiles,) = model.parameter_groups().aux
    medians, before = quantiles.detach()[:, :, 1].clone(), model.aux_loss().item()
    after = model.settle_tails(1000)
    assert after < before / 3 and torch.equal(quantiles.detach()[:, :, 1], medians)  # what is left: the medians


class NormRecorder(GANStage):
    """Records each optimizer's gradient norm right before its step (after clipping)."""

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        name = {id(opt.optimizer): n for n, opt in self.named_optimizers().items()}[id(optimizer)]
        self.norms = getattr(self, "norms", {}) | {
            name: torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))
        }


def test_gradient_clipping_is_per_optimizer(lpips_random: LPIPSLoss, crops: DataLoader) -> None:
    module = make_stage(NormRecorder, lpips_random, gradient_clip={"codec": 1e-3, "discriminator": 2e-3})
    fit(module, crops, iterations=1)
    assert module.norms["codec"].item() <= 1e-3 * 1.001
    assert module.norms["discriminator"].item() <= 2e-3 * 1.001
    assert module.norms["aux"].item() > 1e-2  # not clipped
    with pytest.raises(ValueError, match="unknown optimizers"):
        make_stage(RDStage, lpips_random, gradient_clip={"generator": 1.0})


def test_learning_rate_follows_our_iteration_counter(lpips_random: LPIPSLoss, crops: DataLoader) -> None:
    class LrRecorder(GANStage):
        def training_step(self, batch: torch.Tensor, batch_idx: int) -> None:
            self.lrs = [*getattr(self, "lrs", []), [o.param_groups[0]["lr"] for o in self.named_optimizers().values()]]
            super().training_step(batch, batch_idx)

    module = make_stage(LrRecorder, lpips_random, lr_schedule=LRSchedule(decay_iteration=2, factor=0.1))
    trainer = fit(module, crops, iterations=3)
    assert trainer.global_step == 3 * 3  # the schedulers step per iteration, the optimizers 3 times in it
    assert module.lrs == [[pytest.approx(1e-4)] * 3] * 2 + [[pytest.approx(1e-5)] * 3]
    assert all(type(s) is torch.optim.lr_scheduler.LambdaLR for s in module.lr_schedulers())


def test_warm_start_copies_the_codec_and_keeps_a_fresh_discriminator(
    lpips_random: LPIPSLoss, crops: DataLoader, tmp_path: Path
) -> None:
    base = make_stage(RDStage, lpips_random)
    trainer = fit(base, crops, iterations=1)
    path = tmp_path / "base.ckpt"
    trainer.save_checkpoint(path)
    gan = make_stage(GANStage, lpips_random)
    fresh_d = {k: v.clone() for k, v in gan.discriminator.state_dict().items()}
    warm_start(gan, path)
    gan_state = gan.model.state_dict()
    for key, value in base.model.state_dict().items():
        assert torch.equal(gan_state[key], value), key
    assert all(torch.equal(v, gan.discriminator.state_dict()[k]) for k, v in fresh_d.items())


def test_warm_start_from_a_gan_run_or_an_inference_checkpoint_brings_its_discriminator(
    lpips_random: LPIPSLoss, crops: DataLoader, tmp_path: Path
) -> None:
    source = make_stage(GANStage, lpips_random)
    trainer = fit(source, crops, iterations=1)
    trainer.save_checkpoint(tmp_path / "gan.ckpt")
    save_inference_checkpoint(source.model, tmp_path / "model.ckpt", discriminator=source.discriminator)
    for path in (tmp_path / "gan.ckpt", tmp_path / "model.ckpt"):
        target = make_stage(GANStage, lpips_random)
        warm_start(target, path)
        for key, value in source.discriminator.state_dict().items():
            assert torch.equal(target.discriminator.state_dict()[key], value), (path.name, key)
        assert torch.equal(target.model.g_s.up[-1].weight, source.model.g_s.up[-1].weight)


def test_warm_start_refuses_wrong_files(lpips_random: LPIPSLoss, crops: DataLoader, tmp_path: Path) -> None:
    gan = make_stage(GANStage, lpips_random)
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_codec_weights(gan.model, tmp_path / "missing.ckpt")
    (tmp_path / "page.ckpt").write_text("<html>not found</html>")
    with pytest.raises(CheckpointError, match="HTML/XML page, not a checkpoint"):
        load_codec_weights(gan.model, tmp_path / "page.ckpt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match=r"neither a Lightning training checkpoint .* nor a hific-lit inference"):
        load_codec_weights(gan.model, tmp_path / "other.ckpt")
    small = make_stage(RDStage, lpips_random)
    torch.save(
        {"state_dict": {f"model.{k}": v[..., :1] for k, v in small.model.state_dict().items()}}, tmp_path / "s.ckpt"
    )
    with pytest.raises(CheckpointError, match="same arch"):
        load_codec_weights(gan.model, tmp_path / "s.ckpt")


def test_warm_start_names_the_overrides_for_another_architecture(lpips_random: LPIPSLoss, tmp_path: Path) -> None:
    source = make_stage(RDStage, lpips_random)
    save_inference_checkpoint(source.model, tmp_path / "model.ckpt")
    other = RDStage(ArchConfig(**{**arch_preset("tiny").to_dict(), "padding": "reflect"}), LossConfig(), lpips_random)
    with pytest.raises(CheckpointError, match=r"another architecture; to start from it, add: arch.padding=\"zeros\""):
        warm_start(other, tmp_path / "model.ckpt")
