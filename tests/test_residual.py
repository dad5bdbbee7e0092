"""The error bound's residual: quantizer, tables, coder round trips, the library codecs it is measured against."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from hific_lit.entropy import residual as residual_module
from hific_lit.entropy.residual import (
    ResidualCoder,
    coder_from_payload,
    coder_payload,
    dequantize_residual,
    from_phases,
    phase_order,
    quantize_residual,
    residual_step,
    to_phases,
)
from hific_lit.entropy.residual_section import (
    ResidualSection,
    XHatMismatchError,
    check_x_hat,
    pack_section,
    unpack_section,
    x_hat_checksum,
)
from hific_lit.entropy.residual_tables import (
    MEAN_BUCKETS,
    UNITS,
    bucket_centres,
    build_tables,
    rows,
    scale_grid,
)
from hific_lit.errors import BitstreamError, CheckpointError
from hific_lit.eval.lossless import bounded_encodings, library_codecs


def jpeg_pair(height: int, width: int, quality: int = 15) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, x_hat) as (3, H, W) uint8: a crop of the astronaut and its JPEG decoding."""
    x = np.ascontiguousarray(data.astronaut()[100 : 100 + height, 150 : 150 + width])
    out = io.BytesIO()
    Image.fromarray(x).save(out, "JPEG", quality=quality)
    x_hat = np.array(Image.open(out).convert("RGB"))
    as_tensor = lambda a: torch.from_numpy(a).permute(2, 0, 1).contiguous()  # noqa: E731
    return as_tensor(x), as_tensor(x_hat)


@pytest.fixture(scope="module")
def coder() -> ResidualCoder:
    torch.manual_seed(3)
    coder = ResidualCoder(width=8, grid=2).eval()
    coder.update()
    return coder


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4, 7, 127])
def test_quantizer_keeps_every_value_within_k(k: int) -> None:
    x = torch.arange(256, dtype=torch.uint8).repeat_interleave(256)
    x_hat = torch.arange(256, dtype=torch.uint8).repeat(256)
    q = quantize_residual(x, x_hat, k)
    back = dequantize_residual(x_hat, q, k)
    assert int((back.int() - x.int()).abs().max()) == k
    if k == 0:
        assert torch.equal(q.int(), x.int() - x_hat.int())


@pytest.mark.parametrize("bad", [-1, 128, 1.0, True, "2"])
def test_max_error_must_be_a_small_integer(bad: object) -> None:
    with pytest.raises(ValueError, match="maximum error"):
        residual_step(bad)


def test_tables_rows_are_the_discretized_logistic() -> None:
    cdf, length, offset, _, log_steps = build_tables()
    assert cdf.shape[0] == len(scale_grid()) * MEAN_BUCKETS
    # row of scale 20, bucket 2: p(v) = sigmoid((v + 1/2 - d) / s) - sigmoid((v - 1/2 - d) / s)
    row = 20 * MEAN_BUCKETS + 2
    starts = cdf[row, : length[row]].long() % (1 << 16)
    freq = torch.diff(torch.cat([starts, torch.tensor([1 << 16])])).double() / (1 << 16)
    v = torch.arange(int(length[row]) - 1, dtype=torch.float64) + int(offset[row])
    s, d = scale_grid()[20], bucket_centres()[2]
    pmf = torch.sigmoid((v + 0.5 - d) / s) - torch.sigmoid((v - 0.5 - d) / s)
    assert (freq[:-1] - pmf).abs().max() < 4e-4  # the tails get at least 1/2**16 each, the middle pays for it
    assert freq[-1] < 1e-4 and abs(float(pmf.sum()) - 1) < 1e-6
    assert log_steps[1] == round(np.log(3) * UNITS)


