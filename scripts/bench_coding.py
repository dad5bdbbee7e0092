"""Benchmark of the entropy coder and the .hfc format; writes outputs/bench/coding.json.

1. Throughput: symbols/s of entropy encoding and decoding (scale indexes, CDF row gathering,
   torchac, escapes), on Gaussian latents y ~ N(mu, sigma) with sigma log-uniform in
   [0.11, 16], best of ``--repeats``; wall-clock and per CPU-second, with one torch thread and
   with torch's default count.
2. Memory (Linux): the peak extra resident memory of coding 16 M symbols with sigma up to 256.
3. Synthetic rate overhead: coded bytes against the model's theoretical bits, -sum(log2 p), on
   those latents (exactly the distribution the tables approximate).
4. Real photos (scikit-image's bundled photos): .hfc file bytes against the model's theoretical
   bits (the bound is 1.01 x bits / 8 + 64 bytes), and whether every symbol decodes exactly
   (the streams' CRC32). The model is ``--ckpt`` (an inference checkpoint), else the one
   ``make demo`` trains (outputs/demo/gan or base/inference.ckpt) when present, else an untrained
   ``small`` model (seeded), whose rates are not those of a trained codec.

Usage: ``python scripts/bench_coding.py [--ckpt inference.ckpt] [--symbols 4194304]``
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from hific_lit import HiFiC
from hific_lit.entropy import GaussianConditional
from hific_lit.entropy.coder import torchac_module
from hific_lit.io.checkpoint import load_inference_checkpoint

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "stereo_motorcycle", "hubble_deep_field")
OUTPUT = Path("outputs/bench/coding.json")
DEMO_CHECKPOINTS = (Path("outputs/demo/gan/inference.ckpt"), Path("outputs/demo/base/inference.ckpt"))


def synthetic_latents(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(y, mu, sigma) with sigma log-uniform in [0.11, 16] and y ~ N(mu, sigma^2)."""
    g = torch.Generator().manual_seed(seed)
    sigma = torch.exp(torch.empty(n).uniform_(math.log(0.11), math.log(16.0), generator=g))
    mu = torch.randn(n, generator=g) * 3
    return mu + sigma * torch.randn(n, generator=g), mu, sigma


def encode(y: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, conditional: GaussianConditional) -> bytes:
    return conditional.compress(y, conditional.indexes(sigma), mu)


def decode(data: bytes, mu: torch.Tensor, sigma: torch.Tensor, conditional: GaussianConditional) -> torch.Tensor:
    return conditional.decompress(data, conditional.indexes(sigma), mu)


def best_time(fn: Callable[[], object], repeats: int) -> tuple[float, float, Any]:
    """Best wall-clock and best process CPU time of ``repeats`` calls, and the last result."""
    wall = cpu = math.inf
    result = None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        wall, cpu = min(wall, time.perf_counter() - start), min(cpu, time.process_time() - start_cpu)
    return wall, cpu, result


def latent_model() -> GaussianConditional:
    conditional = GaussianConditional()
    conditional.update()
    return conditional


def bench_throughput(n: int, repeats: int, threads: int) -> dict:
    """Encode and decode throughput with ``threads`` torch threads (the coder itself is sequential)."""
    torchac_module()
    default_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    conditional = latent_model()
    y, mu, sigma = synthetic_latents(n)
    t_enc, cpu_enc, data = best_time(lambda: encode(y, mu, sigma, conditional), repeats)
    t_dec, cpu_dec, y_hat = best_time(lambda: decode(data, mu, sigma, conditional), repeats)
    torch.set_num_threads(default_threads)
    expected = conditional.dequantize(conditional.symbols(y, mu), mu)
    p = conditional.likelihood(expected, mu, sigma)
    bits = -torch.log2(p).sum().item()
    return {
        "torch_threads": threads,
        "symbols": n,
        "encode_msym_per_s": round(n / t_enc / 1e6, 3),
        "decode_msym_per_s": round(n / t_dec / 1e6, 3),
        "encode_s": round(t_enc, 4),
        "decode_s": round(t_dec, 4),
        "encode_msym_per_cpu_s": round(n / cpu_enc / 1e6, 3),
        "decode_msym_per_cpu_s": round(n / cpu_dec / 1e6, 3),
        "bytes": len(data),
        "theoretical_bytes": round(bits / 8, 1),
        "overhead_ratio": round(len(data) / (bits / 8), 5),
        "exact": bool(torch.equal(y_hat, expected)),
    }


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))


