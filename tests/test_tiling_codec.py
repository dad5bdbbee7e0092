"""Tiling in compress/decompress and ``--max-memory``: one bitstream, the same as untiled, for any shape."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hific_lit import HiFiC
from hific_lit.cli import coding, main
from hific_lit.io.checkpoint import save_inference_checkpoint
from hific_lit.io.images import load_image, save_image
from hific_lit.tiling import (
    DEFAULT_MAX_MEMORY,
    MEMORY_SAFETY,
    activation_peak_bytes,
    analysis_stage,
    plan_tiles,
    synthesis_stages,
)

ATOL = 1e-5


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model() -> HiFiC:
    m = HiFiC.from_preset("tiny").eval()
    m.update()
    return m


def _small_budget(model: HiFiC) -> int:
    """A budget under which g_a tiles are 64 pixels and g_s's upsampling tiles 4 latent pixels square."""
    enc, (_, up) = analysis_stage(model.g_a), synthesis_stages(model.g_s)
    enc_side, up_side = 64 + enc.overlap, 4 + up.overlap
    return int(
        MEMORY_SAFETY
        * max(
            activation_peak_bytes(model.g_a, (1, 3, enc_side, enc_side), torch.float32),
            activation_peak_bytes(up.module, (1, model.arch.generator_widths[0], up_side, up_side), torch.float32),
        )
    )


def _code(model: HiFiC, x: torch.Tensor, max_memory: int | None) -> tuple[bytes, torch.Tensor]:
    data = model.compress(x, max_memory=max_memory)
    return data, model.decompress(data, max_memory=max_memory)


@pytest.mark.parametrize("size", [(197, 175), (17, 3000), (3000, 17)])
def test_tiled_coding_gives_the_untiled_bitstream_and_image(model: HiFiC, size: tuple[int, int]) -> None:
    x = torch.rand(1, 3, *size)
    budget = _small_budget(model)
    padded = (1, 3, -(-size[0] // 64) * 64, -(-size[1] // 64) * 64)
    assert plan_tiles(analysis_stage(model.g_a), padded, torch.float32, budget).count > 1
    whole_bytes, whole_image = _code(model, x, None)
    tiled_bytes, tiled_image = _code(model, x, budget)
    assert tiled_bytes == whole_bytes
    assert tiled_image.shape == x.shape == whole_image.shape
    torch.testing.assert_close(tiled_image, whole_image, atol=ATOL, rtol=0)


def test_default_budget_is_an_argument_and_none_disables_tiling(model: HiFiC, monkeypatch: pytest.MonkeyPatch) -> None:
    import inspect

    from hific_lit.tiling import tiles

    for method in (model.compress, model.decompress, model.analysis, model.synthesis):
        assert inspect.signature(method).parameters["max_memory"].default == DEFAULT_MAX_MEMORY == 384 * 2**20
    assert not hasattr(model, "max_memory")
    monkeypatch.setattr(tiles, "bytes_per_pixel", lambda *args: 20_000.0)  # as if: the default budget tiles this image
    x = torch.rand(1, 3, 256, 320)
    seen: list[tuple[int, ...]] = []
    hook = model.g_a.register_forward_pre_hook(lambda _, inputs: seen.append(tuple(inputs[0].shape)))
    try:
        with torch.no_grad():
            model.analysis(x)
            assert len(seen) > 1, "the default budget tiles"
            seen.clear()
            assert torch.equal(model.analysis(x, max_memory=None), model.g_a(x))
    finally:
        hook.remove()
    assert seen == [(1, 3, 256, 320)] * 2, "no budget: one pass over the whole image (then the reference call)"


def test_cli_max_memory_tiles_without_changing_the_file(model: HiFiC, tmp_path: Path) -> None:
    ckpt, image = tmp_path / "tiny.ckpt", tmp_path / "photo.png"
    save_inference_checkpoint(model, ckpt)
    save_image(torch.rand(1, 3, 150, 230), image)
    budget = str(_small_budget(model))
    for name, memory in (("whole", "none"), ("tiled", budget)):
        args = ["--ckpt", str(ckpt), "--max-memory", memory, "-q"]
        assert main(["compress", str(image), "-o", str(tmp_path / f"{name}.hfc"), *args]) == 0
        assert main(["decompress", str(tmp_path / f"{name}.hfc"), "-o", str(tmp_path / f"{name}.png"), *args]) == 0
    assert (tmp_path / "tiled.hfc").read_bytes() == (tmp_path / "whole.hfc").read_bytes()
    whole, tiled = (load_image(tmp_path / f"{name}.png") for name in ("whole", "tiled"))
    assert (whole - tiled).abs().max() <= 1 / 255  # 8-bit output: float noise may flip one level


def test_cli_rejects_a_malformed_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["compress", "x.png", "--ckpt", "m.ckpt", "--max-memory", "lots"])
    assert exit_info.value.code == 2
    assert "--max-memory: memory budget: cannot read the size 'lots'" in capsys.readouterr().err


@pytest.mark.parametrize("budget", [None, "small"])
def test_8_bit_images_code_as_their_float_version_converted_tile_by_tile(model: HiFiC, budget: str | None) -> None:
    pixels = torch.randint(0, 256, (3, 197, 175), dtype=torch.uint8)
    max_memory = _small_budget(model) if budget else None
    data = model.compress(pixels, max_memory=max_memory)
    assert data == model.compress(pixels.float() / 255.0, max_memory=max_memory)
    decoded = model.decompress(data, max_memory=max_memory, uint8=True)
    assert decoded.dtype == torch.uint8 and decoded.shape == (1, 3, 197, 175)
    expected = model.decompress(data, max_memory=max_memory).mul(255.0).round().to(torch.uint8)
    assert torch.equal(decoded, expected)


def test_cli_default_budget_shrinks_for_large_images(
    model: HiFiC, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--max-memory auto`` (the default) is 384M, and 128M from 16 MP on; a budget given is kept at any size."""
    ckpt, image, hfc = tmp_path / "tiny.ckpt", tmp_path / "photo.png", tmp_path / "photo.hfc"
    save_inference_checkpoint(model, ckpt)
    save_image(torch.rand(1, 3, 150, 230), image)
    seen: list[object] = []
    encode, decode = HiFiC.compress_to_file, HiFiC.synthesis

    def spy_encode(self: HiFiC, *args: object, max_memory: int | None, **kwargs: object) -> float:
        seen.append(max_memory)
        return encode(self, *args, max_memory=max_memory, **kwargs)

    def spy_decode(self: HiFiC, y_hat: torch.Tensor, max_memory: int | None, *args: object) -> torch.Tensor:
        seen.append(max_memory)
        return decode(self, y_hat, max_memory, *args)

    monkeypatch.setattr(HiFiC, "compress_to_file", spy_encode)
    monkeypatch.setattr(HiFiC, "synthesis", spy_decode)

    def both(*budget: str) -> list[object]:
        seen.clear()
        assert main(["compress", str(image), "-o", str(hfc), "--ckpt", str(ckpt), "-q", *budget]) == 0
        assert main(["decompress", str(hfc), "-o", str(tmp_path / "out.png"), "--ckpt", str(ckpt), "-q", *budget]) == 0
        return seen[:]

    assert both() == both("--max-memory", "auto") == [DEFAULT_MAX_MEMORY] * 2 == [384 * 2**20] * 2
    monkeypatch.setattr(coding, "LARGE_IMAGE_PIXELS", 150 * 230)
    assert both() == [coding.LARGE_IMAGE_MAX_MEMORY] * 2 == [128 * 2**20] * 2
    assert both("--max-memory", "1G") == [2**30] * 2
