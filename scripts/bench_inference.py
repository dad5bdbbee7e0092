"""Inference speed and memory of the full HiFiC model, against this machine's own convolution limit.

Writes ``outputs/bench/inference.json`` and prints a table. In one run it measures:

1. the machine's convolution throughput (GFLOP/s) on a 960-channel 3x3 layer at latent resolution
   of a 768x512 image, in float32 and bfloat16 (best of ``--repeats``);
2. ``compress`` and ``decompress`` of the full ``hific`` model (random weights, tables built) at each
   ``--sizes`` in ``fp32`` and ``auto`` precision: best of ``--repeats`` after a warm-up, each in a
   fresh process that also reports its peak resident memory (VmHWM, read by the process itself);
3. the generator alone, as a multiple of its FLOP count over the measured throughput of its precision
   (1.0 would be every FLOP at the 960-channel layer's speed);
4. ``hific compress`` and ``hific decompress`` of a ``--large`` square PNG (default 12000, 144 MP) with
   the ``small`` model, each in a fresh process, at the default ``--max-memory`` (auto: 128M there) and at
   384M: peak resident memory next to the issue's goal (1 GB + the image as 8-bit RGB + the weights), and
   the time;
5. with a trained ``--ckpt`` (default: the ``make demo`` model), file size and PSNR of ``auto`` against
   ``fp32`` on scikit-image photos, and the PSNR of each file decoded in the other precision.

Usage: ``python scripts/bench_inference.py [--sizes 768x512 1024x1024] [--repeats 3] [--threads N] [--large 12000]``
(2 CPU cores: ~25 minutes; ``--large 0`` skips part 4, ~10 of them).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from measure import best_seconds, peak_rss_of_cli
from torch import nn

from hific_lit import HiFiC
from hific_lit.io.checkpoint import save_inference_checkpoint
from hific_lit.runtime.precision import cpu_has_native_bf16, resolve_precision, set_transform_precision

OUTPUT = Path("outputs/bench/inference.json")
DEMO_CKPT = Path("outputs/demo/gan/inference.ckpt")
QUALITY_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def conv_flops(net: nn.Module, shape: tuple[int, ...], dtype: torch.dtype) -> int:
    """Multiply-add FLOPs (2 per MAC) of every convolution of ``net`` on an input of ``shape``."""
    total = 0

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1]
        pixels = inputs[0].shape[-2] * inputs[0].shape[-1] if isinstance(module, nn.ConvTranspose2d) else None
        pixels = pixels or output.shape[-2] * output.shape[-1]
        total += 2 * module.in_channels * module.out_channels * k * pixels // module.groups

    hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    with torch.inference_mode():
        net(torch.zeros(shape, dtype=dtype))
    for hook in hooks:
        hook.remove()
    return total


def conv_throughput(dtype: torch.dtype, repeats: int, height: int = 48, width: int = 32) -> float:
    """GFLOP/s of a 960 -> 960 3x3 convolution on a (1, 960, height, width) input."""
    conv = nn.Conv2d(960, 960, 3, padding=1).to(dtype)
    x = torch.randn(1, 960, height, width, dtype=dtype)
    with torch.inference_mode():
        seconds = best_seconds(lambda: conv(x), repeats)
    return conv_flops(conv, tuple(x.shape), dtype) / seconds / 1e9


_CHILD = """
import json, sys, time, torch
from hific_lit.io.checkpoint import load_inference_checkpoint
from hific_lit.io.images import load_image


ckpt, op, path, out, precision, repeats, threads = sys.argv[1:]
torch.set_num_threads(int(threads))
model = load_inference_checkpoint(ckpt, precision=precision)
if op == "compress":
    x = load_image(path, uint8=True)
    run = lambda: model.compress(x)
else:
    data = open(path, "rb").read()
    run = lambda: model.decompress(data, uint8=True)
result = run()
best = float("inf")
for _ in range(int(repeats)):
    start = time.perf_counter()
    result = run()
    best = min(best, time.perf_counter() - start)
if op == "compress":
    open(out, "wb").write(result if isinstance(result, bytes) else result.data)
with open("/proc/self/status") as f:
    peak = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))
