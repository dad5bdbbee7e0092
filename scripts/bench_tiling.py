"""Benchmark of tiled coding; writes outputs/bench/tiling.json.

1. Whole image vs tiles on a real photo (``--size`` square crop of scikit-image's retina photo,
   untrained seeded model of ``--arch``): file sizes, whether the bitstreams are identical, how
   many latent symbols differ, the largest reconstruction difference, and the time of compress and
   decompress each way (best of ``--repeats``), with the tile budget ``--max-memory``.
2. Peak resident memory (VmHWM, read by the process itself at exit) of ``hific compress`` and ``hific
   decompress`` run as subprocesses on a ``--rss-size`` square image with ``--max-memory``.
   By default (``--rss-blocks 1``) the checkpoint keeps only 1 of the generator's residual blocks:
   the arithmetic shrinks ~5x, the working memory does not (the trunk holds one block's activations
   at a time; its halo shrinks from 19 to 3 latent pixels, each tile still within the budget), and
   the left-out blocks' weights are added to the measured peak ("extrapolated").
3. The memory model: bytes per pixel counted on a probe tile, and the ratio of the resident set a
   whole-image g_a / g_s-upsampling pass grows by to the bytes counted for it (what
   ``MEMORY_SAFETY`` must cover), measured in a subprocess.

Usage: ``python scripts/bench_tiling.py [--arch hific] [--size 1024] [--rss-size 4000] [--rss-blocks 1]``
(hific on 2 CPU cores: ~15 minutes).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from measure import peak_rss_of_cli
from PIL import Image

from hific_lit import HiFiC
from hific_lit.io.checkpoint import save_inference_checkpoint
from hific_lit.models.hific.arch import arch_preset
from hific_lit.nn.padding import pad_to_multiple
from hific_lit.tiling import (
    DEFAULT_MAX_MEMORY,
    MEMORY_SAFETY,
    analysis_stage,
    bytes_per_pixel,
    format_bytes,
    parse_memory_budget,
    plan_tiles,
    synthesis_stages,
)

OUTPUT = Path("outputs/bench/tiling.json")


def photo(side: int) -> torch.Tensor:
    """A ``side`` x ``side`` crop of scikit-image's retina photo (1411 x 1411), resized when larger."""
    from skimage import data

    image = Image.fromarray(data.retina())
    if side > image.width:
        image = image.resize((side, side), Image.Resampling.LANCZOS)
    left = (image.width - side) // 2
    image = image.crop((left, left, left + side, left + side))
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float().div(255.0)[None]


