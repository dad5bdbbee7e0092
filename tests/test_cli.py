"""The ``hific`` command: compress, decompress, info on real image files, and one-line errors."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hific_lit import HiFiC
from hific_lit.cli import main
from hific_lit.io.checkpoint import load_inference_checkpoint, save_inference_checkpoint
from hific_lit.io.images import load_image

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.ckpt"
    save_inference_checkpoint(HiFiC.from_preset("tiny"), path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One file per kind the command must handle: formats, gray, RGBA, 16-bit, EXIF-rotated."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 72, 3), dtype=np.uint8)
    paths = {
        "png": folder / "photo.png",
        "jpeg": folder / "photo_q.jpg",
        "webp": folder / "photo_w.webp",
        "tiff16": folder / "deep.tif",
        "gray": folder / "gray.png",
        "rgba": folder / "logo.png",
        "rotated": folder / "rotated.jpg",
    }
    Image.fromarray(rgb).save(paths["png"])
    Image.fromarray(rgb).save(paths["jpeg"], quality=90)
    Image.fromarray(rgb).save(paths["webp"])
    Image.fromarray((rng.integers(0, 65536, (30, 50))).astype(np.uint16)).save(paths["tiff16"])
    Image.fromarray(rgb[..., 0]).save(paths["gray"])
    Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(paths["rgba"])
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb).save(paths["rotated"], exif=exif)
    return paths


def test_compress_decompress_info_round_trip(
    ckpt: Path, images: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "hfc"
    assert main(["compress", *map(str, images.values()), "--ckpt", str(ckpt), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    model = load_inference_checkpoint(ckpt)
    for src in images.values():
        hfc = out / (src.stem + ".hfc")
        line = next(line for line in printed.splitlines() if line.startswith(str(src)))
        width, height = map(int, re.search(r": (\d+)x(\d+),", line).groups())
        assert f"{hfc.stat().st_size} bytes" in line
        bpp = float(re.search(r"([\d.]+) bpp \(model", line).group(1))
        assert bpp == pytest.approx(8 * hfc.stat().st_size / (width * height), abs=1e-4)
        assert "model estimate" in line
        x = load_image(src)
        assert (height, width) == x.shape[-2:]
        assert hfc.read_bytes() == model.compress(x)
    assert "dropped the alpha channel" in printed and "16" in printed
    assert re.search(r"rotated.jpg -> .*: 40x72", printed), "EXIF orientation 6 turns 72x40 into 40x72"

    decoded = tmp_path / "decoded"
    files = sorted(out.glob("*.hfc"))
    assert main(["decompress", *map(str, files), "--ckpt", str(ckpt), "-o", str(decoded)]) == 0
    for hfc in files:
        png = decoded / f"{hfc.stem}.decoded.png"
        pixels = np.asarray(Image.open(png))
        expected = (model.decompress(hfc.read_bytes())[0].permute(1, 2, 0) * 255).round().byte().numpy()
        assert np.array_equal(pixels, expected)

    capsys.readouterr()
    assert main(["info", str(files[0]), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["total_bytes"] == files[0].stat().st_size and info["header_bytes"] == 60
    assert info["version"] == 2 and info["likelihood"] == "gaussian"
    golden_v1 = Path(__file__).parent / "expected" / "golden_tiny.hfc"
    assert main(["info", str(golden_v1), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["version"], info["header_bytes"], info["total_bytes"]) == (1, 62, golden_v1.stat().st_size)
    assert "likelihood" not in info and len(info["symbols_crc"]) == 8
    assert info["bpp"] == pytest.approx(8 * info["total_bytes"] / (info["height"] * info["width"]), rel=1e-5)


def test_single_output_file_and_default_location(ckpt: Path, images: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "one.hfc"
    assert main(["compress", str(images["png"]), "--ckpt", str(ckpt), "-o", str(target), "-q"]) == 0
    assert target.exists()
    assert main(["decompress", str(target), "--ckpt", str(ckpt), "-q"]) == 0
    assert (tmp_path / "one.decoded.png").exists()


def test_bad_inputs_give_one_line_errors(
    ckpt: Path, images: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_image = tmp_path / "notes.png"
    not_image.write_text("hello")
    html = tmp_path / "page.ckpt"
    html.write_text("<html><body>Error 404</body></html>")
    truncated = tmp_path / "cut.hfc"
    main(["compress", str(images["png"]), "--ckpt", str(ckpt), "-o", str(truncated), "-q"])
    truncated.write_bytes(truncated.read_bytes()[:-5])
    cases = [
        (["compress", str(not_image), str(images["png"]), "--ckpt", str(ckpt), "-o", str(tmp_path)], 1, "notes.png"),
        (["compress", str(images["png"]), "--ckpt", str(html)], 2, "HTML"),
        (["compress", str(images["png"]), "--ckpt", str(tmp_path / "none.ckpt")], 2, "no such checkpoint"),
        (["decompress", str(truncated), "--ckpt", str(ckpt)], 1, "truncated"),
        (["info", str(truncated)], 1, "truncated"),
        (["info", str(images["png"])], 1, "not a .hfc file"),
        (["compress", str(images["png"]), str(images["gray"]), "--ckpt", str(ckpt), "-o", "x.hfc"], 2, "folder"),
    ]
    for argv, code, message in cases:
        capsys.readouterr()
        assert main(argv) == code, argv
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if "error" in line]
        assert len(lines) == 1 and message in lines[0], err
        assert "Traceback" not in err
    assert (tmp_path / "photo.hfc").exists(), "the good file of a mixed batch is still written"


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width`` x ``height`` RGB pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * (3 * width + 1) * 4)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_a_decompression_bomb_is_one_line_naming_the_limit_and_option(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bomb = tmp_path / "bomb.png"
    _png_header_only(bomb, 30000, 30000)
    assert main(["compress", str(bomb), "--ckpt", str(ckpt), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    assert "30000x30000 = 900,000,000 pixels" in err[0] and "268,435,456" in err[0] and "--max-pixels N" in err[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    small = tmp_path / "small.png"
    Image.new("RGB", (40, 30)).save(small)
    assert main(["compress", str(small), "--ckpt", str(ckpt), "--max-pixels", "1000", "-q"]) == 1
    assert "1,200 pixels is over the limit of 1,000" in capsys.readouterr().err
    assert main(["compress", str(small), "--ckpt", str(ckpt), "--max-pixels", "1200", "-q"]) == 0


def test_a_one_pixel_png_with_the_small_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ckpt = tmp_path / "small.ckpt"
    save_inference_checkpoint(HiFiC.from_preset("small"), ckpt)
    image = tmp_path / "one.png"
    Image.new("RGB", (1, 1), (200, 10, 30)).save(image)
    assert main(["compress", str(image), "--ckpt", str(ckpt), "-q"]) == 0
    assert main(["decompress", str(tmp_path / "one.hfc"), "--ckpt", str(ckpt), "-q"]) == 0
    assert Image.open(tmp_path / "one.decoded.png").size == (1, 1)


def test_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    expected = {
        "compress": ["--ckpt", "--output", "--device", "--quiet", "--max-memory", "--max-pixels", "--precision", "IMG"],
        "decompress": ["--ckpt", "--output", "--format", "--device", "--precision", "FILE.hfc"],
        "info": ["--json", "FILE.hfc"],
    }
    for command, options in expected.items():
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert all(option in text for option in options), (command, text)
    assert main([]) == 0
    top = capsys.readouterr().out
    assert all(command in top for command in expected)


COMMANDS = ("compress", "decompress", "info", "import-jt", "train", "eval", "export", "download")


def test_hific_help_lists_every_command_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    listed, examples = text.split("examples:")
    for command in COMMANDS:
        assert re.search(rf"^    {command}\b", listed, re.MULTILINE), command
    for command in set(COMMANDS) - {"import-jt"}:
        assert re.search(rf"^  hific {command} \S", examples, re.MULTILINE), command
    assert "0 on success, 1 if some inputs failed, 2 if nothing could run" in examples


def test_exit_statuses_follow_one_rule(ckpt: Path, images: dict[str, Path], tmp_path: Path) -> None:
    """0 everything ran, 1 some inputs failed (the others are done), 2 nothing could run."""
    good = tmp_path / "good.hfc"
    assert main(["compress", str(images["png"]), "--ckpt", str(ckpt), "-o", str(good), "-q"]) == 0
    assert main(["info", str(good)]) == 0
    assert main(["info", str(good), str(images["png"])]) == 1
    assert main(["decompress", str(good), str(images["png"]), "--ckpt", str(ckpt), "-o", str(tmp_path), "-q"]) == 1
    assert main(["compress", str(images["png"]), "--ckpt", str(images["png"])]) == 2
    assert main(["compress", str(images["png"]), "--ckpt", str(ckpt), "--device", "toaster"]) == 2
    assert main(["export", str(tmp_path / "missing.ckpt"), str(tmp_path / "out.ckpt")]) == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["compress", str(images["png"]), "--ckpt", str(ckpt), "--max-memory", "lots"])
    assert exit_info.value.code == 2  # a bad command line: nothing ran


def test_download_offline_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from hific_lit.data import eval_sets

    url = "http://127.0.0.1:9/kodim01.png"  # discard port: nothing listens
    monkeypatch.setitem(
        eval_sets.REGISTRY, "kodak", eval_sets.EvalSet("Kodak", 24, (eval_sets.RemoteFile("k.png", url),))
    )
    assert main(["download", "kodak", "--root", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert err[0].startswith("hific download: error: cannot download " + url) and str(tmp_path / "kodak") in err[0]


def _hific(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = os.environ | {"WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "hific_lit.cli", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``hific train`` on the tiny model for two iterations (the debug preset), as a user types it."""
    run_dir = tmp_path_factory.mktemp("train") / "run"
    overrides = ["debug=fdr", "arch=tiny", "data.samples_per_epoch=8", "data.val_tiles=1", f"hydra.run.dir={run_dir}"]
    result = _hific("train", *overrides, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_hific_train_runs_with_the_scripts_overrides(trained: Path) -> None:
    assert json.loads((trained / "metrics.json").read_text())["status"] == "ok"
    assert (trained / "checkpoints" / "last.ckpt").is_file() and (trained / "inference.ckpt").is_file()
    assert (trained / "train.log").is_file(), sorted(p.name for p in trained.iterdir())  # the job is named train
    hydra = (trained / ".hydra" / "hydra.yaml").read_text()
    assert "    arch: tiny\n" in hydra and "    debug: fdr\n" in hydra  # the config groups chosen


def test_hific_export_round_trip(trained: Path, tmp_path: Path) -> None:
    """Lightning checkpoint -> inference checkpoint: no discriminator stored, the same codec, real .hfc files."""
    exported = tmp_path / "exported.ckpt"
    assert main(["export", str(trained / "checkpoints" / "last.ckpt"), str(exported)]) == 0
    raw = torch.load(exported, map_location="cpu", weights_only=True)
    assert "discriminator_state_dict" not in raw and not any("discriminator" in k for k in raw["state_dict"])
    ours, theirs = load_inference_checkpoint(exported), load_inference_checkpoint(trained / "inference.ckpt")
    for name, tensor in theirs.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[name], tensor, rtol=0, atol=0, msg=name)
    x = torch.rand(3, 40, 56)
    assert ours.decompress(ours.compress(x)).shape == (1, 3, 40, 56)
    assert main(["export", str(exported), str(tmp_path / "again.ckpt")]) == 2  # already an inference checkpoint


