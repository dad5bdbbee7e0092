"""Coding tables, the torchac coder with escape codes, the entropy models' coding, and HiFiC.compress / decompress."""

from __future__ import annotations

import pytest
import torch

from hific_lit import HiFiC
from hific_lit.entropy import FactorizedPrior, GaussianConditional, LogisticConditional, coder
from hific_lit.entropy.coder import StreamReader, StreamWriter, plan_runs
from hific_lit.entropy.tables import TOTAL, CodingTables, quantize_pmfs, scale_table
from hific_lit.errors import BitstreamError, CheckpointError
from hific_lit.models.hific.format_v1 import scale_indexes
from hific_lit.nn.padding import pad_to_multiple


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


def _gaussian_tables() -> CodingTables:
    conditional = GaussianConditional()
    conditional.update()
    return conditional.tables


@pytest.mark.parametrize(("kind", "radius_per_scale"), [(GaussianConditional, 6.1), (LogisticConditional, 21.4)])
def test_conditional_tables_cover_the_scale_table_with_positive_masses(kind: type, radius_per_scale: float) -> None:
    conditional = kind()
    assert conditional.update() and not conditional.update()
    tables = conditional.tables
    assert tables.cdf.shape[0] == 64 and tables.cdf.dtype == torch.int16
    assert tables.scales[0].item() == pytest.approx(0.11) and tables.scales[-1].item() == pytest.approx(256.0)
    radius = -tables.offset
    assert torch.all(tables.length == 2 * radius + 2)
    assert torch.all(radius[1:] >= radius[:-1])
    assert radius[40].item() == pytest.approx(radius_per_scale * tables.scales[40].item(), rel=0.02)
    for masses in _masses(tables):
        assert masses.min() >= 1 and masses.sum() >= TOTAL


@pytest.mark.parametrize("indexes", [scale_indexes, lambda s, _: _conditional().indexes(s)])
def test_scale_indexes_pick_the_nearest_table_scale_in_log_scale(indexes) -> None:
    scales = scale_table().float()
    between = torch.sqrt(scales[:-1] * scales[1:].double()).float()
    edge_cases = torch.tensor([0.01, -1.0, float("nan"), 1e4, float("inf")])
    idx = indexes(torch.cat([scales, between * 0.99, between * 1.01, edge_cases]), scales)
    assert torch.equal(idx[:64], torch.arange(64))
    assert torch.equal(idx[64:127], torch.arange(63))
    assert torch.equal(idx[127:190], torch.arange(1, 64))
    assert idx[-5:].tolist() == [0, 0, 0, 63, 63]


def _conditional() -> GaussianConditional:
    conditional = GaussianConditional()
    conditional.update()
    return conditional


def test_integer_thresholds_split_exactly_at_the_geometric_means() -> None:
    conditional = _conditional()
    thresholds = conditional.tables.thresholds
    scales = conditional.tables.scales.double()
    assert torch.equal(thresholds, torch.ceil(torch.sqrt(scales[:-1] * scales[1:]) * 2**16).long())
    at = thresholds.double() / 2**16
    assert torch.equal(conditional.indexes(at), torch.arange(1, 64))
    assert torch.equal(conditional.indexes(at - 2**-16), torch.arange(63))


