"""Reduced precision of g_a and g_s: choosing it, and loading a checkpoint in it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hific_lit import HiFiC
from hific_lit.io.checkpoint import load_inference_checkpoint, save_inference_checkpoint
from hific_lit.runtime.precision import cpu_flags, cpu_has_native_bf16, resolve_precision


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 avx512_vnni\n")
    assert "avx512_bf16" in cpu_flags(str(cpuinfo))
    assert cpu_has_native_bf16(frozenset({"avx512f", "avx512_bf16"}))
    assert cpu_has_native_bf16(frozenset({"amx_bf16", "amx_tile"}))
    assert not cpu_has_native_bf16(frozenset({"avx2", "avx512f"}))
    assert cpu_flags(str(tmp_path / "missing")) == frozenset()


def test_precision_names_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_precision("fp32") == torch.float32
    assert resolve_precision("bf16") == torch.bfloat16
    assert resolve_precision("fp16") == torch.float16
    monkeypatch.setattr("hific_lit.runtime.precision.cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == torch.bfloat16
    monkeypatch.setattr("hific_lit.runtime.precision.cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == torch.float32
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        resolve_precision("fp8")


def test_loading_in_bf16_casts_only_the_transforms_and_keeps_decoding_exact(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = HiFiC.from_preset("tiny").eval()
    save_inference_checkpoint(model, tmp_path / "tiny.ckpt")
    fast = load_inference_checkpoint(tmp_path / "tiny.ckpt", precision="bf16")
    dtypes = {name.split(".")[0]: p.dtype for name, p in fast.named_parameters()}
    assert dtypes["g_a"] == dtypes["g_s"] == torch.bfloat16
    assert all(dtype == torch.float32 for name, dtype in dtypes.items() if name not in ("g_a", "g_s")), dtypes
    assert all(not t.is_floating_point() or t.dtype == torch.float32 for t in fast.conditional.state_dict().values())
    x = torch.rand(3, 48, 80)
    data = model.compress(x)
    assert torch.allclose(fast.decompress(data), model.decompress(data), atol=0.05)  # same symbols, g_s in bf16
    assert model.decompress(fast.compress(x)).shape == (1, 3, 48, 80)


def test_loading_builds_on_the_meta_device_and_fills_every_tensor(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = HiFiC.from_preset("tiny").eval()
    save_inference_checkpoint(model, tmp_path / "tiny.ckpt")
    loaded = load_inference_checkpoint(tmp_path / "tiny.ckpt")
    assert not any(t.is_meta for t in [*loaded.parameters(), *loaded.buffers()])
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_auto_precision_and_decoding_on_the_cpu(tmp_path: Path) -> None:
    torch.manual_seed(0)
    save_inference_checkpoint(HiFiC.from_preset("tiny").eval(), tmp_path / "tiny.ckpt")
    gpu = load_inference_checkpoint(tmp_path / "tiny.ckpt", map_location="cuda", precision="auto")
    assert next(gpu.g_s.parameters()).dtype in (torch.bfloat16, torch.float16)
    assert next(gpu.g_s.parameters()).is_cuda
    cpu = load_inference_checkpoint(tmp_path / "tiny.ckpt")
    x = torch.randint(0, 256, (3, 80, 112), dtype=torch.uint8)
    data = gpu.compress(x)
    assert torch.allclose(cpu.decompress(data), gpu.decompress(data).cpu(), atol=0.05)
    assert cpu.decompress(cpu.compress(x)).shape == (1, 3, 80, 112)


@pytest.mark.parametrize("stored", [True, False], ids=["fingerprint-stored", "older-checkpoint"])
def test_a_float16_copy_decodes_the_float32_models_files_and_the_reverse(tmp_path: Path, stored: bool) -> None:
    torch.manual_seed(0)
    model = HiFiC.from_preset("tiny").eval()
    save_inference_checkpoint(model, tmp_path / "tiny.ckpt")
    if not stored:  # as written before checkpoints stored the fingerprint
        payload = torch.load(tmp_path / "tiny.ckpt", weights_only=False)
        del payload["fingerprint"]
        torch.save(payload, tmp_path / "tiny.ckpt")
    half = load_inference_checkpoint(tmp_path / "tiny.ckpt", precision="fp16")
    assert next(half.g_s.parameters()).dtype == torch.float16
    # float16 weights round to other bfloat16 values than float32 ones: the rule alone gives another fingerprint
    assert half.fingerprint() == model.fingerprint()
    x = torch.rand(3, 48, 80)
    assert torch.allclose(half.decompress(model.compress(x)), model.decompress(model.compress(x)), atol=0.05)
    assert model.decompress(half.compress(x)).shape == (1, 3, 48, 80)
    with torch.no_grad():
        next(half.g_s.parameters()).add_(1.0)  # a changed model is no longer the saved one
    assert half.fingerprint() != model.fingerprint()
