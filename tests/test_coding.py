"""Coding tables, the torchac coder with escape codes, and HiFiC.compress / decompress."""

from __future__ import annotations

import pytest
import torch

from hific_lit import HiFiC
from hific_lit.coding import decode_latent, encode_image, encode_latent, model_fingerprint
from hific_lit.entropy import coder
from hific_lit.entropy.coder import StreamReader, StreamWriter, plan_runs
from hific_lit.entropy.tables import (
    TOTAL,
    CodingTables,
    factorized_tables,
    gaussian_tables,
    quantize_pmfs,
    scale_indexes,
    scale_table,
)
from hific_lit.errors import CheckpointError


@pytest.fixture
def model() -> HiFiC:
    m = HiFiC.from_preset("tiny").eval()
    m.update()
    return m


def _masses(tables: CodingTables) -> list[torch.Tensor]:
    """Each row's symbol masses, read the way torchac reads the rows."""
    rows = tables.cdf.long() & 0xFFFF
    out = []
    for k, length in enumerate(tables.length.tolist()):
        ends = torch.cat([rows[k, 1:length], torch.tensor([TOTAL if length + 1 < rows.shape[1] else 1 << 16])])
        out.append(ends - rows[k, :length])
    return out


def test_gaussian_tables_cover_the_scale_table_with_positive_masses() -> None:
    tables = CodingTables()
    tables.assign(*gaussian_tables())
    assert tables.cdf.shape[0] == 64 and tables.cdf.dtype == torch.int16
    assert tables.scales[0].item() == pytest.approx(0.11) and tables.scales[-1].item() == pytest.approx(256.0)
    radius = -tables.offset
    assert torch.all(tables.length == 2 * radius + 2)
    assert torch.all(radius[1:] >= radius[:-1]) and radius[-1] >= 6 * 256
    for masses in _masses(tables):
        assert masses.min() >= 1 and masses.sum() >= TOTAL


def test_scale_indexes_pick_the_nearest_table_scale_in_log_scale() -> None:
    scales = scale_table().float()
    between = torch.sqrt(scales[:-1] * scales[1:])
    edge_cases = torch.tensor([0.01, -1.0, float("nan"), 1e4, float("inf")])
    idx = scale_indexes(torch.cat([scales, between * 0.99, between * 1.01, edge_cases]), scales)
    assert torch.equal(idx[:64], torch.arange(64))
    assert torch.equal(idx[64:127], torch.arange(63))
    assert torch.equal(idx[127:190], torch.arange(1, 64))
    assert idx[-5:].tolist() == [0, 0, 0, 63, 63]


def test_quantized_pmfs_keep_every_symbol_and_sum_to_the_total() -> None:
    pmf = torch.tensor([[0.5, 0.5 - 1e-12, 1e-12, 0.0], [1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    freq = quantize_pmfs(pmf, torch.tensor([3, 4]))
    assert freq.sum(1).tolist() == [TOTAL, TOTAL]
    assert freq[0, :3].min() == 1 and freq[0, 3] == 0 and freq[1].min() == 1
    assert abs(freq[0, 0] - freq[0, 1]) <= 1


def test_factorized_tables_follow_the_learned_quantiles(model: HiFiC) -> None:
    tables = CodingTables()
    tables.assign(*factorized_tables(model.entropy_bottleneck))
    q = model.entropy_bottleneck.quantiles.detach()[:, 0]
    below = torch.ceil(q[:, 1] - q[:, 0]).long()
    above = torch.ceil(q[:, 2] - q[:, 1]).long()
    assert torch.equal(tables.offset, -below) and torch.equal(tables.length, below + above + 2)
    assert all(m.min() >= 1 for m in _masses(tables))


def _round_trip(symbols: torch.Tensor, indexes: torch.Tensor, tables: CodingTables) -> torch.Tensor:
    writer = StreamWriter(tables)
    bounds = list(coder.chunk_bounds(symbols.numel()))
    for start, end in bounds:
        writer.add_chunk(symbols[start:end], indexes[start:end])
    reader = StreamReader(writer.getvalue(), tables, "test")
    decoded = torch.cat([reader.read_chunk(indexes[start:end]) for start, end in bounds])
    reader.finish()
    return decoded


@pytest.mark.parametrize("values", [[1, -1, 2, -2], [100, -100], [10**6, -(10**6)], [2**40, -(2**40) - 7]])
def test_escaped_symbols_decode_exactly(values: list[int]) -> None:
    tables = CodingTables()
    tables.assign(*gaussian_tables())
    n = 5000
    indexes = torch.randint(0, 64, (n,))
    symbols = torch.round(torch.randn(n) * scale_table().float()[indexes]).long()
    forced = torch.tensor(values * 10)
    symbols[: forced.numel()] = forced
    indexes[: forced.numel()] = 0
    assert torch.equal(_round_trip(symbols, indexes, tables), symbols)


def test_small_chunks_and_row_budget_still_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coder, "CHUNK_SYMBOLS", 777)
    monkeypatch.setattr(coder, "ROW_BYTES_BUDGET", 20_000)
    tables = CodingTables()
    tables.assign(*gaussian_tables())
    indexes = torch.randint(0, 64, (5000,))
    symbols = torch.round(torch.randn(5000) * scale_table().float()[indexes] * 2).long()
    assert torch.equal(_round_trip(symbols, indexes, tables), symbols)


def test_runs_respect_the_row_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coder, "ROW_BYTES_BUDGET", 10_000)
    widths = torch.sort(torch.randint(4, 3000, (20_000,))).values.numpy()
    runs = plan_runs(widths)
    assert runs[0][0] == 0 and runs[-1][1] == widths.size
    for (start, end, width), (next_start, _, _) in zip(runs, [*runs[1:], (widths.size, 0, 0)], strict=True):
        assert end == next_start and width == widths[end - 1]
        assert (end - start) * width * 2 <= 10_000 or end - start == 1


def test_compress_without_tables_says_to_call_update() -> None:
    with pytest.raises(CheckpointError, match=r"update\(\)"):
        HiFiC.from_preset("tiny").compress(torch.rand(3, 64, 64))


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (64, 64), (70, 130)])
def test_round_trip_is_exact_and_matches_forward(model: HiFiC, size: tuple[int, int]) -> None:
    x = torch.rand(1, 3, *size)
    encoded = encode_image(model, x)
    header, y_hat = decode_latent(model, encoded.data)
    assert (header.height, header.width) == size
    assert torch.equal(y_hat, encoded.y_hat)
    with torch.no_grad():
        out = model(x)
    assert torch.equal(encoded.y_hat, out.y_hat)
    assert torch.equal(model.decompress(encoded.data), out.x_hat.clamp(0, 1))
    assert encoded.estimated_bits == pytest.approx(out.bpp_rounded.item() * size[0] * size[1], rel=1e-4)


