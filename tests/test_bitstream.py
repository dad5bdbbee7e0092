"""The .hfc container: layout, and one clear BitstreamError for every kind of malformed input."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from hific_lit import HiFiC
from hific_lit.errors import BitstreamError
from hific_lit.io.container import (
    HEADER_SIZE,
    HEADER_SIZES,
    MAGIC,
    SECTION_TAGS,
    Header,
    header_fields,
    pack,
    read_hfc,
    register_section,
    unpack,
    write_hfc,
)


@pytest.fixture(scope="module")
def model(seeded_tiny: Callable[[int], HiFiC]) -> HiFiC:
    return seeded_tiny(0)


@pytest.fixture(scope="module")
def data(model: HiFiC) -> bytes:
    torch.manual_seed(1)
    return model.compress(torch.rand(3, 70, 90))


def _with_valid_crcs(data: bytes) -> bytes:
    """Recompute the payload and header CRCs after tampering, so that only deeper checks can object."""
    head = bytearray(data[:HEADER_SIZE])
    struct.pack_into("<I", head, HEADER_SIZE - 8, zlib.crc32(data[HEADER_SIZE:]))
    struct.pack_into("<I", head, HEADER_SIZE - 4, zlib.crc32(bytes(head[: HEADER_SIZE - 4])))
    return bytes(head) + data[HEADER_SIZE:]


def test_headers_of_both_versions_round_trip_with_large_sizes() -> None:
    sizes = (b"\x01" * 8, 70_000, 123_456, (220, 4375, 7716), (320, 1094, 1929), 3, 5)
    for header in (Header(*sizes, version=2, likelihood=1), Header(*sizes, version=1, symbols_crc=0xDEADBEEF)):
        data = pack(header, b"zzz", b"yyyyy")
        assert data[:4] == MAGIC and len(data) == HEADER_SIZES[header.version] + 8
        assert unpack(data) == (header, b"zzz", b"yyyyy", {})
    assert HEADER_SIZES == {1: 62, 2: 60, 3: 64}


def test_sections_make_a_version_3_file_and_come_back_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SECTION_TAGS, 201, "first")
    monkeypatch.setitem(SECTION_TAGS, 202, "second")
    header = Header(b"\x02" * 8, 64, 64, (8, 4, 4), (8, 1, 1), 3, 5)
    data = pack(header, b"zzz", b"yyyyy", {"first": b"abc", "second": b""})
    assert struct.unpack_from("<H", data, 4)[0] == 3 and len(data) == 64 + 8 + (5 + 3) + 5
    unpacked = unpack(data)
    assert unpacked.header.version == 3 and unpacked.header.sections_length == 13
    assert (unpacked.z_stream, unpacked.y_stream, unpacked.sections) == (
        b"zzz",
        b"yyyyy",
        {"first": b"abc", "second": b""},
    )
    assert pack(header, b"zzz", b"yyyyy") == pack(header, b"zzz", b"yyyyy", {})  # no sections: version 2
    with pytest.raises(ValueError, match=r"unknown \.hfc sections"):
        pack(header, b"zzz", b"yyyyy", {"third": b""})
    monkeypatch.delitem(SECTION_TAGS, 202)
    with pytest.raises(BitstreamError, match="unknown tag 202"):
        unpack(data)
    with pytest.raises(BitstreamError, match="truncated"):
        unpack(data[:-1])
    with pytest.raises(BitstreamError, match="payload is corrupt"):
        unpack(data[:-1] + b"x")
    with pytest.raises(ValueError, match="clashes"):
        register_section(201, "other")


def test_layout_matches_the_documented_offsets(data: bytes) -> None:
    header, z, y, _ = unpack(data)
    assert struct.unpack_from("<H", data, 4)[0] == 2
    assert data[6:14] == header.fingerprint
    assert data[14:16] == b"\x00\x00"
    assert struct.unpack_from("<II", data, 16) == (70, 90)
    assert struct.unpack_from("<HII", data, 24) == header.y_shape
    assert struct.unpack_from("<HII", data, 34) == header.z_shape
    assert struct.unpack_from("<II", data, 44) == (len(z), len(y))
    assert struct.unpack_from("<I", data, 52)[0] == zlib.crc32(data[HEADER_SIZE:])
    assert struct.unpack_from("<I", data, 56)[0] == zlib.crc32(data[:56])
    assert struct.unpack_from("<I", z, len(z) - 4)[0] != 0, "each stream ends with its symbols' CRC32"
    assert header_fields(header)["likelihood"] == "gaussian" and "symbols_crc" not in header_fields(header)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: b"", "magic"),
        (lambda d: d[:3], "magic"),
        (lambda d: d[:5], "truncated"),
        (lambda d: d[:40], "truncated"),
        (lambda d: d[:-1], "truncated"),
        (lambda d: d + b"\0", "trailing"),
        (lambda d: b"PNG!" + d[4:], "magic"),
        (lambda d: d[:4] + struct.pack("<H", 9) + d[6:], "version 9"),
        (lambda d: d[:4] + struct.pack("<H", 0) + d[6:], "unknown .hfc format version 0"),
        (lambda d: d[:20] + bytes([d[20] ^ 1]) + d[21:], "header is corrupt"),
        (lambda d: d[:-3] + bytes([d[-3] ^ 0x10]) + d[-2:], "payload is corrupt"),
    ],
)
def test_malformed_files_raise_a_clear_error(model: HiFiC, data: bytes, mutate, message: str) -> None:
    with pytest.raises(BitstreamError, match=message):
        model.decompress(mutate(data))


def test_every_single_bit_flip_is_caught(model: HiFiC, data: bytes) -> None:
    for position in range(0, len(data), max(1, len(data) // 60)):
        for bit in (0, 5):
            flipped = bytearray(data)
            flipped[position] ^= 1 << bit
            with pytest.raises(BitstreamError):
                model.decompress(bytes(flipped))


def test_payload_damage_behind_valid_crcs_never_gives_garbage(model: HiFiC, data: bytes) -> None:
    expected = model.decompress(data)
    generator = torch.Generator().manual_seed(3)
    for _ in range(40):
        damaged = bytearray(data)
        position = int(torch.randint(HEADER_SIZE, len(data), (1,), generator=generator))
        damaged[position] ^= int(torch.randint(1, 256, (1,), generator=generator))
        try:
            decoded = model.decompress(_with_valid_crcs(bytes(damaged)))
        except BitstreamError:
            continue
        assert torch.equal(decoded, expected)


def test_a_file_from_another_model_is_refused(data: bytes) -> None:
    torch.manual_seed(99)
    other = HiFiC.from_preset("tiny").eval()
    other.update()
    with pytest.raises(BitstreamError, match="another model"):
        other.decompress(data)


def test_desync_is_detected_by_the_symbol_crc(model: HiFiC, data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    drifted = HiFiC.from_preset("tiny").eval()
    drifted.load_state_dict(model.state_dict())
    with torch.no_grad():
        net = drifted.h_s_sigma_int
        net.bias2.add_(torch.ones_like(net.shift2) << (net.shift2 + 17))  # sigma + 2
    monkeypatch.setattr(HiFiC, "fingerprint", lambda m: unpack(data)[0].fingerprint)
    with pytest.raises(BitstreamError, match=r"out of step|do not match"):
        drifted.decompress(data)


def test_another_likelihood_is_refused(model: HiFiC, data: bytes) -> None:
    tampered = bytearray(data)
    tampered[14] = 1
    with pytest.raises(BitstreamError, match="likelihood"):
        model.decompress(_with_valid_crcs(bytes(tampered)))
    tampered[14], tampered[15] = 0, 7
    with pytest.raises(BitstreamError, match="reserved"):
        model.decompress(_with_valid_crcs(bytes(tampered)))


def test_wrong_latent_shapes_are_refused(model: HiFiC, data: bytes) -> None:
    tampered = bytearray(data)
    struct.pack_into("<H", tampered, 24, 9)
    with pytest.raises(BitstreamError, match="latent shapes"):
        model.decompress(_with_valid_crcs(bytes(tampered)))


def test_a_bogus_huge_image_size_is_refused_before_allocating(model: HiFiC, data: bytes) -> None:
    header = unpack(data)[0]
    h, w = 4_000_000_000, 4_000_000_000
    yh, yw = (h + 63) // 64 * 4, (w + 63) // 64 * 4
    bogus = Header(header.fingerprint, h, w, (header.y_shape[0], yh, yw), (header.z_shape[0], yh // 4, yw // 4), 3, 5)
    with pytest.raises(BitstreamError, match="cannot hold"):
        model.decompress(pack(bogus, b"zzz", b"yyyyy"))


def test_non_bytes_are_refused(model: HiFiC) -> None:
    with pytest.raises(BitstreamError, match="bytes"):
        model.decompress("HFIC")  # type: ignore[arg-type]


def test_files_are_written_atomically(tmp_path: Path, data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.hfc"
    write_hfc(path, data)
    assert read_hfc(path) == data

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_hfc(path, b"new")
    assert read_hfc(path) == data
    assert [p.name for p in tmp_path.iterdir()] == ["a.hfc"]
    with pytest.raises(BitstreamError, match="no such file"):
        read_hfc(tmp_path / "missing.hfc")
    with pytest.raises(BitstreamError, match="folder"):
        read_hfc(tmp_path)
