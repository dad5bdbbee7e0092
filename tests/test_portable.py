"""Portable bitstreams (.hfc format 2): a file decodes to the same y_hat, symbol for symbol and bit for bit,
whatever the thread count, memory layout, oneDNN, float precision of the transforms, batching, tiling,
process or device that decodes it."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from hific_lit import HiFiC
from hific_lit.io.checkpoint import save_inference_checkpoint


@pytest.fixture(scope="module")
def model(seeded_tiny: Callable[[int], HiFiC]) -> HiFiC:
    return seeded_tiny(5)


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    from skimage import data

    return torch.from_numpy(data.astronaut()[100:292, 150:406].copy()).permute(2, 0, 1).float().div(255.0)


def _digest(y_hat: torch.Tensor) -> str:
    return hashlib.sha256(y_hat.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def test_every_decoding_setting_gives_the_same_y_hat(model: HiFiC, image: torch.Tensor) -> None:
    data = model.compress(image)
    reference = model.decompress_latent(data)[1]
    threads = torch.get_num_threads()
    decoded = {}
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            decoded[f"{count} threads"] = model.decompress_latent(data)[1]
    finally:
        torch.set_num_threads(threads)
    with torch.backends.mkldnn.flags(enabled=False):
        decoded["oneDNN off"] = model.decompress_latent(data)[1]
    decoded["channels_last"] = copy.deepcopy(model).to(memory_format=torch.channels_last).decompress_latent(data)[1]
    decoded["float64"] = copy.deepcopy(model).double().decompress_latent(data)[1]
    bf16 = copy.deepcopy(model)
    bf16.g_a.to(torch.bfloat16)
    bf16.g_s.to(torch.bfloat16)
    decoded["bf16 transforms"] = bf16.decompress_latent(data)[1]
    for setting, y_hat in decoded.items():
        assert torch.equal(y_hat, reference), setting


def test_a_file_written_in_float64_decodes_to_the_same_y_hat_in_float32(model: HiFiC, image: torch.Tensor) -> None:
    """The encoder's precision changes which symbols are written, never how a file decodes. (Batched and tiled
    encoders write the very bytes of the plain one: test_coding.py, test_tiling_codec.py.)"""
    float64 = copy.deepcopy(model).double()
    data = float64.compress(image.double())
    assert torch.equal(model.decompress_latent(data)[1], float64.decompress_latent(data)[1])


_CHILD = """
import hashlib, json, sys
import torch
from hific_lit.io.checkpoint import load_inference_checkpoint
setting, ckpt, hfc = sys.argv[1:4]
model = load_inference_checkpoint(ckpt)
if setting == "onednn_off":
    torch.backends.mkldnn.enabled = False
if setting == "channels_last":
    model = model.to(memory_format=torch.channels_last)
if setting == "float64":
    model = model.double()
y_hat = model.decompress_latent(open(hfc, "rb").read())[1]
print(json.dumps({"setting": setting, "threads": torch.get_num_threads(),
                  "y_hat": hashlib.sha256(y_hat.contiguous().numpy().tobytes()).hexdigest()}))
"""


@pytest.mark.slow
def test_other_processes_decode_exactly(model: HiFiC, image: torch.Tensor, tmp_path: Path) -> None:
    ckpt, hfc = tmp_path / "tiny.ckpt", tmp_path / "photo.hfc"
    save_inference_checkpoint(model, ckpt)
    hfc.write_bytes(model.compress(image))
    expected = _digest(model.decompress_latent(hfc.read_bytes())[1])
    runs = [("plain", "1"), ("plain", "2"), ("onednn_off", "2"), ("channels_last", "1"), ("float64", "2")]
    for setting, threads in runs:
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, setting, str(ckpt), str(hfc)],
            capture_output=True, text=True, env=env, check=True, timeout=300,
        )  # fmt: skip
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["threads"] == int(threads)
        assert result["y_hat"] == expected, result


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_and_cpu_decode_each_others_files(model: HiFiC, image: torch.Tensor) -> None:
    gpu = copy.deepcopy(model).cuda()
    from_gpu = gpu.compress(image.cuda())
    from_cpu = model.compress(image)
    for data in (from_gpu, from_cpu):
        on_cpu = model.decompress_latent(data)[1]
        on_gpu = gpu.decompress_latent(data)[1]
        assert on_gpu.is_cuda and torch.equal(on_gpu.cpu(), on_cpu)
        assert gpu.decompress(data).shape == (1, 3, *image.shape[-2:])
