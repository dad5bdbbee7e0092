"""Reading every kind of input image explicitly, and writing atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hific_lit.errors import ImageReadError
from hific_lit.image_io import atomic_write_bytes, load_image, save_image, to_uint8


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


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    img = Image.new("RGB", (8, 2), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    img.save(tmp_path / "r.jpg", exif=exif)
    notes: list[str] = []
    assert load_image(tmp_path / "r.jpg", notes).shape == (3, 8, 2)
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


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"old")

    with pytest.raises(TypeError):
        atomic_write_bytes(target, 42)  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_write_gives_ordinary_permissions(tmp_path: Path) -> None:
    import os

    mask = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "f.bin", b"x")
    finally:
        os.umask(mask)
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == 0o644
