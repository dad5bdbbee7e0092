"""The integer-exact h_s (format version 2): it computes what the float network does, exactly the same
whatever the summation order, layout, thread count or convolution algorithm; the float path does not."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from hific_lit.entropy import GaussianConditional, IntegerConvNet, integer
from hific_lit.entropy.integer import WEIGHT_BITS
from hific_lit.models.hific.format_v1 import scale_indexes
from hific_lit.nn import HyperSynthesis


def _frozen(
    latent: int, filters: int, seed: int = 0, input_bound: float = 40.0
) -> tuple[HyperSynthesis, IntegerConvNet]:
    torch.manual_seed(seed)
    h_s = HyperSynthesis(latent, filters).eval()
    net = IntegerConvNet(h_s.net)
    net.update(h_s.net, input_bound)
    return h_s, net


def _z_hat(filters: int, h: int, w: int, batch: int = 1) -> torch.Tensor:
    return (torch.randint(-6, 7, (batch, filters, h, w)).float() + torch.randn(1, filters, 1, 1) * 0.3).float()


def _reference_int64(net: IntegerConvNet, z_hat: torch.Tensor) -> torch.Tensor:
    """The same arithmetic in pure int64 (unfold + integer matmul, another summation order): the reference."""
    fraction = net.fraction_bits.tolist()
    limit = (1 << net.layers[0].activation_bits) - 1
    x = torch.round(z_hat.double() * 2.0 ** fraction[0]).clamp(-limit, limit).long()
    for i, layer in enumerate(net.layers):
        weight = getattr(net, f"weight{i}").long()
        if layer.transposed:
            kh, kw = layer.kernel
            sh, sw = layer.stride
            b, c, h, w = x.shape
            dilated = torch.zeros(b, c, (h - 1) * sh + 1, (w - 1) * sw + 1, dtype=torch.int64)
            dilated[:, :, ::sh, ::sw] = x
            ph, pw = kh - 1 - layer.padding[0], kw - 1 - layer.padding[1]
            oh, ow = layer.output_padding
            x = nn.functional.pad(dilated, (pw, pw + ow, ph, ph + oh))
            weight = weight.flip(2, 3)
            stride, padding = (1, 1), (0, 0)
        else:
            stride, padding = layer.stride, layer.padding
        out_h = (x.shape[2] + 2 * padding[0] - layer.kernel[0]) // stride[0] + 1
        out_w = (x.shape[3] + 2 * padding[1] - layer.kernel[1]) // stride[1] + 1
        columns = nn.functional.unfold(x.double(), layer.kernel, padding=padding, stride=stride).long()
        acc = (weight.view(layer.out_channels, -1) @ columns).view(x.shape[0], -1, out_h, out_w)
        acc = acc + getattr(net, f"bias{i}")[:, None, None]
        shift = getattr(net, f"shift{i}")[:, None, None]
        divisor = torch.ones_like(shift) << shift
        x = torch.div(acc + (divisor >> 1), divisor, rounding_mode="floor")
        if i + 1 < len(net.layers):
            top = (1 << net.layers[i + 1].activation_bits) - 1
            x = x.clamp(0 if layer.relu else -top, top)
    return x.double() * 2.0 ** -fraction[-1]


def test_layout_and_bounds_follow_the_module_docstring() -> None:
    _, net = _frozen(8, 8)
    assert [layer.transposed for layer in net.layers] == [True, True, False]
    assert [layer.relu for layer in net.layers] == [True, True, False]
    for i in range(3):
        weight = getattr(net, f"weight{i}")
        assert weight.abs().max() <= 2**WEIGHT_BITS - 1
        assert (getattr(net, f"shift{i}") >= 0).all()
    assert net.layers[0].activation_bits == 61 - 15 - 8  # ceil(log2(5 * 5 * 8))
    assert net.fraction_bits[-1] == 16


def test_matches_the_float_network_to_2e4() -> None:
    h_s, net = _frozen(220, 320)
    z_hat = _z_hat(320, 3, 4)
    with torch.no_grad():
        expected = copy.deepcopy(h_s).double()(z_hat.double())
    assert (net(z_hat) - expected).abs().max() < 2e-4


def test_equals_a_pure_int64_evaluation_bit_for_bit() -> None:
    _, net = _frozen(24, 32)
    z_hat = _z_hat(32, 5, 3, batch=2)
    assert torch.equal(net(z_hat), _reference_int64(net, z_hat))


def test_the_same_whatever_layout_threads_batch_or_dtype() -> None:
    _, net = _frozen(24, 32)
    z_hat = _z_hat(32, 6, 5, batch=2)
    reference = net(z_hat)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = net(z_hat)
        torch.set_num_threads(1)
        one = net(z_hat)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(two, reference) and torch.equal(one, reference)
    assert torch.equal(net(z_hat.contiguous(memory_format=torch.channels_last)), reference)
    assert torch.equal(net(z_hat.double()), reference)
    assert torch.equal(torch.cat([net(z_hat[i : i + 1]) for i in range(2)]), reference)
    with torch.backends.mkldnn.flags(enabled=False):
        assert torch.equal(net(z_hat), reference)


def test_outputs_are_multiples_of_2_to_the_minus_16() -> None:
    _, net = _frozen(8, 8)
    out = net(_z_hat(8, 4, 4))
    assert out.dtype == torch.float64
    assert torch.equal(out * 2**16, torch.round(out * 2**16))


def test_saturates_instead_of_overflowing_on_absurd_inputs() -> None:
    _, net = _frozen(8, 8)
    out = net(torch.full((1, 8, 2, 2), 1e30))
    assert torch.isfinite(out).all()


def test_unsupported_layers_are_refused() -> None:
    with pytest.raises(ValueError, match="Conv2d, ConvTranspose2d and ReLU"):
        IntegerConvNet(nn.Sequential(nn.Conv2d(2, 2, 3), nn.Tanh(), nn.Conv2d(2, 2, 3)))
    with pytest.raises(ValueError, match="groups 1"):
        IntegerConvNet(nn.Sequential(nn.Conv2d(2, 2, 3, groups=2)))


def test_hific_sized_activations_convolve_without_the_split(monkeypatch: pytest.MonkeyPatch) -> None:
    """The binary points leave HiFiC's activations (220 latents, 320 filters) below each layer's exact width,
    so that every layer takes one float64 product per tap; inputs far beyond the bound the network was
    frozen for take the split, and still equal the int64 evaluation."""
    parts: list[int] = []
    split = integer._exact_parts
    monkeypatch.setattr(integer, "_exact_parts", lambda x, layer: parts.append(len(out := split(x, layer))) or out)
    _, net = _frozen(220, 320)
    net(_z_hat(320, 4, 3))
    assert parts == [1, 1, 1]
    assert net.fraction_bits[0] == net.layers[0].exact_bits - 6  # ceil(log2(40 + 1))
    parts.clear()
    beyond = _z_hat(320, 4, 3) * 1000.0
    assert torch.equal(net(beyond), _reference_int64(net, beyond))
    assert parts[0] == 2


def test_state_travels_and_unbuilt_nets_refuse_to_run() -> None:
    h_s, net = _frozen(8, 8)
    fresh = IntegerConvNet(h_s.net)
    with pytest.raises(RuntimeError, match="update"):
        fresh(_z_hat(8, 2, 2))
    fresh.load_state_dict(net.state_dict())
    z_hat = _z_hat(8, 3, 3)
    assert torch.equal(fresh(z_hat), net(z_hat))


def _nudge(x: torch.Tensor, direction: float) -> torch.Tensor:
    return torch.nextafter(x, torch.full_like(x, direction))


@pytest.mark.slow
def test_negative_control_float_scales_flip_indexes_integer_scales_do_not() -> None:
    """On a 16384² image's latent (8 M values): float h_s nudged by one ulp, or computed by another exact-in-theory
    algorithm (float64, then rounded), changes scale indexes of format 1; the integer path computed by another
    algorithm (pure int64) changes none of format 2's."""
    torch.manual_seed(3)
    h_s = HyperSynthesis(8, 8).eval()
    with torch.no_grad():  # sigma spread over the scale table (0.11 .. ~14) rather than mostly clamped at 0.11
        h_s.net[-1].weight.mul_(8.0)
        h_s.net[-1].bias.fill_(4.0)
    net = IntegerConvNet(h_s.net)
    net.update(h_s.net, 12.0)
    torch.manual_seed(4)
    z_hat = torch.randint(-3, 4, (1, 8, 256, 256)).float()
    conditional = GaussianConditional()
    conditional.update()
    scales = conditional.tables.scales
    with torch.no_grad():
        sigma = h_s(z_hat)
        sigma64 = copy.deepcopy(h_s).double()(z_hat.double()).float()
    v1 = scale_indexes(sigma, scales)
    flipped = sum(int((scale_indexes(_nudge(sigma, d), scales) != v1).sum()) for d in (float("inf"), -float("inf")))
    other_algorithm = int((scale_indexes(sigma64, scales) != v1).sum())
    print(f"format 1: {flipped} indexes flipped by one ulp, {other_algorithm} by float64 convolutions")
    assert flipped >= 1 and other_algorithm >= 1, (flipped, other_algorithm)
    v2 = conditional.indexes(net(z_hat))
    assert torch.equal(conditional.indexes(_reference_int64(net, z_hat)), v2)