def test_quantized_pmfs_keep_every_symbol_and_sum_to_the_total() -> None:
    pmf = torch.tensor([[0.5, 0.5 - 1e-12, 1e-12, 0.0], [1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    freq = quantize_pmfs(pmf, torch.tensor([3, 4]))
    assert freq.sum(1).tolist() == [TOTAL, TOTAL]
    assert freq[0, :3].min() == 1 and freq[0, 3] == 0 and freq[1].min() == 1
    assert abs(freq[0, 0] - freq[0, 1]) <= 1


def test_factorized_tables_follow_the_learned_quantiles(model: HiFiC) -> None:
    tables = model.entropy_bottleneck.tables
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
    tables = _gaussian_tables()
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
    tables = _gaussian_tables()
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


def test_entropy_models_code_their_own_streams() -> None:
    prior = FactorizedPrior(4)
    prior.update()
    z = torch.randn(1, 4, 3, 5) * 4
    z_hat = prior.decompress(prior.compress(z), (3, 5))
    assert torch.equal(z_hat, prior.dequantize(prior.symbols(z)))
    for conditional in (GaussianConditional(), LogisticConditional()):
        conditional.update()
        y, means = torch.randn(1, 4, 6, 6) * 3, torch.randn(1, 4, 6, 6).double()
        indexes = conditional.indexes(torch.rand(1, 4, 6, 6) * 5)
        stream = conditional.compress(y, indexes, means)
        y_hat = conditional.decompress(stream, indexes, means)
        assert torch.equal(y_hat, (torch.round(y.double() - means) + means).float())
        with pytest.raises(BitstreamError, match="latent stream"):
            conditional.decompress(stream, (indexes + 1).clamp(max=63), means)


def test_compress_without_tables_says_to_call_update() -> None:
    with pytest.raises(CheckpointError, match=r"update\(\)"):
        HiFiC.from_preset("tiny").compress(torch.rand(3, 64, 64))


def _encoder_y_hat(model: HiFiC, x: torch.Tensor) -> torch.Tensor:
    """y_hat as the encoder sees it, through the integer h_s."""
    with torch.no_grad():
        y = model.analysis(pad_to_multiple(x))
        prior = model.entropy_bottleneck
        mu, _ = model.hyper_synthesis_exact(prior.dequantize(prior.symbols(model.h_a(y))))
    return model.conditional.dequantize(model.conditional.symbols(y, mu), mu)


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (64, 64), (70, 130)])
def test_round_trip_is_exact_and_close_to_forward(model: HiFiC, size: tuple[int, int]) -> None:
    x = torch.rand(1, 3, *size)
    data = model.compress(x)
    header, y_hat = model.decompress_latent(data)
    assert (header.height, header.width, header.version) == (*size, 2)
    assert torch.equal(y_hat, _encoder_y_hat(model, x))
    with torch.no_grad():
        out = model(x)
    assert (y_hat - out.y_hat).abs().max() < 1.0 + 1e-3
    assert (y_hat - out.y_hat).abs().median() < 1e-3
    assert data.estimated_bits == pytest.approx(out.bpp_rounded.item() * size[0] * size[1], rel=0.05)


def test_many_chunks_through_the_model(model: HiFiC, monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.rand(1, 3, 130, 200)
    whole = model.compress(x)
    y_hat = model.decompress_latent(whole)[1]
    monkeypatch.setattr(coder, "CHUNK_SYMBOLS", 300)
    chunked = model.compress(x)
    assert chunked != whole
    assert torch.equal(model.decompress_latent(chunked)[1], y_hat)


def test_forced_large_latents_decode_exactly(model: HiFiC) -> None:
    y = torch.randn(1, model.arch.latent_channels, 8, 8)
    y.view(-1)[:8] = torch.tensor([1.0, -1.0, 100.0, -100.0, 1e6, -1e6, 3e7, -3e7])
    _, y_hat = model.decompress_latent(model.compress_latent(y, 128, 128))
    assert torch.all((y_hat - y).abs() <= 0.5 + 1e-6 * y.abs())


def test_forced_large_hyperlatents_decode_exactly(model: HiFiC) -> None:
    n = model.arch.hyper_filters * 16
    indexes = torch.arange(n) // 16
    symbols = torch.randint(-3, 4, (n,))
    symbols[:6] = torch.tensor([1, -1, 100, -100, 10**6, -(10**6)])
    assert torch.equal(_round_trip(symbols, indexes, model.entropy_bottleneck.tables), symbols)


def test_tables_travel_in_the_state_dict(model: HiFiC) -> None:
    data = model.compress(torch.rand(3, 64, 96))
    fresh = HiFiC.from_preset("tiny")
    assert not fresh.coding_ready
    fresh.load_state_dict(model.state_dict())
    assert fresh.coding_ready
    assert torch.equal(fresh.conditional.tables.cdf, model.conditional.tables.cdf)
    assert torch.equal(fresh.decompress(data), model.decompress(data))


def test_batch_coding_equals_one_by_one(model: HiFiC) -> None:
    x = torch.rand(3, 3, 64, 64)
    batch = model.compress_batch(x)
    assert batch == [model.compress(x[i]) for i in range(3)]
    decoded = model.decompress_batch(batch)
    assert all(torch.equal(d, model.decompress(b)) for d, b in zip(decoded, batch, strict=True))


def test_fingerprint_tracks_decoding_weights_but_not_dtype(model: HiFiC) -> None:
    before = model.fingerprint()
    with torch.no_grad():
        next(model.g_a.parameters()).add_(1.0)
        next(model.h_s_sigma.parameters()).add_(1.0)
    assert model.fingerprint() == before, "g_a and the float h_s do not enter"
    bf16 = HiFiC.from_preset("tiny")
    bf16.load_state_dict(model.state_dict())
    bf16.g_s.to(torch.bfloat16)
    assert bf16.fingerprint() == before
    assert bf16.double().fingerprint() == before
    model.update(force=True)
    assert model.fingerprint() != before, "rebuilt from the changed h_s"


def test_fingerprint_is_hashed_once_per_weights_in_every_precision(model: HiFiC, monkeypatch) -> None:
    """Every compress and decompress asks for it: a float32 model must not re-hash g_s each time."""
    import hific_lit.models.fingerprint

    hashed = []
    blake2b = hific_lit.models.fingerprint.hashlib.blake2b
    monkeypatch.setattr(hific_lit.models.fingerprint.hashlib, "blake2b", lambda **kw: hashed.append(1) or blake2b(**kw))
    for precision in (torch.float32, torch.bfloat16):
        model.g_s.to(precision)
        first = model.fingerprint()
        assert model.fingerprint() == first
        with torch.no_grad():
            next(model.g_s.parameters()).add_(1.0)
        assert model.fingerprint() != first, "a changed g_s weight is seen"
    assert len(hashed) == 4
    model.g_s.float()


def test_logistic_models_code_and_refuse_gaussian_files(model: HiFiC) -> None:
    from hific_lit.models.hific.arch import ArchConfig, arch_preset

    torch.manual_seed(0)
    logistic = HiFiC(ArchConfig(**{**arch_preset("tiny").to_dict(), "latent_likelihood": "logistic"})).eval()
    logistic.load_state_dict(model.state_dict(), strict=False)
    logistic.update(force=True)
    x = torch.rand(3, 40, 72)
    data = logistic.compress(x)
    assert logistic.decompress_latent(data)[0].likelihood == 1
    assert logistic.decompress(data).shape == (1, 3, 40, 72)
    with pytest.raises(BitstreamError, match="another model"):
        model.decompress(data)


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
        model.compress_latent(y, 64, 64)


@pytest.mark.slow
def test_a_side_longer_than_65535_round_trips(model: HiFiC) -> None:
    x = torch.rand(1, 3, 1, 70_000)
    data = model.compress(x)
    header, y_hat = model.decompress_latent(data)
    assert (header.height, header.width) == (1, 70_000)
    assert torch.equal(y_hat, _encoder_y_hat(model, x))
    assert model.decompress(data).shape == x.shape
