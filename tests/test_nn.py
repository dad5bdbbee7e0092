"""Unit tests of the plain-torch networks."""

from __future__ import annotations

import pathlib
import subprocess
import sys
from itertools import pairwise

import pytest
import torch

from hific_lit.models.hific.arch import ARCH_PRESETS, ArchConfig, arch_preset
from hific_lit.nn import ChannelNorm2d, Discriminator, Encoder, Generator, HyperAnalysis, HyperSynthesis
from hific_lit.nn.layers import make_norm

# Parameter counts of the authors' networks (tensorflow/compression models/hific/archs.py), as counted by the
# popular PyTorch port for g_a, g_s, h_a and h_s. The authors' D ends in a 4x4 conv to one channel where the port
# has a 1x1 conv: 23,772 (context 3x3 220->12) + 15,424 (4x4 15->64) + 131,200 (64->128) + 524,544 (128->256)
# + 2,097,664 (256->512, stride 1) + 8,193 (4x4 512->1) = 2,800,797 (the port: 2,793,117).
AUTHORS_COUNTS = {
    "encoder": 7_423_420,
    "generator": 156_774_683,
    "hyper_analysis": 5_754_560,
    "hyper_synthesis": 5_754_460,
    "discriminator": 2_800_797,
}


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv(k: int, c_in: int, c_out: int) -> int:
    """Parameters of a k x k convolution with bias."""
    return k * k * c_in * c_out + c_out


def paper_counts(a: ArchConfig) -> dict[str, int]:
    """Parameter counts from the paper's layer list (App. A.1, DESIGN.md), at any widths; ChannelNorm: γ and β.

    g_a: 7x7 conv, four 3x3 stride-2 convs (each with ChannelNorm), a 3x3 conv to C. g_s: ChannelNorm(C), 3x3 conv,
    residual blocks of two 3x3 convs with ChannelNorm, four 3x3 transposed convs with ChannelNorm, a 7x7 conv to 3.
    h_a: 3x3, 5x5, 5x5; h_s mirrored. D: 3x3 context conv, 4x4 convs over image + context, a 4x4 conv to 1."""
    e, g, c, f = a.encoder_widths, a.generator_widths, a.latent_channels, a.hyper_filters
    d = (3 + a.discriminator_context, *a.discriminator_widths)
    return {
        "encoder": conv(7, 3, e[0]) + 2 * e[0] + sum(conv(3, i, o) + 2 * o for i, o in pairwise(e)) + conv(3, e[4], c),
        "generator": 2 * c
        + conv(3, c, g[0])
        + 2 * g[0]
        + a.residual_blocks * 2 * (conv(3, g[0], g[0]) + 2 * g[0])
        + sum(conv(3, i, o) + 2 * o for i, o in pairwise(g))
        + conv(7, g[4], 3),
        "hyper_analysis": conv(3, c, f) + 2 * conv(5, f, f),
        "hyper_synthesis": 2 * conv(5, f, f) + conv(3, f, c),
        "discriminator": conv(3, c, a.discriminator_context)
        + sum(conv(4, i, o) for i, o in pairwise(d))
        + conv(4, d[-1], 1),
    }


@pytest.mark.parametrize("preset", ["hific", "small", "tiny"])  # jt: the widths of hific
def test_parameter_counts_follow_the_papers_layer_list(preset: str) -> None:
    a = ARCH_PRESETS[preset]
    counts = {
        "encoder": n_params(Encoder(a.encoder_widths, a.latent_channels)),
        "generator": n_params(Generator(a.latent_channels, a.generator_widths, a.residual_blocks)),
        "hyper_analysis": n_params(HyperAnalysis(a.latent_channels, a.hyper_filters)),
        "hyper_synthesis": n_params(HyperSynthesis(a.latent_channels, a.hyper_filters)),
        "discriminator": n_params(Discriminator(a.latent_channels, a.discriminator_widths, a.discriminator_context)),
    }
    assert counts == paper_counts(a)
    if preset == "hific":
        assert counts == AUTHORS_COUNTS