def tile_counts(model: HiFiC, x: torch.Tensor, budget: int | None) -> dict[str, int]:
    """How many tiles each stage uses on ``x`` under ``budget``."""
    xp = pad_to_multiple(x)
    latent = (1, model.arch.latent_channels, xp.shape[-2] // 16, xp.shape[-1] // 16)
    trunk, up = synthesis_stages(model.g_s)
    hidden = (1, model.arch.generator_widths[0], *latent[-2:])
    shapes = {"g_a": (analysis_stage(model.g_a, True), xp.shape), "g_s_trunk": (trunk, latent), "g_s_up": (up, hidden)}
    return {
        name: plan_tiles(stage, torch.Size(shape), x.dtype, budget).count for name, (stage, shape) in shapes.items()
    }


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
"""Wall time, and CPU time of this process (steadier when other jobs share the cores)."""


def compare(model: HiFiC, x: torch.Tensor, budget: int, repeats: int) -> dict[str, object]:
    """Whole-image vs tiled compress and decompress of ``x``, interleaved, best of ``repeats`` each."""
    modes = {"whole": None, "tiled": budget}
    best = {(m, step, clock): float("inf") for m in modes for step in ("compress", "decompress") for clock in CLOCKS}
    runs: dict[str, dict] = {}
    for _ in range(repeats):
        for name, max_memory in modes.items():
            marks = [{c: clock() for c, clock in CLOCKS.items()}]
            encoded = model.compress(x, max_memory=max_memory)
            marks.append({c: clock() for c, clock in CLOCKS.items()})
            runs[name] = {"encoded": encoded, "decoded": model.decompress(encoded, max_memory=max_memory)}
            marks.append({c: clock() for c, clock in CLOCKS.items()})
            for i, step in enumerate(("compress", "decompress")):
                for c in CLOCKS:
                    best[name, step, c] = min(best[name, step, c], marks[i + 1][c] - marks[i][c])
            print(
                f"  {name}: compress {marks[1]['wall'] - marks[0]['wall']:.2f} s, decompress "
                f"{marks[2]['wall'] - marks[1]['wall']:.2f} s (wall)"
            )
    whole, tiled = runs["whole"], runs["tiled"]
    size_w, size_t = len(whole["encoded"]), len(tiled["encoded"])
    y_hat_w, y_hat_t = (model.decompress_latent(run["encoded"])[1] for run in (whole, tiled))

    def overhead(steps: tuple[str, ...], clock: str) -> float:
        cost = {m: sum(best[m, step, clock] for step in steps) for m in modes}
        return round(100 * (cost["tiled"] / cost["whole"] - 1), 2)

    steps = {"compress": ("compress",), "decompress": ("decompress",), "round_trip": ("compress", "decompress")}
    return {
        "tiles": tile_counts(model, x, budget),
        "bytes_whole": size_w,
        "bytes_tiled": size_t,
        "bitstreams_identical": whole["encoded"] == tiled["encoded"],
        "file_size_diff_percent": round(100 * abs(size_t - size_w) / size_w, 4),
        "bpp_whole": round(8 * size_w / x[0, 0].numel(), 5),
        "latent_symbols": y_hat_w.numel(),
        "latent_symbols_differing": int((y_hat_w != y_hat_t).sum()),
        "reconstruction_max_abs_diff": float((whole["decoded"] - tiled["decoded"]).abs().max()),
        "best_seconds": {f"{m}_{step}_{c}": round(v, 3) for (m, step, c), v in best.items()},
        "overhead_percent": {f"{k}_{c}": overhead(v, c) for k, v in steps.items() for c in CLOCKS},
    }


def peak_rss(arch_name: str, side: int, blocks: int | None, budget: str) -> dict[str, object]:
    """Peak RSS of ``hific compress`` / ``decompress`` on a ``side``-square photo, in subprocesses."""
    full = arch_preset(arch_name)
    arch = full if blocks is None else dataclasses.replace(full, residual_blocks=blocks)
    torch.manual_seed(0)
    model = HiFiC(arch).eval()
    model.update()
    block_params = sum(p.numel() for p in model.g_s.blocks[0].parameters()) if arch.residual_blocks else 0
    missing_weights = (full.residual_blocks - arch.residual_blocks) * block_params * 4
    result: dict[str, object] = {"side": side, "max_memory": budget, "residual_blocks_run": arch.residual_blocks}
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, image, hfc, out = (Path(tmp) / n for n in ("model.ckpt", "photo.png", "photo.hfc", "decoded.png"))
        save_inference_checkpoint(model, ckpt)
        del model
        Image.fromarray(photo(side)[0].mul(255).round().byte().permute(1, 2, 0).numpy()).save(image)
        common = ["--ckpt", str(ckpt), "--max-memory", budget, "-q"]
        for name, args in (
            ("compress", ["compress", str(image), "-o", str(hfc), *common]),
            ("decompress", ["decompress", str(hfc), "-o", str(out), *common]),
        ):
            peak, seconds = peak_rss_of_cli(args)
            result[name] = {
                "peak_rss_bytes": peak,
                "extrapolated_peak_rss_bytes": peak + missing_weights,
                "seconds": round(seconds, 1),
            }
            print(
                f"  {name}: peak RSS {format_bytes(peak)} (+{format_bytes(missing_weights)} weights), {seconds:.0f} s"
            )
    return result


_CALIBRATE = """
import json, sys, torch
from hific_lit import HiFiC
from hific_lit.tiling import activation_peak_bytes

def peak_rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))

model = HiFiC.from_preset(sys.argv[1]).eval()
side = int(sys.argv[2])
hidden = (1, model.arch.generator_widths[0], side // 16, side // 16)
runs = {"g_a": (model.g_a, (1, 3, side, side)), "g_s_up": (model.g_s.up, hidden)}
ratios = {}
for name, (net, shape) in runs.items():
    counted = activation_peak_bytes(net, shape, torch.float32)
    x = torch.rand(shape)
    with torch.no_grad():
        net(x[..., : shape[-2] // 8, : shape[-1] // 8])
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = peak_rss()
        net(x)
    ratios[name] = round((peak_rss() - base) / counted, 3)
print(json.dumps(ratios))
"""


def memory_model(model: HiFiC, arch: str, side: int = 512) -> dict[str, object]:
    """Counted bytes per input pixel of each stage, and resident growth / counted bytes on a whole pass."""
    trunk, up = synthesis_stages(model.g_s)
    stages = {"g_a": (analysis_stage(model.g_a), 3), "g_s_trunk": (trunk, model.arch.latent_channels)}
    stages["g_s_up"] = (up, model.arch.generator_widths[0])
    counted = {
        name: round(bytes_per_pixel(stage, 1, ch, torch.float32) / MEMORY_SAFETY, 1)
        for name, (stage, ch) in stages.items()
    }
    child = subprocess.run(
        [sys.executable, "-c", _CALIBRATE, arch, str(side)], capture_output=True, text=True, check=True
    )
    ratios = json.loads(child.stdout.strip().splitlines()[-1])
    return {"bytes_per_input_pixel_counted": counted, "rss_growth_over_counted": ratios, "safety": MEMORY_SAFETY}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="hific", help="architecture preset (default: hific)")
    parser.add_argument(
        "--size", type=int, default=1024, help="side of the photo for whole vs tiled (default 1024); 0 skips it"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats, interleaved, best kept (default 3)")
    parser.add_argument(
        "--max-memory", default=f"{DEFAULT_MAX_MEMORY // 2**20}M", help="tile budget (default: hific's default)"
    )
    parser.add_argument("--rss-size", type=int, default=4000, help="side of the image for peak RSS; 0 skips it")
    parser.add_argument(
        "--rss-blocks",
        type=int,
        default=1,
        help="residual blocks kept for the peak-RSS runs, the rest's weights added (default 1; the preset's "
        "count measures directly, ~10x the arithmetic)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"where the JSON goes (default {OUTPUT})")
    args = parser.parse_args()
    budget = parse_memory_budget(args.max_memory)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = HiFiC.from_preset(args.arch).eval()
    model.update()
    report: dict[str, object] = {"arch": args.arch, "threads": torch.get_num_threads(), "max_memory": budget}
    start = time.perf_counter()
    model.decompress(model.compress(torch.rand(1, 3, 64, 64)))  # warm up kernels; measures the probes once
    report["warm_up_seconds"] = round(time.perf_counter() - start, 2)
    report["memory_model"] = memory_model(model, args.arch)
    print(f"memory model: {report['memory_model']}")
    if args.size:
        print(f"whole vs tiled, {args.arch}, {args.size}x{args.size} photo, budget {format_bytes(budget)}:")
        report["compare"] = c = compare(model, photo(args.size), budget, args.repeats)
        print(
            f"tiling: identical bitstreams {c['bitstreams_identical']}, {c['latent_symbols_differing']} of "
            f"{c['latent_symbols']} symbols differ, max |x_hat diff| {c['reconstruction_max_abs_diff']:.2e}, "
            f"overhead {c['overhead_percent']} %"
        )
    del model
    if args.rss_size:
        print(f"peak RSS of hific compress/decompress at {args.rss_size}x{args.rss_size}:")
        report["peak_rss"] = peak_rss(args.arch, args.rss_size, args.rss_blocks, args.max_memory)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"-> {args.output}")


if __name__ == "__main__":
    main()