def bench_memory(n: int, stage: str) -> float:
    """Peak extra resident MiB of the ``stage`` ("encode" or "decode") of ``n`` symbols, sigma up to 256.

    Resets the kernel's peak-RSS mark (Linux ``/proc/self/clear_refs``) once the inputs exist and
    freed memory went back to the system (glibc ``malloc_trim``), so the peak counts only what the
    stage allocates, for decoding including the decoded y_hat (4 bytes per symbol). torchac is
    imported first: a one-time cost of the process, not of coding.
    """
    torchac_module()
    conditional = latent_model()
    g = torch.Generator().manual_seed(1)
    sigma = torch.exp(torch.empty(n).uniform_(math.log(0.11), math.log(256.0), generator=g))
    mu = torch.zeros(n)
    y = sigma * torch.randn(n, generator=g)
    data = encode(y, mu, sigma, conditional) if stage == "decode" else b""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _rss_kib("VmRSS:")
    if stage == "encode":
        encode(y, mu, sigma, conditional)
    else:
        decode(data, mu, sigma, conditional)
    return round((_rss_kib("VmHWM:") - base) / 1024, 1)


def memory_in_fresh_processes(n: int) -> dict:
    """:func:`bench_memory` of each stage in its own spawned process, so earlier work cannot hide a peak."""
    result: dict = {"symbols": n, "sigma_range": [0.11, 256.0]}
    for stage in ("encode", "decode"):
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            result[f"{stage}_peak_extra_mib"] = pool.apply(bench_memory, (n, stage))
    return result


def photo(name: str) -> torch.Tensor:
    from skimage import data

    pixels = getattr(data, name)()
    if name == "stereo_motorcycle":
        pixels = pixels[0]
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).float().div(255.0)


def bench_photos(model: HiFiC) -> list[dict]:
    rows = []
    for name in tqdm(PHOTOS, desc="photos", unit="photo"):
        x = photo(name)
        start = time.perf_counter()
        encoded = model.compress(x)
        t_enc = time.perf_counter() - start
        start = time.perf_counter()
        model.decompress_latent(encoded)  # raises unless every symbol decodes exactly (the streams' CRC32)
        t_dec = time.perf_counter() - start
        pixels = x.shape[-1] * x.shape[-2]
        bound = 1.01 * encoded.estimated_bits / 8 + 64
        rows.append(
            {
                "photo": name,
                "size": list(x.shape[-2:]),
                "file_bytes": len(encoded),
                "theoretical_bytes": round(encoded.estimated_bits / 8, 1),
                "bound_bytes": round(bound, 1),
                "within_bound": len(encoded) <= bound,
                "bpp_file": round(8 * len(encoded) / pixels, 5),
                "bpp_estimate": round(encoded.estimated_bits / pixels, 5),
                "symbols_crc_ok": True,
                "encode_s": round(t_enc, 3),
                "decode_latent_s": round(t_dec, 3),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", help="inference checkpoint for the photos (default: make demo's, else untrained)")
    parser.add_argument("--symbols", type=int, default=1 << 22, help="symbols in the throughput test")
    parser.add_argument("--memory-symbols", type=int, default=1 << 24, help="symbols in the memory test")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (best is kept)")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="JSON output path")
    args = parser.parse_args()

    ckpt = args.ckpt or next((str(p) for p in DEMO_CHECKPOINTS if p.is_file()), None)
    if ckpt:
        model, model_name = load_inference_checkpoint(ckpt), f"checkpoint {ckpt}"
    else:
        torch.manual_seed(0)
        model = HiFiC.from_preset("small").eval()
        model.update()
        model_name = "untrained small preset (seed 0): rates are not those of a trained codec"
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_1min_at_start": round(os.getloadavg()[0], 2),
        },
        "throughput": bench_throughput(args.symbols, args.repeats, threads=1),
        "throughput_default_threads": bench_throughput(args.symbols, args.repeats, threads=torch.get_num_threads()),
        "memory": memory_in_fresh_processes(args.memory_symbols),
        "model": model_name,
        "photos": bench_photos(model),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    t = result["throughput"]
    print(
        f"coding: encode {t['encode_msym_per_s']} Msym/s, decode {t['decode_msym_per_s']} Msym/s wall-clock "
        f"({t['encode_msym_per_cpu_s']} / {t['decode_msym_per_cpu_s']} per CPU-second; load average "
        f"{result['machine']['load_average_1min_at_start']}); {t['symbols']} symbols, exact={t['exact']}, "
        f"bytes/theory {t['overhead_ratio']}"
    )
    m = result["memory"]
    print(
        f"  memory: {m['symbols']} symbols, sigma up to 256: encode +{m['encode_peak_extra_mib']} MiB, "
        f"decode +{m['decode_peak_extra_mib']} MiB peak resident"
    )
    for row in result["photos"]:
        print(
            f"  {row['photo']:>18}: {row['file_bytes']} B vs bound {row['bound_bytes']} B "
            f"(theory {row['theoretical_bytes']} B) within={row['within_bound']} crc_ok={row['symbols_crc_ok']}"
        )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
