"""Reading every kind of input image explicitly, and writing atomically."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hific_lit.errors import ImageReadError
from hific_lit.io.images import ImageTooLargeError, load_image, open_image, save_image, to_uint8


def bomb_png(path: Path, width: int = 30000, height: int = 30000) -> Path:
    """A small PNG whose header claims ``width`` x ``height`` RGB pixels (a decompression bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * (3 * width + 1) * 4)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_rgb_png_round_trip(tmp_path: Path) -> None:
    arr = np.random.randint(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.png")
    notes: list[str] = []
    x = load_image(tmp_path / "a.png", notes)
    assert notes == []
    assert x.shape == (3, 5, 7) and x.dtype == torch.float32
    assert np.array_equal(to_uint8(x), arr)
    save_image(x, tmp_path / "b.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b.png")), arr)


def test_8_bit_rgb_pngs_are_decoded_by_libspng_exactly_as_pillow_decodes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    import pyspng
    from skimage import data

    Image.fromarray(data.astronaut()[:200, :120]).save(tmp_path / "a.png")
    Image.fromarray(data.astronaut()[:200, :120]).convert("P").save(tmp_path / "p.png")
    calls = []
    spng_load = pyspng.load
    monkeypatch.setattr(pyspng, "load", lambda *a, **k: calls.append(1) or spng_load(*a, **k))
    fast, palette = load_image(tmp_path / "a.png", uint8=True), load_image(tmp_path / "p.png", uint8=True)
    assert len(calls) == 1, "only the 8-bit RGB PNG goes to libspng"
    assert fast.dtype == torch.uint8 and fast.shape == (3, 200, 120)
    monkeypatch.setitem(sys.modules, "pyspng", None)  # not installed: Pillow reads every file
    assert torch.equal(load_image(tmp_path / "a.png", uint8=True), fast)
    assert torch.equal(load_image(tmp_path / "a.png"), fast.float() / 255)
    assert torch.equal(load_image(tmp_path / "p.png", uint8=True), palette)


@pytest.mark.parametrize(
    ("mode", "note"),
    [("L", "grayscale"), ("RGBA", "alpha"), ("LA", "alpha"), ("P", "converted P"), ("CMYK", "converted CMYK")],
)
def test_modes_become_rgb_with_a_note(tmp_path: Path, mode: str, note: str) -> None:
    img = Image.fromarray(np.random.randint(0, 256, (4, 6, 3), dtype=np.uint8)).convert(mode)
    path = tmp_path / ("x.tiff" if mode == "CMYK" else "x.png")
    img.save(path)
    notes: list[str] = []
    x = load_image(path, notes)
    assert x.shape == (3, 4, 6) and x.min() >= 0 and x.max() <= 1
    assert any(note in n for n in notes), notes


def test_16_bit_grayscale_is_scaled(tmp_path: Path) -> None:
    arr = np.array([[0, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "g16.png")
    notes: list[str] = []
    x = load_image(tmp_path / "g16.png", notes)
    assert torch.allclose(x[:, 0, :], torch.tensor([0.0, 32768 / 65535, 1.0]).expand(3, 3), atol=1e-6)
    assert any("0..65535" in n for n in notes)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])  # an 8-bit RGB PNG with an eXIf chunk is not libspng's