def test_the_receptive_fields_are_the_papers() -> None:
    """Measured by gradients: a latent pixel of g_a depends on the image within 34 px of its centre (7x7: 3, four
    stride-2 3x3: 1 + 2 + 4 + 8, the last 3x3 at /16: 16), and g_s's trunk on the latent within 1 + 2 per residual
    block (its head and two 3x3 convs per block)."""
    torch.manual_seed(0)
    a = arch_preset("tiny")

    def support(output: torch.Tensor, inputs: torch.Tensor, at: tuple[int, int]) -> tuple[range, range]:
        (grad,) = torch.autograd.grad(output[0, :, at[0], at[1]].sum(), inputs)
        rows, cols = grad[0].abs().sum(0).nonzero(as_tuple=True)
        return range(int(rows.min()), int(rows.max()) + 1), range(int(cols.min()), int(cols.max()) + 1)

    x = torch.rand(1, 3, 256, 256, dtype=torch.float64, requires_grad=True)
    encoder = Encoder(a.encoder_widths, a.latent_channels).double()
    assert support(encoder(x), x, (8, 7)) == (range(128 - 34, 128 + 35), range(112 - 34, 112 + 35))
    generator = Generator(a.latent_channels, a.generator_widths, 4).double()
    y = torch.randn(1, a.latent_channels, 24, 24, dtype=torch.float64, requires_grad=True)
    trunk = generator.blocks(generator.head(y))
    assert support(trunk, y, (12, 12)) == (range(12 - 9, 12 + 10),) * 2  # 1 + 2 * 4 blocks


def test_channel_norm_is_the_authors_layer_norm_over_channels() -> None:
    # archs.py LayerNorm: mean over channels, variance summed over channels divided by C - 1, eps 1e-3.
    x = torch.tensor([1.0, 2.0, 4.0, 9.0]).view(1, 4, 1, 1)
    y = ChannelNorm2d(4)(x)
    mean, var = 4.0, (9.0 + 4.0 + 0.0 + 25.0) / 3
    expected = (torch.tensor([1.0, 2.0, 4.0, 9.0]) - mean) / (var + 1e-3) ** 0.5
    assert torch.allclose(y.flatten(), expected, atol=1e-6)
    assert ChannelNorm2d(4).eps == 1e-3
    with pytest.raises(ValueError, match="at least 2 channels"):
        ChannelNorm2d(1)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_channel_norm_with_affine_matches_the_definition_in_both_layouts(layout: torch.memory_format) -> None:
    """y = gamma (x - mean_c) / sqrt(var_c,unbiased + 1e-3) + beta (authors' archs.py), against float64;
    channels_last inputs take the fused layer_norm path (inference), in float32, bfloat16 and backward."""
    torch.manual_seed(0)
    norm = ChannelNorm2d(5)
    with torch.no_grad():
        norm.gamma.uniform_(0.5, 2.0)
        norm.beta.uniform_(-1.0, 1.0)
    x = (torch.randn(2, 5, 3, 4) * 3 + 1).contiguous(memory_format=layout).requires_grad_(True)
    xd = x.detach().double().requires_grad_(True)
    gamma, beta = norm.gamma.detach().double(), norm.beta.detach().double()
    expected = gamma * (xd - xd.mean(1, keepdim=True)) / (xd.var(1, keepdim=True) + 1e-3).sqrt() + beta
    y = norm(x)
    assert torch.allclose(y.double(), expected, atol=1e-5)
    assert y.is_contiguous(memory_format=layout)
    (y * torch.arange(y.numel()).view(2, 3, 4, 5).permute(0, 3, 1, 2)).sum().backward()
    (expected * torch.arange(y.numel()).view(2, 3, 4, 5).permute(0, 3, 1, 2)).sum().backward()
    assert torch.allclose(x.grad.double(), xd.grad, atol=1e-3, rtol=1e-4)
    y16 = norm.to(torch.bfloat16)(x.detach().to(torch.bfloat16).contiguous(memory_format=layout))
    assert y16.dtype == torch.bfloat16
    assert torch.allclose(y16.double(), expected.detach(), atol=3e-2)


def test_channel_norm_is_independent_of_spatial_crop() -> None:
    norm = ChannelNorm2d(4)
    x = torch.randn(1, 4, 8, 8)
    assert torch.allclose(norm(x)[..., 2:5, 1:4], norm(x[..., 2:5, 1:4]))


@pytest.mark.parametrize(
    ("kind", "axes"), [("channel", (1,)), ("instance", (2, 3)), ("batch", (0, 2, 3)), ("none", ())]
)
def test_norm_kinds_normalise_over_their_axes(kind: str, axes: tuple[int, ...]) -> None:
    x = torch.randn(4, 6, 5, 5) * 3 + 2
    y = make_norm(kind, 6).train()(x)
    if not axes:
        assert torch.equal(y, x)
        return
    assert torch.allclose(y.mean(axes), torch.zeros(()), atol=1e-5)
    assert torch.allclose(y.var(axes, unbiased=kind == "channel"), torch.ones(()), atol=2e-3)


