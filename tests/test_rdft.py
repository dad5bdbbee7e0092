"""h_a's RDFT kernels: tfc 1.3's parameterization, the same function as the plain h_a, exact saving and loading.

The fixture ``tests/fixtures/tfc/rdft.npz`` is what tensorflow/compression 1.3's own ``irdft_matrix`` and
``RDFTParameterizer`` (with TF 1's ``AdamOptimizer``) compute: scripts/make_tfc_rdft_fixture.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from hific_lit import HiFiC
from hific_lit.io.checkpoint import load_inference_checkpoint, read_inference_checkpoint, save_inference_checkpoint
from hific_lit.models.hific.arch import ARCH_PRESETS, ArchConfig
from hific_lit.nn.hyperprior import HyperAnalysis
from hific_lit.nn.rdft import RDFTConv2d, irdft_basis, irdft_matrix, rdft_coefficients

FIXTURE = Path(__file__).parent / "fixtures" / "tfc" / "rdft.npz"
CPU64 = (torch.device("cpu"), torch.float64)


@pytest.fixture(scope="module")
def tfc() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as arrays:
        return dict(arrays)


def _arch(kernel: str, preset: str = "tiny") -> ArchConfig:
    return ArchConfig(**{**ARCH_PRESETS[preset].to_dict(), "hyper_analysis_kernel": kernel})


def _trained(kernel: str = "rdft", seed: int = 0) -> HiFiC:
    """A tiny model whose h_a took three Adam steps (non-zero RDFT coefficient steps), tables built, eval mode."""
    torch.manual_seed(seed)
    model = HiFiC(_arch(kernel))
    optimizer = torch.optim.Adam(model.h_a.parameters(), lr=1e-2)
    y = torch.randn(2, model.arch.latent_channels, 8, 8)
    for _ in range(3):
        optimizer.zero_grad()
        model.h_a(y).square().mean().backward()
        optimizer.step()
    model.update()
    return model.eval()


def test_the_basis_is_tfc_irdft_matrix(tfc: dict[str, np.ndarray]) -> None:
    for n in (2, 3, 4, 5):
        np.testing.assert_allclose(irdft_basis(n).numpy(), tfc[f"irdft_{n}"], rtol=0, atol=1e-15)
    for n in (3, 4, 5):
        np.testing.assert_allclose(irdft_matrix((n, n), *CPU64).numpy(), tfc[f"irdft_{n}x{n}"], rtol=0, atol=1e-15)


@pytest.mark.parametrize("name", ["k5", "k3"])
def test_kernels_and_adam_steps_are_tfcs_rdft_parameterizer(tfc: dict[str, np.ndarray], name: str) -> None:
    """tfc's variable is Mᵀ k0 and its kernel M c; three TF 1 Adam steps on c move the kernel as three torch Adam
    steps on our coefficient steps do (a plain kernel's steps do not)."""
    initial = torch.from_numpy(tfc[f"{name}_initial"]).permute(3, 2, 0, 1)  # (kh, kw, in, out) -> (out, in, kh, kw)
    out_ch, in_ch, kh, kw = initial.shape
    conv = RDFTConv2d(in_ch, out_ch, (kh, kw), bias=False)
    plain = torch.nn.Conv2d(in_ch, out_ch, (kh, kw), bias=False)
    with torch.no_grad():
        conv.weight_origin.copy_(initial)
        plain.weight.copy_(initial)
    variable = torch.from_numpy(tfc[f"{name}_rdft_variable"]).view(kh * kw, in_ch, out_ch).permute(2, 1, 0)
    torch.testing.assert_close(rdft_coefficients(initial).flatten(2), variable, rtol=0, atol=1e-6)
    assert torch.equal(conv.kernel(), initial), "the initial kernel is k0 itself (tfc's M Mᵀ k0 up to round-off)"
    torch.testing.assert_close(conv.kernel(), torch.from_numpy(tfc[f"{name}_kernel"]).permute(3, 2, 0, 1))
    ours = torch.optim.Adam(conv.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    direct = torch.optim.Adam(plain.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    for grad, expected in zip(tfc[f"{name}_grads"], tfc[f"{name}_kernel_after_steps"], strict=True):
        target = torch.from_numpy(grad).permute(3, 2, 0, 1)
        for kernel, optimizer in ((conv.kernel, ours), (lambda: plain.weight, direct)):
            optimizer.zero_grad()
            (kernel() * target).sum().backward()
            optimizer.step()
        expected = torch.from_numpy(expected).permute(3, 2, 0, 1)
        torch.testing.assert_close(conv.kernel().detach(), expected, rtol=0, atol=2e-6)
        assert (plain.weight.detach() - expected).abs().max() > 1e-4, "a plain kernel would step elsewhere"


@pytest.mark.parametrize("padding", ["zeros", "reflect"])
def test_rdft_h_a_computes_the_plain_one_bit_for_bit_until_it_trains(padding: str) -> None:
    torch.manual_seed(3)
    plain = HyperAnalysis(8, 8, padding, kernel="plain")
    after_plain = torch.get_rng_state()
    torch.manual_seed(3)
    rdft = HyperAnalysis(8, 8, padding, kernel="rdft")
    assert torch.equal(torch.get_rng_state(), after_plain), "the seed's stream is left as the plain h_a leaves it"
    assert all(isinstance(rdft.net[i], RDFTConv2d) for i in (0, 2, 4))
    assert sum(p.numel() for p in rdft.parameters()) == sum(p.numel() for p in plain.parameters())
    y = torch.randn(2, 8, 12, 20)
    assert torch.equal(rdft(y), plain(y))


def test_state_dicts_round_trip_exactly_and_convert_between_forms() -> None:
    trained = _trained().h_a
    assert any(t.abs().sum() > 0 for k, t in trained.state_dict().items() if k.endswith("weight_rdft"))
    y = torch.randn(1, 8, 16, 16)
    copy = HyperAnalysis(8, 8, kernel="rdft")
    copy.load_state_dict(trained.state_dict())
    assert all(torch.equal(v, copy.state_dict()[k]) for k, v in trained.state_dict().items())
    with torch.device("meta"):
        meta = HyperAnalysis(8, 8, kernel="rdft")
    meta.load_state_dict(trained.state_dict(), assign=True)
    assert torch.equal(meta(y), trained(y))
    plain = HyperAnalysis(8, 8, kernel="plain")  # RDFT -> plain: the kernels the RDFT forward pass computes
    plain.load_state_dict(trained.state_dict())
    assert set(plain.state_dict()) == {f"net.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")}
    assert torch.equal(plain(y), trained(y))
    back = HyperAnalysis(8, 8, kernel="rdft")  # plain -> RDFT: origin = the kernel, zero steps
    back.load_state_dict(plain.state_dict())
    assert torch.equal(back(y), plain(y))
    assert all(back.state_dict()[f"net.{i}.weight_rdft"].abs().sum() == 0 for i in (0, 2, 4))


def test_inference_checkpoints_of_rdft_models_reload_exactly(tmp_path: Path) -> None:
    model = _trained()
    save_inference_checkpoint(model, tmp_path / "model.ckpt")
    payload = read_inference_checkpoint(tmp_path / "model.ckpt")
    assert payload["format_version"] == 4 and payload["arch"]["hyper_analysis_kernel"] == "rdft"
    loaded = load_inference_checkpoint(tmp_path / "model.ckpt")
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    x = torch.rand(3, 40, 72)
    assert loaded.compress(x) == model.compress(x)


def test_version_3_checkpoints_with_plain_kernels_load_into_the_rdft_default(tmp_path: Path) -> None:
    """A checkpoint written before the RDFT default (format 3, no ``hyper_analysis_kernel`` in its arch) builds
    the authors' RDFT h_a and codes exactly as the plain model it was saved from."""
    plain = _trained("plain")
    save_inference_checkpoint(plain, tmp_path / "new.ckpt")
    payload = read_inference_checkpoint(tmp_path / "new.ckpt")
    payload["format_version"] = 3
    del payload["arch"]["hyper_analysis_kernel"]
    torch.save(payload, tmp_path / "v3.ckpt")
    loaded = load_inference_checkpoint(tmp_path / "v3.ckpt")
    assert loaded.arch.hyper_analysis_kernel == "rdft" and isinstance(loaded.h_a.net[2], RDFTConv2d)
    x = torch.rand(3, 40, 72)
    assert loaded.compress(x) == plain.compress(x)


@pytest.mark.parametrize(("source", "target"), [("plain", "rdft"), ("rdft", "plain")])
def test_warm_start_converts_between_kernel_forms(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, source: str, target: str
) -> None:
    from hific_lit.training.warmstart import load_codec_weights

    trained = _trained(source)
    save_inference_checkpoint(trained, tmp_path / "model.ckpt")
    stage = HiFiC(_arch(target))
    with caplog.at_level(logging.INFO, logger="hific_lit.training.warmstart"):
        load_codec_weights(stage, tmp_path / "model.ckpt")
    assert "converted between plain and RDFT form: h_a.net.0, h_a.net.2, h_a.net.4" in caplog.text
    y = torch.randn(1, stage.arch.latent_channels, 16, 16)
    assert torch.equal(stage.h_a(y), trained.h_a(y))


def test_the_authors_presets_train_rdft_kernels_and_the_port_plain_ones() -> None:
    assert ArchConfig().hyper_analysis_kernel == "rdft"
    assert [ARCH_PRESETS[p].hyper_analysis_kernel for p in ("hific", "small", "jt")] == ["rdft", "rdft", "plain"]
    with pytest.raises(ValueError, match="unknown hyper_analysis_kernel 'dct'"):
        ArchConfig(hyper_analysis_kernel="dct")
