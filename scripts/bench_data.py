"""Benchmark the training data path: shard writing and loader throughput (images/s) per source.

    python scripts/bench_data.py [--images 96] [--crop 256] [--batch 8] [--workers 0 2]

Builds OpenImages-like inputs from scikit-image's photos (JPEG, quality 90, shorter side 768, varied
crops), writes them into shards with scripts/make_shards.py's code, then times each DataModule over
whole batches after one warm-up batch. Writes outputs/bench/data.json and prints a summary.
With workers=0 the transforms run in the main process on torch's intra-op threads; DataLoader
workers run single-threaded, which is what training uses.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from hific_lit.data import ImageFolderDataModule, SampleDataModule, WebDataModule
from hific_lit.data.sample import SAMPLE_FILES, load_sample_photo
from hific_lit.data.shard_writer import ShardSettings, write_shards
from hific_lit.io.files import atomic_write_bytes
from hific_lit.io.images import to_uint8

OUT = Path("outputs/bench/data.json")


def make_inputs(folder: Path, count: int) -> None:
    """``count`` JPEGs of about 1024x768: scikit-image photos upscaled, cropped at varied offsets, flipped."""
    photos = [Image.fromarray(to_uint8(load_sample_photo(name))) for name in SAMPLE_FILES]
    for i in range(count):
        photo = photos[i % len(photos)]
        scale = 768 / min(photo.size)
        big = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.Resampling.BICUBIC)
        left = (i * 37) % max(1, big.width - 768 + 1)
        crop = big.crop((left, 0, left + min(1024, big.width - left), 768))
        if i % 2:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        crop.save(folder / f"{i:05d}.jpg", quality=90)


def time_loader(loader, batches: int) -> dict:
    iterator = iter(loader)
    next(iterator)  # warm-up: worker start, first shuffle-buffer fill
    start, images = time.perf_counter(), 0
    for _ in range(batches):
        images += next(iterator).shape[0]
    seconds = time.perf_counter() - start
    return {"images": images, "seconds": round(seconds, 3), "images_per_s": round(images / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=96, help="generated input images (default: %(default)s)")
    parser.add_argument("--crop", type=int, default=256, help="crop size (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=8, help="batch size (default: %(default)s)")
    parser.add_argument("--batches", type=int, default=12, help="timed batches per loader (default: %(default)s)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="worker counts (default: 0 2)")
    args = parser.parse_args()
    torch.manual_seed(0)
    results: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
        "settings": vars(args),
        "loaders": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        src, shards = Path(tmp) / "src", Path(tmp) / "shards"
        src.mkdir()
        make_inputs(src, args.images)
        start = time.perf_counter()
        manifest = write_shards(src, shards, ShardSettings(max_count=16), workers=os.cpu_count() or 1, progress=False)
        seconds = time.perf_counter() - start
        results["make_shards"] = {
            "images": manifest["samples"],
            "shards": len(manifest["shards"]),
            "mb": round(manifest["bytes"] / 1e6, 1),
            "seconds": round(seconds, 2),
            "images_per_s": round(manifest["samples"] / seconds, 1),
        }
        common = {"batch_size": args.batch, "crop_size": args.crop}
        samples = args.batch * (args.batches + 1)
        for workers in args.workers:
            modules = {
                "webdataset": WebDataModule(
                    str(shards), num_workers=workers, batches_per_epoch=args.batches + 1, shuffle_buffer=64, **common
                ),
                "folder": ImageFolderDataModule(str(src), num_workers=workers, samples_per_epoch=samples, **common),
                "sample": SampleDataModule(num_workers=workers, samples_per_epoch=samples, **common),
            }
            for name, module in modules.items():
                module.setup("fit")
                results["loaders"][f"{name}/workers={workers}"] = time_loader(module.train_dataloader(), args.batches)
    atomic_write_bytes(OUT, json.dumps(results, indent=1).encode() + b"\n")
    ms = results["make_shards"]
    print(f"make_shards: {ms['images']} JPEGs ~1024x768 -> {ms['shards']} shards, {ms['images_per_s']} images/s")
    for name, r in results["loaders"].items():
        print(f"{name:24s} {r['images_per_s']:7.1f} images/s  ({args.crop}² crops, batch {args.batch})")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
