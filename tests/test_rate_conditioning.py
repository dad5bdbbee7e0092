"""A rate-conditioned HiFiC (gain units): one model, any rate chosen at encode time, stored in the file, exact decoding.

The exactness claims are checked against plain Python integers (the decoder's table index of σ · g), the coding
against the fixed-rate model the rate-conditioned one starts as (gains at 1), and the files against their
decodings: the decoder's ŷ is the encoder's, bit for bit, at every rate.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hific_lit.entropy.rate_gains import RATE_STEPS, RateGains, scale_units
from hific_lit.errors import BitstreamError, SettingError
from hific_lit.io.container import pack, unpack
from hific_lit.models.hific.arch import ARCH_PRESETS, ArchConfig
from hific_lit.models.hific.model import HiFiC
from hific_lit.models.rate import RATE_SECTION, RateRange, rate_request, section_rate_steps
from hific_lit.nn.realism import FiLMChannelNorm2d

TINY_RATE = dataclasses.replace(ARCH_PRESETS["tiny"], rate_conditioning=True)


def spread(model: HiFiC, low: float = -2.0, high: float = 1.0) -> HiFiC:
    """Give the anchors gains an octave or more apart (as training does), channel by channel a little different."""
    gains = model.rate_gains
    with torch.no_grad():
        base = torch.linspace(low, high, gains.anchors)[:, None]
        gains.log_gain.copy_(base + 0.2 * torch.rand(gains.log_gain.shape))
        gains.log_inverse_ratio.copy_(0.1 * torch.rand(gains.log_gain.shape))
    model.update(force=True)
    return model


@pytest.fixture
def rate_model() -> HiFiC:
    torch.manual_seed(0)
    return spread(HiFiC(TINY_RATE).eval())


@pytest.fixture
def photo(astronaut: torch.Tensor) -> torch.Tensor:
    return astronaut[0, :, 100:260, 120:360]


def test_the_arch_option_and_presets() -> None:
    assert ARCH_PRESETS["small_rate"] == dataclasses.replace(ARCH_PRESETS["small"], rate_conditioning=True)
    assert ARCH_PRESETS["hific_rate"] == ArchConfig(rate_conditioning=True)
    assert HiFiC(ARCH_PRESETS["tiny"]).capabilities.rate is None
    assert HiFiC(TINY_RATE).capabilities.rate == RateRange(anchors=3)
    with pytest.raises(ValueError, match="rate_anchors >= 2"):
        ArchConfig(rate_conditioning=True, rate_anchors=1)
    with pytest.raises(ValueError, match="rate_gain_spread must be 0 to 14 octaves, got -1"):
        ArchConfig(rate_conditioning=True, rate_gain_spread=-1.0)


def test_frozen_gains_and_table_indexes_are_exact_integers() -> None:
    torch.manual_seed(1)
    gains = RateGains(4, 6)
    with torch.no_grad():
        gains.log_gain.uniform_(-7.5, 7.5)  # beyond ±7 octaves: clipped when frozen
    gains.update()
    anchors = [[int(v) for v in row] for row in gains.frozen.anchors]
    assert max(max(abs(v) for v in row) for row in anchors) == 7 * 256
    mantissas = [int(v) for v in gains.frozen.mantissas]
    thresholds = torch.tensor([3, 70000, 2**20, 15_000_000])
    units = torch.randint(0, 2**31 - 1, (1, 6, 5, 7))
    units[0, :, 0, :3] = torch.tensor([0, 1, 2**31 - 1])
    for steps in (0, 1, 21845, 30000, 43690, RATE_STEPS):
        applied = gains.at(steps)
        position = steps * 3
        k = min(position // RATE_STEPS, 2)
        f = position - k * RATE_STEPS
        computed = applied.indexes(units, thresholds)
        for c in range(6):
            numerator = anchors[k][c] * (RATE_STEPS - f) + anchors[k + 1][c] * f
            n = (2 * numerator + RATE_STEPS) // (2 * RATE_STEPS)  # round half up, in Python integers
            assert int(applied.steps[c]) == n
            mantissa, octaves = mantissas[n % 256], n // 256
            assert mantissa == round(2 ** (30 + (n % 256) / 256))
            assert float(applied.gain[c]) == mantissa * 2.0 ** (octaves - 30)
            for u, index in zip(units[0, c].flatten().tolist(), computed[0, c].flatten().tolist(), strict=True):
                scaled = (u * mantissa * 2 ** max(octaves, 0)) // 2 ** (30 - min(octaves, 0))  # floor(u · gain)
                assert index == sum(t <= scaled for t in thresholds.tolist())
    assert gains.at(0).steps.tolist() == anchors[0] and gains.at(RATE_STEPS).steps.tolist() == anchors[3]
    assert gains.at(21845).steps.tolist() == anchors[1]  # 21845 · 3 = 65535: exactly anchor 1


def test_scale_units_are_the_integer_h_s_scales() -> None:
    sigma = torch.tensor([0.0, 2.0**-16, 0.11, 1.5, 255.99, 1e9, float("nan")], dtype=torch.float64)
    sigma = torch.round(sigma * 2**16) / 2**16
    expected = [0, 1, round(0.11 * 2**16), round(1.5 * 2**16), round(255.99 * 2**16), 2**31 - 1, 0]
    assert scale_units(sigma).tolist() == expected


def test_at_gain_one_the_model_is_the_fixed_rate_one(photo: torch.Tensor) -> None:
    torch.manual_seed(0)
    fixed = HiFiC(ARCH_PRESETS["tiny"]).eval()
    conditioned = HiFiC(TINY_RATE).eval()
    missing = conditioned.load_state_dict(fixed.state_dict(), strict=False).missing_keys
    assert all(k.startswith("rate_gains.") for k in missing)
    x = photo[None]
    for rate in (0.0, 0.3, 1.0):
        a, b = fixed(x), conditioned(x, rate=rate)
        assert torch.allclose(a.x_hat, b.x_hat, atol=1e-5) and torch.allclose(a.bpp, b.bpp, rtol=1e-5)
    fixed.update()
    conditioned.update()
    plain, gained = fixed.compress(x), conditioned.compress(x, rate=0.7)
    assert len(gained) - len(plain) == 7 + 4  # the rate section (tag, length, R) and the version-3 header field
    assert unpack(gained)[1:3] == unpack(plain)[1:3]  # the same z- and y-streams
    assert torch.allclose(fixed.decompress(plain), conditioned.decompress(gained), atol=1e-5)


def test_files_decode_to_the_encoders_latent_at_every_rate(rate_model: HiFiC, photo: torch.Tensor) -> None:
    latent = rate_model.analysis(photo[None])
    coder = rate_model.rate_coder(latent)
    sizes = []
    for rate in (0.0, 0.2, 0.5, 0.5001, 0.9, 1.0):
        data = rate_model.compress(photo, rate=rate)
        steps = round(rate * RATE_STEPS)
        assert data.rate == steps / RATE_STEPS and data.note is None
        unpacked = unpack(data)
        assert unpacked.header.version == 3 and section_rate_steps(unpacked.sections) == steps
        z_hat = rate_model.entropy_bottleneck.decompress(unpacked.z_stream, unpacked.header.z_shape[1:])
        mu, _ = rate_model.hyper_synthesis_exact(z_hat)
        gains = rate_model.rate_gains.at(steps)
        expected = gains.dequantize(gains.symbols(coder.residual), mu)  # what the encoder coded, dequantized
        _, y_hat = rate_model.decompress_latent(data)
        assert torch.equal(y_hat, expected)
        _, rows = rate_model.decompress_latent(data, by_rows=True)
        assert torch.equal(rows.window(slice(0, y_hat.shape[-2]), slice(None)), y_hat)
        sizes.append(len(data))
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1] / 3


def test_the_rate_changes_only_what_follows_the_hyperprior(rate_model: HiFiC, photo: torch.Tensor) -> None:
    low, high = unpack(rate_model.compress(photo, rate=0.0)), unpack(rate_model.compress(photo, rate=1.0))
    assert low.z_stream == high.z_stream and low.y_stream != high.y_stream


def test_the_rate_section_is_required_and_refused_where_it_does_not_belong(
    rate_model: HiFiC, photo: torch.Tensor
) -> None:
    data = unpack(rate_model.compress(photo, rate=0.4))
    header = dataclasses.replace(data.header, version=2, sections_length=0)
    bare = pack(header, data.z_stream, data.y_stream)
    with pytest.raises(BitstreamError, match="no rate section"):
        rate_model.decompress(bare)
    fixed = HiFiC(ARCH_PRESETS["tiny"]).eval()
    fixed.update()
    with pytest.raises(BitstreamError, match=f"'{RATE_SECTION}' section, which this hific model does not read"):
        fixed.decompress(pack(data.header, data.z_stream, data.y_stream, data.sections))
    bad = pack(data.header, data.z_stream, data.y_stream, {RATE_SECTION: b"\x00\x00\x00"})
    with pytest.raises(BitstreamError, match="rate section holds 3 bytes"):
        rate_model.decompress(bad)


def test_rate_options_are_checked_before_anything_runs() -> None:
    capability = RateRange(anchors=3)
    assert rate_request(None, None, None, None) is None
    assert rate_request(capability, None, None, None).steps == round(0.5 * RATE_STEPS)
    with pytest.raises(SettingError, match=r"one rate .* drop rate"):
        rate_request(None, 0.5, None, None)
    with pytest.raises(SettingError, match="not rate and target_bpp"):
        rate_request(capability, 0.5, 0.3, None)
    with pytest.raises(SettingError, match=r"outside 0\.\.1"):
        rate_request(capability, 1.5, None, None)
    with pytest.raises(SettingError, match="target_bpp must be a positive"):
        rate_request(capability, None, -1.0, None)
    with pytest.raises(SettingError, match="max_bytes must be a positive whole"):
        rate_request(capability, None, None, 0.5)
    with pytest.raises(SettingError, match="max_error adds a residual on top of the file"):
        rate_request(capability, target_bpp=0.3, max_error=2)
    assert rate_request(capability, rate=0.25, max_error=2).steps == round(0.25 * RATE_STEPS)


def test_a_fixed_rate_model_refuses_a_rate(photo: torch.Tensor) -> None:
    fixed = HiFiC(ARCH_PRESETS["tiny"]).eval()
    fixed.update()
    for option in ({"rate": 0.5}, {"target_bpp": 0.3}, {"max_bytes": 1000}):
        with pytest.raises(SettingError, match="one rate"):
            fixed.compress(photo, **option)
    with pytest.raises(ValueError, match="one rate"):
        fixed(photo[None], rate=0.5)


def test_rate_and_realism_combine_in_one_model(photo: torch.Tensor) -> None:
    torch.manual_seed(0)
    arch = dataclasses.replace(TINY_RATE, realism_conditioning=True, realism_width=8)
    model = HiFiC(arch).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, FiLMChannelNorm2d):  # random, as a trained model's (they start at zero)
                module.film.weight.normal_(0.0, 0.3)
    spread(model)
    capabilities = model.capabilities
    assert capabilities.rate is not None and capabilities.realism is not None
    low, high = model.compress(photo, rate=0.0), model.compress(photo, rate=1.0)
    assert len(low) < len(high)
    assert not torch.equal(model.decompress(high, beta=0.0), model.decompress(high, beta=capabilities.realism.beta_max))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_file_decodes_on_cuda_to_the_cpu_latent(rate_model: HiFiC, photo: torch.Tensor) -> None:
    data = rate_model.compress(photo, rate=0.37)
    _, cpu = rate_model.decompress_latent(data)
    gpu_model = rate_model.to("cuda")
    _, gpu = gpu_model.decompress_latent(data)
    assert torch.equal(gpu.cpu(), cpu)
    assert gpu_model.compress(photo.cuda(), rate=0.37) == data


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_searches_on_cuda_choose_the_cpu_files(rate_model: HiFiC, photo: torch.Tensor) -> None:
    pixels = photo.shape[-1] * photo.shape[-2]
    low, high = (len(rate_model.compress(photo, rate=r)) for r in (0.0, 1.0))
    target, budget = 8 * (low * high) ** 0.5 / pixels, (low + high) // 2
    on_cpu = [rate_model.compress(photo, target_bpp=target), rate_model.compress(photo, max_bytes=budget)]
    _, cpu_latent = rate_model.decompress_latent(on_cpu[0])
    gpu_model = rate_model.to("cuda")
    on_gpu = [gpu_model.compress(photo.cuda(), target_bpp=target), gpu_model.compress(photo.cuda(), max_bytes=budget)]
    assert on_gpu == on_cpu and [d.rate for d in on_gpu] == [d.rate for d in on_cpu]
    assert torch.equal(gpu_model.decompress_latent(on_cpu[0])[1].cpu(), cpu_latent)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_at_drawn_anchors_runs_on_cuda(photo: torch.Tensor) -> None:
    torch.manual_seed(0)
    model = HiFiC(TINY_RATE).cuda().train()
    out = model(photo[None].expand(4, -1, -1, -1).cuda())
    assert out.rate.device.type == "cuda" and set(out.rate.tolist()) <= {0.0, 0.5, 1.0}
    (out.bpp + (out.x_hat - photo.cuda()).square().mean()).backward()
    grad = model.rate_gains.log_gain.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
