"""The latent path in bands of rows: the same integers, the same file, as the whole-image computation."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from hific_lit import HiFiC
from hific_lit.entropy import coder
from hific_lit.entropy.tables import scale_table
from hific_lit.models.hific import latent_bands as bands


@pytest.fixture(scope="module")
def model(seeded_tiny: Callable[[int], HiFiC]) -> HiFiC:
    return seeded_tiny(0)


def _z_hat(model: HiFiC, rows: int, cols: int) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.round(torch.randn(1, model.arch.hyper_filters, rows, cols) * 4) + 0.25


@pytest.mark.parametrize("z_size", [(9, 5), (1, 7)])
def test_bands_of_h_s_equal_the_whole_image_exactly(model: HiFiC, z_size: tuple[int, int]) -> None:
    z_hat = _z_hat(model, *z_size)
    mu, sigma = model.hyper_synthesis_exact(z_hat)
    one_row = model.arch.latent_channels * z_size[1] * 16  # one z row per band: the most bands, every halo used
    got = list(bands.hyper_bands(model, z_hat, band_elements=one_row))
    assert len(got) == z_size[0]
    assert [(r0, r1) for r0, r1, _, _ in got] == [(4 * i, 4 * i + 4) for i in range(z_size[0])]
    assert torch.equal(torch.cat([m for _, _, m, _ in got], dim=2), mu)
    assert torch.equal(torch.cat([s for _, _, _, s in got], dim=2), sigma)


def test_a_halo_too_short_would_change_the_integers(model: HiFiC, monkeypatch: pytest.MonkeyPatch) -> None:
    """The negative control: the halo that Stage computes is needed (without it, bands differ)."""
    z_hat = _z_hat(model, 9, 5)
    mu, _ = model.hyper_synthesis_exact(z_hat)
    monkeypatch.setattr(bands, "_halo", lambda m: (0, 0, 4))
    one_row = model.arch.latent_channels * 5 * 16
    banded = torch.cat([m for _, _, m, _ in bands.hyper_bands(model, z_hat, band_elements=one_row)], dim=2)
    assert not torch.equal(banded, mu)


def test_files_do_not_depend_on_the_band_size(model: HiFiC, monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.rand(1, 3, 160, 96)
    whole = model.compress(x)
    monkeypatch.setattr(bands, "BAND_ELEMENTS", 1)  # one z row per band
    banded = model.compress(x)
    assert banded == whole and abs(banded.estimated_bits - whole.estimated_bits) < 1e-6 * whole.estimated_bits
    y_hat = model.decompress_latent(banded)[1]
    monkeypatch.setattr(bands, "BAND_ELEMENTS", 1 << 22)
    assert torch.equal(model.decompress_latent(whole)[1], y_hat)
    z_hat = model.entropy_bottleneck.dequantize(model.entropy_bottleneck.symbols(model.h_a(model.analysis(x))))
    mu, _ = model.hyper_synthesis_exact(z_hat)
    assert torch.equal(y_hat, (torch.round(model.analysis(x).double() - mu) + mu).float())


def test_symbols_are_decoded_narrow_and_widen_when_a_value_needs_it(model: HiFiC) -> None:
    tables = model.conditional.tables
    indexes = torch.full((1, 2, 3, 4), len(scale_table()) // 2, dtype=torch.uint8)
    small = torch.arange(24).view(1, 2, 3, 4) - 12
    decoded = model.conditional.decompress_symbols(model.conditional.compress_symbols(small.int(), indexes), indexes)
    assert decoded.dtype == torch.int16 and torch.equal(decoded.long(), small)
    huge = small.clone()
    huge[0, 1, 2, 3] = 3 << 40  # an escape far beyond int16
    stream = coder.encode_stream(tables, huge, indexes)
    decoded = model.conditional.decompress_symbols(stream, indexes)
    assert decoded.dtype == torch.int64 and torch.equal(decoded, huge)


def test_symbols_are_held_narrow_and_widen_band_by_band() -> None:
    out = torch.zeros(1, 1, 3, 2, dtype=torch.int16)
    out = bands._store(out, slice(0, 1), torch.tensor([[[[5, -7]]]]))
    assert out.dtype == torch.int16
    out = bands._store(out, slice(1, 2), torch.tensor([[[[40_000, 1]]]]))
    assert out.dtype == torch.int32
    out = bands._store(out, slice(2, 3), torch.tensor([[[[-(3 << 40), 2]]]]))
    assert out.dtype == torch.int64
    assert out.flatten().tolist() == [5, -7, 40_000, 1, -(3 << 40), 2]


def test_h_a_in_tiles_gives_the_hyperlatent_of_the_whole_latent(model: HiFiC, monkeypatch: pytest.MonkeyPatch) -> None:
    from hific_lit.tiling import plan_tiles

    torch.manual_seed(2)
    y = torch.randn(1, model.arch.latent_channels, 40, 24) * 3
    monkeypatch.setattr(bands, "HYPER_ANALYSIS_MEMORY", 1 << 15)
    stage = bands.Stage.of("h_a", model.h_a, model.h_a.net)
    assert plan_tiles(stage, y.shape, y.dtype, bands.HYPER_ANALYSIS_MEMORY).count > 1
    with torch.no_grad():
        torch.testing.assert_close(bands.hyper_analysis(model, y), model.h_a(y), atol=1e-5, rtol=1e-5)


def test_decompress_hands_g_s_y_hat_in_chunks_let_go_once_used(model: HiFiC, monkeypatch: pytest.MonkeyPatch) -> None:
    from hific_lit.nn.padding import crop

    data = model.compress(torch.rand(1, 3, 320, 96))
    y_hat = model.decompress_latent(data)[1]
    expected = crop(model.synthesis(y_hat, uint8=True), 320, 96)
    monkeypatch.setattr(bands, "BAND_ELEMENTS", 1)  # one z row (4 latent rows) per band
    monkeypatch.setattr(bands, "Y_HAT_CHUNK_BYTES", 1)  # one band per chunk
    _, rows = model.decompress_latent(data, by_rows=True)
    assert rows.shape == y_hat.shape and rows.dtype == y_hat.dtype
    assert torch.equal(rows.window(slice(0, 12), slice(0, 8)), y_hat[..., :12, :])
    assert [(b0, b1) for b0, b1, _ in rows._held] == [(0, 4), (4, 8), (8, 12)]
    assert torch.equal(rows.window(slice(14, 20), slice(1, 3)), y_hat[..., 14:20, 1:3])
    assert [(b0, b1) for b0, b1, _ in rows._held] == [(14, 16), (16, 20)], "chunks passed are let go"
    assert torch.equal(model.decompress(data, uint8=True), expected)
    assert torch.equal(
        model.decompress(data, 2**20, uint8=True), crop(model.synthesis(y_hat, 2**20, uint8=True), 320, 96)
    )