@pytest.mark.parametrize("step", [1, 3, 9])
def test_rows_pick_the_nearest_centre_and_the_fraction_bucket(step: int) -> None:
    _, _, _, log_thresholds, log_steps = build_tables()
    mean = torch.randint(-300 * UNITS, 300 * UNITS, (5000,))
    log_scale = torch.randint(-4 * UNITS, 5 * UNITS, (5000,))
    centre, row = rows(mean, log_scale, step, log_thresholds, int(log_steps[(step - 1) // 2]))
    m = mean.double() / UNITS / step
    assert torch.equal(centre, torch.floor(m + 0.5).long())
    assert torch.equal(row % MEAN_BUCKETS, torch.floor((m - centre + 0.5) * MEAN_BUCKETS).long())
    nearest = (torch.log(scale_grid())[None] - (log_scale.double() / UNITS - np.log(step))[:, None]).abs().argmin(1)
    assert (row // MEAN_BUCKETS - nearest).abs().max() <= 1
    assert (row // MEAN_BUCKETS == nearest).double().mean() > 0.999


def test_phase_order_is_coarse_to_fine() -> None:
    assert phase_order(2) == ((0, 0), (1, 1), (0, 1), (1, 0))
    order = phase_order(4)
    assert order[:4] == ((0, 0), (2, 2), (0, 2), (2, 0))
    assert set(order[4:8]) == {(1, 1), (1, 3), (3, 1), (3, 3)} and len(set(order)) == 16


@pytest.mark.parametrize("grid", [2, 4])
def test_phases_cover_every_pixel_once(grid: int) -> None:
    t = torch.arange(5 * 7).view(1, 1, 5, 7)
    phases = to_phases(t, grid)
    assert phases.shape == (1, grid * grid, 1, -(-5 // grid), -(-7 // grid))
    a, b = phase_order(grid)[1]
    assert torch.equal(phases[0, 1, 0, : len(range(a, 5, grid)), : len(range(b, 7, grid))], t[0, 0, a::grid, b::grid])
    assert torch.equal(from_phases(phases[0], 5, 7, grid), t[0])


@pytest.mark.parametrize("k", [0, 1, 4])
def test_round_trip_within_the_bound(coder: ResidualCoder, k: int) -> None:
    x, x_hat = jpeg_pair(37, 53)
    stream = coder.encode(x, x_hat, k)
    decoded = coder.decode(stream, x_hat, k)
    assert int((decoded.int() - x.int()).abs().max()) <= k
    assert torch.equal(decoded, dequantize_residual(x_hat, quantize_residual(x, x_hat, k), k))
    with torch.no_grad():
        estimate = float(coder.bits(x[None], x_hat[None], torch.tensor([k])))
    assert 8 * len(stream) < 1.06 * estimate + 8 * 64


def test_bands_give_the_same_outputs(coder: ResidualCoder, monkeypatch: pytest.MonkeyPatch) -> None:
    x, x_hat = jpeg_pair(40, 24)
    whole = coder.decode(coder.encode(x, x_hat, 1), x_hat, 1)
    monkeypatch.setattr(residual_module, "BAND_POSITIONS", 48)  # bands of 4 rows of 12 positions
    assert torch.equal(coder.decode(coder.encode(x, x_hat, 1), x_hat, 1), whole)
    monkeypatch.undo()
    with torch.no_grad():
        out = [
            coder._band_outputs(2, to_phases(x_hat[None], 2)[0], torch.zeros(4, 3, 20, 12, dtype=torch.int16), 3, b)
            for b in [(0, 20), (0, 7), (7, 13), (13, 20)]
        ]
    assert torch.equal(out[0], torch.cat(out[1:], 1))


def test_corrupt_streams_are_refused(coder: ResidualCoder) -> None:
    x, x_hat = jpeg_pair(32, 32)
    stream = bytearray(coder.encode(x, x_hat, 0))
    with pytest.raises(BitstreamError, match="residual"):
        coder.decode(bytes(stream[:-9]), x_hat, 0)
    stream[len(stream) // 2] ^= 0x40
    with pytest.raises(BitstreamError, match="residual"):
        coder.decode(bytes(stream), x_hat, 0)


def test_training_lowers_the_rate() -> None:
    torch.manual_seed(0)
    x, x_hat = jpeg_pair(32, 32)
    coder = ResidualCoder(width=8, grid=2)
    optimizer = torch.optim.Adam(coder.nets.parameters(), lr=1e-2)
    k = torch.tensor([0, 2])
    first = None
    for _ in range(15):
        loss = coder.bits(torch.stack([x, x]), torch.stack([x_hat, x_hat]), k).sum() / (2 * x.numel())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = first or loss.item()
    assert loss.item() < 0.8 * first


def test_stored_coder_comes_back_with_its_fingerprint(coder: ResidualCoder) -> None:
    loaded = coder_from_payload(coder_payload(coder), "model.ckpt")
    assert loaded.fingerprint() == coder.fingerprint() and loaded.grid == coder.grid
    x, x_hat = jpeg_pair(20, 30)
    assert torch.equal(
        loaded.decode(coder.encode(x, x_hat, 2), x_hat, 2), coder.decode(coder.encode(x, x_hat, 2), x_hat, 2)
    )
    with pytest.raises(CheckpointError, match=r"model\.ckpt: cannot load its residual coder"):
        coder_from_payload({"format": "something else"}, "model.ckpt")


@pytest.mark.parametrize("k", [0, 2])
def test_library_codecs_meet_the_bound(k: int) -> None:
    pixels = np.ascontiguousarray(data.astronaut()[:48, :64])
    found = bounded_encodings(pixels, k)
    names = {e.codec for e in found}
    assert {"png", "webp"} <= names
    assert all(e.measured_error <= k for e in found)
    lossless = [e for e in found if not next(c for c in library_codecs() if c.name == e.codec).near]
    assert all(e.measured_error == 0 for e in lossless)


def test_section_round_trip_and_x_hat_check() -> None:
    _, x_hat = jpeg_pair(20, 30)
    crc = x_hat_checksum(x_hat)
    section = pack_section(2, torch.bfloat16, torch.device("cpu"), b"12345678", crc, b"stream-bytes")
    parsed = unpack_section(section)
    assert parsed == ResidualSection(2, "bf16", "cpu", b"12345678", crc, b"stream-bytes")
    check_x_hat(parsed, x_hat)
    other = x_hat.clone()
    other[1, 7, 9] ^= 1
    with pytest.raises(XHatMismatchError, match="decode on cpu with --precision bf16"):
        check_x_hat(parsed, other)
    with pytest.raises(BitstreamError, match="residual section"):
        unpack_section(section[:10])
    with pytest.raises(BitstreamError, match="residual section"):
        unpack_section(bytes([200]) + section[1:])