print(json.dumps({"seconds": best, "peak_rss_bytes": peak}))
"""


def in_fresh_process(args: list[str]) -> dict:
    """Run the measuring child (``_CHILD``) with ``args``; its JSON report."""
    done = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child {args[1:3]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_image(height: int, width: int, path: Path) -> None:
    """A real photo (scikit-image's retina, resized) of ``height`` x ``width`` as PNG."""
    from PIL import Image
    from skimage import data

    Image.fromarray(data.retina()).resize((width, height), Image.Resampling.BICUBIC).save(path)


def bench_codec(ckpt: Path, size: tuple[int, int], repeats: int, threads: int, tmp: Path) -> dict:
    """compress / decompress at ``size`` in fp32 and auto, each in a fresh process."""
    height, width = size
    image = tmp / f"photo_{height}x{width}.png"
    test_image(height, width, image)
    rows = {}
    for precision in ("fp32", "auto"):
        hfc = tmp / f"photo_{height}x{width}_{precision}.hfc"
        common = [str(repeats), str(threads)]
        compress = in_fresh_process([str(ckpt), "compress", str(image), str(hfc), precision, *common])
        decompress = in_fresh_process([str(ckpt), "decompress", str(hfc), "-", precision, *common])
        rows[precision] = {"compress": compress, "decompress": decompress, "file_bytes": hfc.stat().st_size}
        print(
            f"  {height}x{width} {precision:>4}: compress {compress['seconds']:.2f} s "
            f"({compress['peak_rss_bytes'] / 2**30:.2f} GiB), decompress {decompress['seconds']:.2f} s "
            f"({decompress['peak_rss_bytes'] / 2**30:.2f} GiB), {hfc.stat().st_size} bytes"
        )
    rows["auto_over_fp32"] = {
        op: round(rows["auto"][op]["seconds"] / rows["fp32"][op]["seconds"], 3) for op in ("compress", "decompress")
    }
    return rows


LARGE_BUDGETS = (None, "384M")
"""``--max-memory`` of part 4's runs: the default (``auto``: 128M at 16 MP and more), and 384M (the default for
smaller images)."""


def bench_large(side: int, tmp: Path) -> dict:
    """Peak RSS and time of ``hific compress`` and ``decompress`` on a ``side``-square photo with the small model, at
    each of :data:`LARGE_BUDGETS`, next to the issue's goal: 1 GB + the 8-bit image + the model's weights."""
    image, ckpt = tmp / "large.png", tmp / "small.ckpt"
    test_image(side, side, image)
    torch.manual_seed(0)
    model = HiFiC.from_preset("small")
    save_inference_checkpoint(model, ckpt)
    image_bytes = 3 * side * side
    goal = 10**9 + image_bytes + sum(p.numel() * p.element_size() for p in model.parameters())
    row: dict[str, object] = {"side": side, "image_uint8_bytes": image_bytes, "goal_bytes": goal}
    files = []
    for budget in LARGE_BUDGETS:
        hfc, decoded = tmp / f"large_{budget}.hfc", tmp / f"large_{budget}.decoded.png"
        common = ["--ckpt", str(ckpt), "-q"] + ([] if budget is None else ["--max-memory", budget])
        peak, seconds = peak_rss_of_cli(["compress", str(image), "-o", str(hfc), "--max-pixels", str(side**2), *common])
        decode_peak, decode_seconds = peak_rss_of_cli(["decompress", str(hfc), "-o", str(decoded), *common])
        files.append(hfc.read_bytes())
        key = "" if budget is None else f"max_memory_{budget}_"
        row.update({f"{key}peak_rss_bytes": peak, f"{key}seconds": round(seconds, 1)})
        row.update({f"{key}decompress_peak_rss_bytes": decode_peak})
        row[f"{key}decompress_seconds"] = round(decode_seconds, 1)
        print(
            f"  {side}x{side}, small model, --max-memory {budget or 'default'}: compress peak RSS {peak / 2**30:.2f} "
            f"GiB ({seconds:.0f} s), decompress {decode_peak / 2**30:.2f} GiB ({decode_seconds:.0f} s); goal "
            f"{goal / 2**30:.2f} GiB (1 GB + 8-bit image {image_bytes / 2**30:.2f} GiB + weights)"
        )
    row["same_file_at_every_budget"] = all(f == files[0] for f in files)
    return row


def bench_quality(ckpt: Path, photos: tuple[str, ...] = QUALITY_PHOTOS) -> dict:
    """Bytes and PSNR of fp32 and auto on real photos with a trained model; files decoded across precisions."""
    from skimage import data

    from hific_lit.io.checkpoint import load_inference_checkpoint
    from hific_lit.io.files import bits_per_pixel
    from hific_lit.training.losses import psnr

    models = {p: load_inference_checkpoint(ckpt, precision=p) for p in ("fp32", "auto")}
    rows = {}
    for name in photos:
        x = torch.from_numpy(getattr(data, name)()[..., :3].copy()).permute(2, 0, 1)
        files = {p: m.compress(x) for p, m in models.items()}
        row = {p: {"bytes": len(d), "bpp": bits_per_pixel(len(d), *x.shape[-2:])} for p, d in files.items()}
        for written, data_bytes in files.items():
            for reading, model in models.items():
                decoded = model.decompress(data_bytes)
                row[written][f"psnr_read_{reading}"] = float(psnr(x[None].float() / 255.0, decoded))
        row["bytes_change"] = row["auto"]["bytes"] / row["fp32"]["bytes"] - 1.0
        row["psnr_change_db"] = row["auto"]["psnr_read_auto"] - row["fp32"]["psnr_read_fp32"]
        rows[name] = row
        print(
            f"  {name}: fp32 {row['fp32']['bpp']:.3f} bpp {row['fp32']['psnr_read_fp32']:.2f} dB, auto "
            f"{row['auto']['bpp']:.3f} bpp {row['auto']['psnr_read_auto']:.2f} dB "
            f"({100 * row['bytes_change']:+.2f} % bytes, {row['psnr_change_db']:+.3f} dB)"
        )
    return rows


def bench_generator(model: HiFiC, size: tuple[int, int], throughput: dict[str, float], repeats: int) -> dict:
    """g_s alone at ``size`` per precision, as loading lays it out (channels_last): seconds, GFLOP, and
    seconds over the throughput bound."""
    shape = (1, model.arch.latent_channels, size[0] // 16, size[1] // 16)
    rows = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        set_transform_precision(model.g_a, model.g_s, dtype)
        g_s = model.g_s
        y_hat = torch.randn(shape, dtype=dtype)
        with torch.inference_mode():
            seconds = best_seconds(lambda g=g_s, y=y_hat: g(y), repeats)
        flops = conv_flops(g_s, shape, dtype)
        bound = flops / (throughput[name] * 1e9)
        rows[name] = {"seconds": seconds, "gflop": flops / 1e9, "over_bound": round(seconds / bound, 3)}
        print(f"  g_s {name}: {seconds:.2f} s for {flops / 1e9:.0f} GFLOP = {seconds / bound:.2f}x the bound")
    model.g_s.float()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["768x512", "1024x1024"], help="HEIGHTxWIDTH of test images")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--large", type=int, default=12000, help="side of the square image of part 4 (0: skip)")
    parser.add_argument("--ckpt", type=Path, default=DEMO_CKPT, help="trained inference checkpoint for part 5")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes]

    print(f"convolution throughput ({args.threads} threads)")
    throughput = {
        name: conv_throughput(dtype, 5) for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))
    }
    print("  " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in throughput.items()))
    report: dict[str, object] = {
        "threads": args.threads,
        "native_bf16_cpu": cpu_has_native_bf16(),
        "auto_precision": str(resolve_precision("auto")).removeprefix("torch."),
        "conv_gflops": {k: round(v, 1) for k, v in throughput.items()},
    }
    torch.manual_seed(0)
    model = HiFiC.from_preset("hific").eval()
    print("generator alone")
    report["generator"] = {f"{h}x{w}": bench_generator(model, (h, w), throughput, args.repeats) for h, w in sizes[:1]}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        ckpt = tmp / "hific.ckpt"
        save_inference_checkpoint(model, ckpt)
        del model
        print("codec in fresh processes")
        report["codec"] = {f"{h}x{w}": bench_codec(ckpt, (h, w), args.repeats, args.threads, tmp) for h, w in sizes}
        if args.large:
            print("a large image")
            report["large"] = bench_large(args.large, tmp)
    if args.ckpt.is_file():
        print(f"quality, {args.ckpt}")
        report["quality"] = {"ckpt": str(args.ckpt), "photos": bench_quality(args.ckpt)}
    else:
        print(f"quality: skipped, no trained checkpoint at {args.ckpt} (run make demo, or pass --ckpt)")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