def test_unknown_norm_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown norm 'group'"):
        make_norm("group", 4)


def test_arch_config_validates() -> None:
    with pytest.raises(ValueError, match="5 entries"):
        ArchConfig(encoder_widths=(8, 8))
    with pytest.raises(ValueError, match="unknown architecture 'huge'"):
        arch_preset("huge")
    assert ArchConfig(**ARCH_PRESETS["tiny"].to_dict()) == ARCH_PRESETS["tiny"]


def test_the_codec_imports_no_lightning() -> None:
    """In a fresh interpreter: the codec, its networks, entropy models, tiling and checkpoints load no Lightning."""
    modules = ["hific_lit", "hific_lit.models.hific.model", "hific_lit.nn", "hific_lit.entropy", "hific_lit.tiling"]
    modules += ["hific_lit.io.checkpoint", "hific_lit.runtime.precision", "hific_lit.io.container"]
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules)
    code += "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')))"
    root = str(pathlib.Path(__file__).parents[1])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


def _convs(module: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in module.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)]


def test_initialisation_follows_the_authors_layers() -> None:
    torch.manual_seed(0)
    a = arch_preset("small")
    # Keras Conv2D / Conv2DTranspose (g_a, g_s): glorot uniform, limit sqrt(6 / (k*k*(in + out))), zero bias.
    for net in (Encoder(a.encoder_widths, a.latent_channels), Generator(a.latent_channels, a.generator_widths, 1)):
        for conv in _convs(net):
            k = conv.kernel_size[0]
            limit = (6.0 / (k * k * (conv.in_channels + conv.out_channels))) ** 0.5
            w = conv.weight
            assert w.abs().max() <= limit and w.abs().max() > 0.9 * limit, conv
            assert w.std().item() == pytest.approx(limit / 3**0.5, rel=0.1), conv
            assert torch.all(conv.bias == 0)
    # tfc.SignalConv2D (h_a, h_s): variance_scaling() = truncated normal, std sqrt(1 / fan_in) within 2 std.
    for conv in _convs(HyperSynthesis(a.latent_channels, a.hyper_filters)):
        std = (1.0 / (conv.in_channels * conv.kernel_size[0] ** 2)) ** 0.5
        assert conv.weight.std().item() == pytest.approx(std, rel=0.1)
        assert conv.weight.abs().max() <= 2 * std / 0.8796 and torch.all(conv.bias == 0)
    # compare_gan's conv2d (D): normal with std 0.02, zero bias.
    for conv in _convs(Discriminator(a.latent_channels, a.discriminator_widths, a.discriminator_context)):
        original = conv.parametrizations.weight.original
        if original.numel() > 1000:
            assert original.std().item() == pytest.approx(0.02, rel=0.1)
        assert torch.all(conv.bias == 0)


def test_discriminator_head_and_context_are_the_authors() -> None:
    disc = Discriminator(220, (64, 128, 256, 512), 12)
    convs = _convs(disc)
    assert all(hasattr(c, "parametrizations") for c in convs), "spectral norm on every conv, context included"
    head = convs[-1]
    assert (head.in_channels, head.out_channels, head.kernel_size, head.stride) == (512, 1, (4, 4), (1, 1))
    assert [(c.kernel_size, c.stride) for c in convs[1:-1]] == [((4, 4), (2, 2))] * 3 + [((4, 4), (1, 1))]
    assert disc(torch.rand(1, 3, 256, 256), torch.rand(1, 220, 16, 16)).shape == (1, 1, 32, 32)


def test_reflect_padding_leaves_no_border_and_zero_padding_does() -> None:
    """A flat image has a flat latent when every convolution mirrors the border; zeros outside make the border
    latents differ (the authors' Keras ``same``)."""
    a = ARCH_PRESETS["tiny"]
    flat = torch.full((1, 3, 64, 96), 0.6)
    for padding in ("zeros", "reflect"):
        y = Encoder(a.encoder_widths, a.latent_channels, padding=padding)(flat)
        spread = (y - y[..., 1:2, 1:2]).abs().amax()
        assert (spread < 1e-5) == (padding == "reflect"), padding
    with pytest.raises(ValueError, match="unknown padding 'circular'"):
        ArchConfig(padding="circular")