def test_many_chunks_through_the_model(model: HiFiC, monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.rand(1, 3, 130, 200)
    whole = encode_image(model, x)
    monkeypatch.setattr(coder, "CHUNK_SYMBOLS", 300)
    chunked = encode_image(model, x)
    assert chunked.data != whole.data and torch.equal(chunked.y_hat, whole.y_hat)
    assert torch.equal(decode_latent(model, chunked.data)[1], whole.y_hat)


def test_forced_large_latents_decode_exactly(model: HiFiC) -> None:
    y = torch.randn(1, model.arch.latent_channels, 8, 8)
    y.view(-1)[:8] = torch.tensor([1.0, -1.0, 100.0, -100.0, 1e6, -1e6, 3e7, -3e7])
    encoded = encode_latent(model, y, 128, 128)
    _, y_hat = decode_latent(model, encoded.data)
    assert torch.equal(y_hat, encoded.y_hat)
    assert torch.all((y_hat - y).abs() <= 0.5 + 1e-6 * y.abs())


def test_forced_large_hyperlatents_decode_exactly(model: HiFiC) -> None:
    n = model.arch.hyper_filters * 16
    indexes = torch.arange(n) // 16
    symbols = torch.randint(-3, 4, (n,))
    symbols[:6] = torch.tensor([1, -1, 100, -100, 10**6, -(10**6)])
    assert torch.equal(_round_trip(symbols, indexes, model.z_tables), symbols)


def test_tables_travel_in_the_state_dict(model: HiFiC) -> None:
    data = model.compress(torch.rand(3, 64, 96))
    fresh = HiFiC.from_preset("tiny")
    assert not fresh.y_tables.built
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh.y_tables.cdf, model.y_tables.cdf)
    assert torch.equal(fresh.decompress(data), model.decompress(data))


def test_batch_coding_equals_one_by_one(model: HiFiC) -> None:
    x = torch.rand(3, 3, 64, 64)
    batch = model.compress_batch(x)
    assert batch == [model.compress(x[i]) for i in range(3)]
    decoded = model.decompress_batch(batch)
    assert all(torch.equal(d, model.decompress(b)) for d, b in zip(decoded, batch, strict=True))


def test_fingerprint_tracks_decoding_weights_but_not_bf16_rounding(model: HiFiC) -> None:
    before = model_fingerprint(model)
    with torch.no_grad():
        next(model.g_a.parameters()).add_(1.0)
    assert model_fingerprint(model) == before
    bf16 = HiFiC.from_preset("tiny")
    bf16.load_state_dict(model.state_dict())
    bf16.g_s.to(torch.bfloat16)
    assert model_fingerprint(bf16) == before
    with torch.no_grad():
        next(model.h_s_sigma.parameters()).mul_(1.0001)
    assert model_fingerprint(model) != before


def test_bad_images_are_refused(model: HiFiC) -> None:
    with pytest.raises(ValueError, match="shape"):
        model.compress(torch.rand(4, 8, 8))
    with pytest.raises(ValueError, match="NaN"):
        model.compress(torch.full((3, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="batch"):
        model.compress(torch.rand(2, 3, 8, 8))
    y = torch.zeros(1, model.arch.latent_channels, 4, 4)
    y[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="diverged"):
        encode_latent(model, y, 64, 64)


@pytest.mark.slow
def test_a_side_longer_than_65535_round_trips(model: HiFiC) -> None:
    x = torch.rand(1, 3, 1, 70_000)
    encoded = encode_image(model, x)
    header, y_hat = decode_latent(model, encoded.data)
    assert (header.height, header.width) == (1, 70_000)
    assert torch.equal(y_hat, encoded.y_hat)
    assert model.decompress(encoded.data).shape == x.shape