def test_exif_rotation_is_applied(tmp_path: Path, suffix: str) -> None:
    img = Image.new("RGB", (8, 2), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    img.save(tmp_path / f"r{suffix}", exif=exif)
    notes: list[str] = []
    assert load_image(tmp_path / f"r{suffix}", notes, uint8=True).shape == (3, 8, 2)
    assert "applied EXIF orientation" in notes


def test_bad_inputs_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="no such image file"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "page.png").write_text("<html>not found</html>")
    with pytest.raises(ImageReadError, match=r"page\.png: not a readable image"):
        load_image(tmp_path / "page.png")
    Image.new("RGB", (64, 64)).save(tmp_path / "t.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "t.png").read_bytes()[:60])
    with pytest.raises(ImageReadError, match=r"cut\.png"):
        load_image(tmp_path / "cut.png")


def test_decompression_bombs_are_refused_before_decoding_naming_limit_and_option(tmp_path: Path) -> None:
    bomb = bomb_png(tmp_path / "bomb.png")
    with pytest.raises(ImageTooLargeError) as error:
        load_image(bomb)
    message = str(error.value)
    assert message.startswith(f"{bomb}: 30000x30000 = 900,000,000 pixels is over the limit of 268,435,456")
    assert "--max-pixels N" in message and "\n" not in message
    with pytest.raises(ImageTooLargeError, match=r"raise it with max_pixels=N"):
        load_image(bomb, max_pixels=10**8, option="max_pixels=N")
    Image.new("RGB", (300, 300)).save(tmp_path / "big.png")
    assert load_image(tmp_path / "big.png", max_pixels=90_000).shape == (3, 300, 300)
    with pytest.raises(ImageTooLargeError, match="90,000 pixels is over the limit of 89,999"):
        load_image(tmp_path / "big.png", max_pixels=89_999)
    Image.MAX_IMAGE_PIXELS, saved = 1000, Image.MAX_IMAGE_PIXELS
    try:
        assert load_image(tmp_path / "big.png", max_pixels=None).shape == (3, 300, 300), "Pillow's own limit is off"
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def test_training_data_shards_and_eval_refuse_bombs_in_one_line(tmp_path: Path) -> None:
    from hific_lit.data.shard_writer import ShardSettings, prepare_sample, write_shards
    from hific_lit.eval.runner import Scorers, evaluate_checkpoint

    folder = tmp_path / "src"
    folder.mkdir()
    bomb = bomb_png(folder / "bomb.png")
    Image.new("RGB", (40, 30)).save(folder / "fine.png")
    with pytest.raises(ImageReadError, match="900,000,000 pixels"):
        open_image(bomb)
    sample = prepare_sample(bomb, folder, None)
    assert (
        sample.error.startswith("30000x30000 = 900,000,000 pixels") and "make_shards.py --max-pixels N" in sample.error
    )
    manifest = write_shards(folder, tmp_path / "shards", ShardSettings(), progress=False)
    assert manifest["samples"] == 1 and manifest["skipped"][0]["reason"] == sample.error
    with pytest.raises(ImageTooLargeError, match="max_pixels=N"):
        evaluate_checkpoint(None, "m", [bomb], tmp_path / "eval", [], Scorers())  # type: ignore[arg-type]


def _idat_stream(png: bytes) -> bytes:
    """The concatenated IDAT payloads of a PNG file: its zlib stream, however it is cut into chunks."""
    stream, pos = bytearray(), 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        if png[pos + 4 : pos + 8] == b"IDAT":
            stream += png[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return bytes(stream)


@pytest.mark.parametrize("shape", [(1, 1), (37, 53), (200, 120), (600, 700)])
def test_png_writer_gives_pillows_pixels_and_its_very_zlib_stream(tmp_path: Path, shape: tuple[int, int]) -> None:
    from skimage import data

    from hific_lit.io.images import encode_image, write_png

    photo = data.astronaut()[: shape[0], : shape[1]]
    noise = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    for pixels in (photo, noise):  # 600x700 noise: more than one IDAT chunk
        padded = torch.from_numpy(np.pad(pixels, ((0, 3), (0, 5), (0, 0)))).permute(2, 0, 1)
        x = padded[None, :, : pixels.shape[0], : pixels.shape[1]]  # a cropped view, as decompress returns it
        save_image(x, tmp_path / "a.png")
        written = (tmp_path / "a.png").read_bytes()
        assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), pixels)
        assert _idat_stream(written) == _idat_stream(encode_image(np.ascontiguousarray(pixels)))
    with pytest.raises(ValueError, match="uint8"):
        write_png(io.BytesIO(), torch.zeros(3, 2, 2))
