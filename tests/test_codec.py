"""Unit tests of the HiFiC model: shapes, gradients, rates, parameter groups, padding."""

from __future__ import annotations

import pytest
import torch

from hific_lit import HiFiC
from hific_lit.nn.padding import crop, pad_to_multiple, padded_indices, padded_size


@pytest.fixture
def tiny() -> HiFiC:
    return HiFiC.from_preset("tiny")


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (65, 97), (256, 256)])
def test_any_size_round_trips_shapes(tiny: HiFiC, size: tuple[int, int]) -> None:
    x = torch.rand(2, 3, *size)
    for mode in (True, False):
        out = tiny.train(mode)(x)
        assert out.x_hat.shape == x.shape
        h, w = padded_size(size[0]) // 16, padded_size(size[1]) // 16
        assert out.y_hat.shape == (2, tiny.arch.latent_channels, h, w)
        assert out.likelihoods.z.shape == (2, tiny.arch.hyper_filters, h // 4, w // 4)
        for p in out.likelihoods:
            assert torch.all(p > 0) and torch.all(p <= 1)
        assert out.bpp.item() > 0 and out.bpp_rounded.item() > 0


def test_gradients_reach_every_codec_parameter(tiny: HiFiC) -> None:
    out = tiny.train()(torch.rand(2, 3, 64, 64))
    loss = out.bpp + ((out.x_hat - 0.5) ** 2).mean()
    groups = tiny.parameter_groups()
    loss.backward()
    missing = [n for n, p in tiny.named_parameters() if any(p is q for q in groups.codec) and p.grad is None]
    assert not missing, missing
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in groups.codec)
    assert groups.aux[0].grad is None


def test_parameter_groups_are_disjoint_and_complete(tiny: HiFiC) -> None:
    groups = tiny.parameter_groups()
    assert groups._fields == ("codec", "aux")
    codec, aux = ({id(p) for p in g} for g in groups)
    assert codec and aux and not codec & aux
    assert len(codec) + len(aux) == len(list(tiny.parameters()))
    density = {
        id(p) for n, p in tiny.named_parameters() if n.startswith("entropy_bottleneck.") and "quantiles" not in n
    }
    assert density and density <= codec, "the factorized density trains with the codec"
    assert aux == {id(tiny.entropy_bottleneck.quantiles)}, "aux holds the quantiles only"


def test_the_codec_holds_no_discriminator(tiny: HiFiC) -> None:
    assert not any("discriminator" in name for name, _ in tiny.named_modules())


def test_encoder_sees_unit_range_and_generator_output_is_the_image(tiny: HiFiC) -> None:
    x = torch.rand(1, 3, 64, 64)
    tiny.eval()
    with torch.no_grad():
        out = tiny(x)
        assert torch.equal(
            out.y_hat,
            tiny.conditional(tiny.g_a(x), *tiny.hyper_decode(tiny.entropy_bottleneck(tiny.h_a(tiny.g_a(x)))[0]))[0],
        )
        assert torch.equal(out.x_hat, tiny.g_s(out.y_hat))


def test_noise_and_rounding_rates_agree_on_a_real_photo(astronaut: torch.Tensor) -> None:
    model = HiFiC.from_preset("small").train()
    with torch.no_grad():
        out = model(astronaut[..., :256, :320])
    ratio = out.bpp_rounded.item() / out.bpp.item()
    assert 0.5 < ratio < 2.0, (out.bpp.item(), out.bpp_rounded.item())
    eval_out = model.eval()(astronaut[..., :256, :320])
    assert torch.equal(eval_out.bpp, eval_out.bpp_rounded)


@pytest.mark.parametrize("size", [(1, 1), (2, 130), (63, 64), (64, 65), (200, 3)])
def test_pad_and_crop(size: tuple[int, int]) -> None:
    x = torch.rand(1, 3, *size)
    padded = pad_to_multiple(x)
    assert padded.shape[-2] % 64 == 0 and padded.shape[-1] % 64 == 0
    assert torch.equal(crop(padded, *size), x)


def test_padding_reflects() -> None:
    x = torch.arange(5.0).view(1, 1, 1, 5).expand(1, 1, 2, 5)
    padded = pad_to_multiple(x)
    assert padded[0, 0, 0, :9].tolist() == [0, 1, 2, 3, 4, 3, 2, 1, 0]


@pytest.mark.parametrize("size", [1, 2, 3, 17, 63, 64, 65, 130, 1000])
def test_padded_indices_are_repeated_reflection(size: int) -> None:
    x = torch.arange(float(size)).view(1, 1, size)
    need = padded_size(size) - size
    while need > 0:  # torch's reflect pads by less than the current length: reflect the padded axis again
        length = x.shape[-1]
        step = need if length == 1 else min(need, length - 1)
        x = torch.nn.functional.pad(x, (0, step), mode="replicate" if length == 1 else "reflect")
        need -= step
    assert torch.equal(padded_indices(size), x.flatten().long())
