"""Unit tests of the plain-torch networks."""

from __future__ import annotations

import ast
import pathlib

import pytest
import torch

from hific_lit.arch import ARCH_PRESETS, ArchConfig, arch_preset
from hific_lit.nn import ChannelNorm2d, Discriminator, Encoder, Generator, HyperAnalysis, HyperSynthesis
from hific_lit.nn.layers import make_norm

# Published counts of the HiFiC networks (fp32, the reference PyTorch port).
PAPER_COUNTS = {
    "encoder": 7_423_420,
    "generator": 156_774_683,
    "hyper_analysis": 5_754_560,
    "hyper_synthesis": 5_754_460,
    "discriminator": 2_793_117,
}


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_hific_parameter_counts_match_paper() -> None:
    a = arch_preset("hific")
    counts = {
        "encoder": n_params(Encoder(a.encoder_widths, a.latent_channels)),
        "generator": n_params(Generator(a.latent_channels, a.generator_widths, a.residual_blocks)),
        "hyper_analysis": n_params(HyperAnalysis(a.latent_channels, a.hyper_filters)),
        "hyper_synthesis": n_params(HyperSynthesis(a.latent_channels, a.hyper_filters)),
        "discriminator": n_params(Discriminator(a.latent_channels, a.discriminator_widths, a.discriminator_context)),
    }
    for name, expected in PAPER_COUNTS.items():
        assert abs(counts[name] - expected) <= 0.005 * expected, (name, counts[name], expected)


def test_channel_norm_normalises_over_channels() -> None:
    x = torch.randn(2, 7, 5, 3) * 4 + 3
    y = ChannelNorm2d(7)(x)
    assert torch.allclose(y.mean(dim=1), torch.zeros(2, 5, 3), atol=1e-5)
    assert torch.allclose(y.var(dim=1, unbiased=False), torch.ones(2, 5, 3), atol=1e-3)


def test_channel_norm_is_independent_of_spatial_crop() -> None:
    norm = ChannelNorm2d(4)
    x = torch.randn(1, 4, 8, 8)
    assert torch.allclose(norm(x)[..., 2:5, 1:4], norm(x[..., 2:5, 1:4]))


@pytest.mark.parametrize("kind", ["channel", "instance", "batch", "none"])
def test_norm_kinds_keep_shape(kind: str) -> None:
    assert make_norm(kind, 6)(torch.randn(2, 6, 4, 4)).shape == (2, 6, 4, 4)


def test_unknown_norm_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown norm 'group'"):
        make_norm("group", 4)


@pytest.mark.parametrize("preset", ["small", "tiny"])  # "hific" is covered by the parameter counts
def test_network_shapes_per_preset(preset: str) -> None:
    a = ARCH_PRESETS[preset]
    enc = Encoder(a.encoder_widths, a.latent_channels, a.norm)
    gen = Generator(a.latent_channels, a.generator_widths, a.residual_blocks, a.norm)
    h_a, h_s = HyperAnalysis(a.latent_channels, a.hyper_filters), HyperSynthesis(a.latent_channels, a.hyper_filters)
    disc = Discriminator(a.latent_channels, a.discriminator_widths, a.discriminator_context)
    x = torch.rand(2, 3, 128, 64)
    y = enc(x)
    assert y.shape == (2, a.latent_channels, 8, 4)
    z = h_a(y)
    assert z.shape == (2, a.hyper_filters, 2, 1)
    assert h_s(z).shape == y.shape
    assert gen(y).shape == x.shape
    assert disc(x, y).shape == (2, 1, 16, 8)


def test_arch_config_validates() -> None:
    with pytest.raises(ValueError, match="5 entries"):
        ArchConfig(encoder_widths=(8, 8))
    with pytest.raises(ValueError, match="unknown architecture 'huge'"):
        arch_preset("huge")
    assert ArchConfig(**ARCH_PRESETS["tiny"].to_dict()) == ARCH_PRESETS["tiny"]


def test_networks_import_no_lightning() -> None:
    root = pathlib.Path(__file__).parents[1] / "hific_lit"
    files = [*(root / "nn").glob("*.py"), *(root / "entropy").glob("*.py"), root / "codec.py"]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.split(".")[0] in {"lightning", "pytorch_lightning"} for n in names), path
