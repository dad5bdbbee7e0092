"""One way for each small task: atomic writes (images, .hfc, checkpoints), sizes, bpp from bytes, devices."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from hific_lit import HiFiC
from hific_lit.errors import SettingError
from hific_lit.io.checkpoint import save_inference_checkpoint
from hific_lit.io.files import atomic_write, atomic_write_bytes, bits_per_pixel, parse_size
from hific_lit.runtime.device import resolve_device


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"old")

    def half_then_fail(f) -> None:
        f.write(b"new, half written")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_write_gives_ordinary_permissions(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "f.bin", b"x")
    finally:
        os.umask(mask)
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == 0o644


def test_a_checkpoint_that_fails_to_save_leaves_the_old_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """save_inference_checkpoint goes through the same writer: no half-written file, no stray temporary."""
    path = tmp_path / "model.ckpt"
    model = HiFiC.from_preset("tiny")
    save_inference_checkpoint(model, path)
    before = path.read_bytes()

    def interrupted(obj, f) -> None:
        f.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_inference_checkpoint(model, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.ckpt"]


@pytest.mark.parametrize(
    ("text", "size"),
    [("512M", 512 * 2**20), ("2GiB", 2 * 2**30), ("1.5g", 3 * 2**29), ("4096", 4096), ("64k", 65536), (64, 64)],
)
def test_parse_size(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "-1G", "0", "5X"])
def test_parse_size_rejects_nonsense(text: str) -> None:
    with pytest.raises(SettingError, match="size"):
        parse_size(text)


def test_bits_per_pixel_counts_every_byte() -> None:
    # a Kodak image (768x512) at 0.2 bpp would be 9830.4 bytes: a 9831-byte file is just above
    assert bits_per_pixel(9831, 512, 768) == pytest.approx(0.2000122, abs=1e-7)
    assert bits_per_pixel(98304, 512, 768) == 2.0 and bits_per_pixel(1, 1, 1) == 8.0


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(SettingError, match="unknown device 'toaster'"):
        resolve_device("toaster")
    if not torch.cuda.is_available():
        for name in ("cuda", "cuda:1", "gpu"):
            with pytest.raises(SettingError, match="CUDA is not available"):
                resolve_device(name)


def test_one_data_root_for_configs_and_download(monkeypatch, tmp_path) -> None:
    from hific_lit.config import compose_config, default_data_dir

    monkeypatch.setenv("HIFIC_DATA", str(tmp_path / "sets"))
    assert default_data_dir() == tmp_path / "sets"
    for name in ("train", "eval"):
        assert compose_config(name, [], tmp_path).paths.data_dir == str(tmp_path / "sets")
    monkeypatch.delenv("HIFIC_DATA")
    monkeypatch.chdir(tmp_path)
    assert default_data_dir() == tmp_path / "data"
    assert compose_config("train", [], tmp_path).paths.data_dir == str(tmp_path / "data")