def test_many_files_report_throughput_and_a_bad_one_does_not_stop_the_rest(
    ckpt: Path, images: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(images["png"].read_bytes()[:100])
    inputs = [images["png"], broken, images["jpeg"], images["gray"]]
    assert main(["compress", *map(str, inputs), "--ckpt", str(ckpt), "-o", str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["gray.hfc", "photo.hfc", "photo_q.hfc"]
    assert captured.err.count("error:") == 1 and "broken.png" in captured.err
    assert re.search(r"hific compress: 3 of 4 files in [\d.]+ s \([\d.]+ files/s\)", captured.out)
    lines = [line for line in captured.out.splitlines() if " -> " in line]
    assert [line.split(" -> ")[0] for line in lines] == [str(images[k]) for k in ("png", "jpeg", "gray")]


def test_a_file_written_in_one_precision_decodes_in_any_other(
    ckpt: Path, images: dict[str, Path], tmp_path: Path
) -> None:
    files = {}
    for precision in ("fp32", "bf16"):
        files[precision] = tmp_path / f"{precision}.hfc"
        args = ["compress", str(images["png"]), "--ckpt", str(ckpt), "-o", str(files[precision]), "-q"]
        assert main([*args, "--precision", precision]) == 0
    decoded = {}
    for written in ("fp32", "bf16"):
        for reading in ("fp32", "bf16", "auto"):
            out = tmp_path / f"{written}_{reading}.png"
            args = ["decompress", str(files[written]), "--ckpt", str(ckpt), "-o", str(out), "-q"]
            assert main([*args, "--precision", reading]) == 0
            decoded[written, reading] = np.asarray(Image.open(out)).astype(np.int16)
    for (written, reading), pixels in decoded.items():  # the symbols decode exactly; only g_s's rounding differs
        assert np.abs(pixels - decoded[written, "fp32"]).mean() < 2.0, (written, reading)


def test_running_out_of_memory_is_one_line_and_other_errors_are_not_hidden(
    ckpt: Path, images: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def out_of_memory(*args: object, **kwargs: object) -> bytes:
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(HiFiC, "analysis", out_of_memory)  # g_a: where a large image runs out
    assert main(["compress", str(images["png"]), "--ckpt", str(ckpt), "-o", str(tmp_path), "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "out of memory" in err[0] and "--max-memory" in err[0]

    def bug(*args: object, **kwargs: object) -> bytes:
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(HiFiC, "analysis", bug)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        main(["compress", str(images["png"]), "--ckpt", str(ckpt), "-o", str(tmp_path), "-q"])


def test_hydra_commands_follow_the_exit_rule(tmp_path: Path) -> None:
    """``hific eval`` without a checkpoint, or with an override Hydra cannot apply: nothing ran, 2, no traceback."""
    missing = _hific("eval", "eval_set=folder", f"eval_set.path={tmp_path}", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert missing.returncode == 2, missing.stderr
    assert missing.stderr.strip().splitlines() == ["hific eval: error: no checkpoint given: pass ckpt=PATH (or "
                                                   "ckpt=[low,med,high] for an RD curve), or model=NAME"]  # fmt: skip
    typo = _hific("eval", "ckpt=m.ckpt", "eval_sett=kodak", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert typo.returncode == 2 and "Could not override 'eval_sett'" in typo.stderr and "Traceback" not in typo.stderr


def test_bf16_export_halves_the_weights_and_decodes_the_same_files(trained: Path, tmp_path: Path) -> None:
    """--precision bf16: g_a's and g_s's weights stored in bfloat16, everything that decides symbols as it was; the
    fingerprint is the same, so a file coded by one copy decodes with the other."""
    fp32, bf16 = trained / "inference.ckpt", tmp_path / "bf16.ckpt"
    assert main(["export", str(fp32), str(bf16), "--precision", "bf16"]) == 0
    raw = torch.load(bf16, map_location="cpu", weights_only=True)["state_dict"]
    transforms = [k for k, v in raw.items() if k.startswith(("g_a.", "g_s.")) and v.is_floating_point()]
    assert transforms and all(raw[k].dtype == torch.bfloat16 for k in transforms)
    assert all(v.dtype != torch.bfloat16 for k, v in raw.items() if not k.startswith(("g_a.", "g_s.")))
    full, half = load_inference_checkpoint(fp32), load_inference_checkpoint(bf16)
    assert half.fingerprint() == full.fingerprint()
    for name, tensor in full.state_dict().items():
        if name not in transforms:
            torch.testing.assert_close(half.state_dict()[name], tensor, rtol=0, atol=0, msg=name)
    x = torch.rand(3, 40, 56)
    assert half.decompress(full.compress(x)).shape == (1, 3, 40, 56)
    assert (
        main(["export", str(trained / "checkpoints" / "last.ckpt"), str(tmp_path / "l.ckpt"), "--precision", "bf16"])
        == 0
    )
    assert torch.load(tmp_path / "l.ckpt", weights_only=True)["state_dict"][transforms[0]].dtype == torch.bfloat16
