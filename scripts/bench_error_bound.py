"""The error bound on real photos: max |error| <= K on every pixel, the rate against library codecs at the same K,
and which decoding settings reproduce x_hat exactly (docs/error-bound.md).

Usage::

    python scripts/bench_error_bound.py --ckpt outputs/demo/gan/bounded.ckpt   # from scripts/train_residual.py

Photos, each shrunk (Lanczos) to a shorter side of 512 as the demo model trains: the held-out set is
the 12 photos of Debian's ``mate-backgrounds`` (``/usr/share/backgrounds/mate/nature``, trained on by
neither the demo model nor the residual coder) and scikit-image's astronaut (the demo's validation
photo); the bound is checked on those 13 and on the 7 other bundled photos (20 in all). For each photo
and K: the error-bounded .hfc file (``compress(max_error=K)``, its real bytes), decoded by ``decompress`` and
compared with the original on every pixel; the library
codecs of :mod:`hific_lit.eval.lossless` on the same photo, each decoded and measured; and JPEG-XL
(lossless) on the same quantized residual (``q mod 256`` as an 8-bit image), the library alternative
to the learned residual model. Part 2 decodes photos under each setting and compares x_hat with the
reference decoding, and decodes an error-bounded file with g_s in bfloat16 (refused or not). Writes
``outputs/bench/error_bound.json`` and prints a summary.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
import zlib
from pathlib import Path

import numpy as np
import torch

from hific_lit.data.sample import (
    SAMPLE_TRAIN_PHOTOS,
    SAMPLE_VAL_PHOTO,
    expand_photos,
    sample_photo_path,
    shrink,
    upright,
)
from hific_lit.entropy.residual import quantize_residual
from hific_lit.entropy.residual_section import XHatMismatchError
from hific_lit.errors import BitstreamError
from hific_lit.eval.lossless import bounded_encodings, imagecodecs_module
from hific_lit.io.checkpoint import load_inference_checkpoint
from hific_lit.io.images import open_image, pil_to_tensor

HELD_OUT = "/usr/share/backgrounds/mate/nature/*.jpg"
OUTPUT = Path("outputs/bench/error_bound.json")
SHORT_SIDE = 512
PARTS = ("ours", "library", "settings")
NEAR_CODECS = ("jpegls", "jpegxl-q")
"""At K >= 1 (webp-q, slower, measured above JPEG-XL's quantized pixels on the astronaut, is left out)."""


def load_photo(path: Path) -> torch.Tensor:
    """(3, H, W) uint8, upright, shrunk to a shorter side of 512."""
    return pil_to_tensor(shrink(upright(open_image(path)), SHORT_SIDE), uint8=True)


def residual_with_jpegxl(x: torch.Tensor, x_hat: torch.Tensor, k: int) -> int | None:
    """Bytes of JPEG-XL (lossless) coding ``q mod 256`` as an 8-bit RGB image (q decodes from it given x_hat)."""
    ic = imagecodecs_module()
    if ic is None:
        return None
    q = quantize_residual(x, x_hat, k).permute(1, 2, 0).numpy()
    return len(ic.jpegxl_encode(np.ascontiguousarray((q % 256).astype(np.uint8)), lossless=True, effort=7))


def measure_photo(model, name: str, x: torch.Tensor, max_errors: list[int], held_out: bool, parts: set) -> dict:
    """What ``parts`` measure on one photo: ``ours`` (the error-bounded files, decoded and checked), ``library``
    (the library codecs and JPEG-XL on the same residual, held-out photos only)."""
    pixels = x.shape[1] * x.shape[2]
    with torch.no_grad():
        hfc = model.compress(x)
        x_hat = model.decompress(hfc, uint8=True)[0]
    record = {"photo": name, "size": list(x.shape[1:]), "held_out": held_out, "hfc_bpp": 8 * len(hfc) / pixels}
    record["psnr"] = float(10 * torch.log10(255**2 / ((x.double() - x_hat.double()) ** 2).mean()))
    library = "library" in parts and held_out
    lossless = {e.codec: e for e in bounded_encodings(x.permute(1, 2, 0).numpy(), 0)} if library else {}
    for k in max_errors:
        entry = record[f"K={k}"] = {}
        if "ours" in parts:
            start = time.perf_counter()
            with torch.no_grad():
                data = model.compress(x, max_error=k)
                encode_s = time.perf_counter() - start
                decoded = model.decompress(data, uint8=True)[0]
            entry.update(
                total_bpp=8 * len(data) / pixels,
                residual_share=1 - len(hfc) / len(data),
                max_error=int((decoded.int() - x.int()).abs().max()),
                encode_s=encode_s,
                decode_s=time.perf_counter() - start - encode_s,
            )
            print(f"  {name} K={k}: {entry['total_bpp']:.3f} bpp, max error {entry['max_error']}", flush=True)
        if library:
            near = bounded_encodings(x.permute(1, 2, 0).numpy(), k, NEAR_CODECS) if k else []
            found = lossless | {e.codec: e for e in near}
            entry["library_bpp"] = {c: e.bpp(*x.shape[1:]) for c, e in found.items()}
            entry["library_max_error"] = {c: e.measured_error for c, e in found.items()}
            jxl = residual_with_jpegxl(x, x_hat, k)
            if jxl is not None:
                entry["residual_jpegxl_bpp"] = 8 * jxl / pixels
    return record


def combine(records: list[dict]) -> list[dict]:
    """Records of the same photos from several runs (parts) as one record per photo."""
    merged: dict[str, dict] = {}
    for record in records:
        into = merged.setdefault(record["photo"], {})
        for key, value in record.items():
            into[key] = {**into.get(key, {}), **value} if isinstance(value, dict) else value
    return list(merged.values())


def mismatch_refused(model, x: torch.Tensor) -> str:
    """Decode an error-bounded file (K = 1) with g_s in bfloat16: what happens."""
    data = model.compress(x, max_error=1)
    other = copy.deepcopy(model)
    other.g_s.to(torch.bfloat16)
    try:
        decoded = other.decompress(data, uint8=True)[0]
    except XHatMismatchError as exc:
        return f"refused: {exc}"
    return f"decoded (x_hat identical), max error {int((decoded.int() - x.int()).abs().max())}"


def decoding_settings(model, x: torch.Tensor) -> dict[str, bool]:
    """Whether x_hat (8 bits, as decompress writes it) is the reference decoding's under each setting."""
    with torch.no_grad():
        hfc = model.compress(x)

        def crc(m, **kw) -> int:
            return zlib.crc32(m.decompress(hfc, uint8=True, **kw).numpy().tobytes())

        reference = crc(model)
        found: dict[str, bool] = {}
        threads = torch.get_num_threads()
        for count in (1, 2):
            torch.set_num_threads(count)
            found[f"{count} threads"] = crc(model) == reference
        torch.set_num_threads(threads)
        with torch.backends.mkldnn.flags(enabled=False):
            found["oneDNN off"] = crc(model) == reference
        found["channels_last"] = crc(copy.deepcopy(model).to(memory_format=torch.channels_last)) == reference
        for budget in (16 << 20, 64 << 20, 384 << 20):
            found[f"tiles, max_memory {budget >> 20}M"] = crc(model, max_memory=budget) == reference
        for name, dtype in (("float64", torch.float64), ("bfloat16", torch.bfloat16), ("float16", torch.float16)):
            other = copy.deepcopy(model).double() if dtype == torch.float64 else copy.deepcopy(model)
            other.g_s.to(dtype)
            try:
                found[f"g_s in {name}"] = crc(other) == reference
            except (RuntimeError, BitstreamError) as exc:
                found[f"g_s in {name}"] = f"fails: {str(exc).splitlines()[0][:100]}"
    return found


def summarize(records: list[dict], max_errors: list[int]) -> dict:
    """Mean bpp per K over the held-out photos: ours, each library codec, the best of them."""
    held = [r for r in records if r["held_out"]]
    summary = {}
    for k in max_errors:
        entries = [r[f"K={k}"] for r in held]
        codecs = sorted({c for e in entries for c, err in e["library_max_error"].items() if err <= k})
        library = {c: statistics.mean(e["library_bpp"][c] for e in entries) for c in codecs}
        ours = statistics.mean(e["total_bpp"] for e in entries)
        share = statistics.mean(e["residual_share"] for e in entries)
        best = min(library, key=library.get)
        summary[f"K={k}"] = {
            "ours_bpp": ours,
            "residual_share": share,
            "hfc_bpp": statistics.mean(r["hfc_bpp"] for r in held),
            "residual_jpegxl_plus_hfc_bpp": statistics.mean(
                e["residual_jpegxl_bpp"] + r["hfc_bpp"] for e, r in zip(entries, held, strict=True)
            )
            if all("residual_jpegxl_bpp" in e for e in entries)
            else None,
            "library_bpp": library,
            "best_library": best,
            "ours_vs_best": ours / library[best] - 1,
            "ours_vs_webp": ours / library["webp"] - 1 if "webp" in library else None,
            "max_error_all_photos": max(r[f"K={k}"]["max_error"] for r in records),
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", default="outputs/demo/gan/bounded.ckpt", help="a checkpoint with a residual coder")
    parser.add_argument("--max-errors", type=int, nargs="+", default=[0, 1, 2, 4])
    parser.add_argument("--held-out", default=HELD_OUT)
    parser.add_argument("--settings-photos", type=int, default=2, help="photos decoded under each setting (part 2)")
    parser.add_argument(
        "--parts",
        nargs="*",
        default=list(PARTS),
        choices=PARTS,
        metavar="PART",
        help="what to measure (none: combine only)",
    )
    parser.add_argument("--combine", nargs="*", type=Path, default=[], help="also the records of earlier runs")
    parser.add_argument("--out", type=Path, default=OUTPUT)
    args = parser.parse_args()
    parts = set(args.parts)
    model = load_inference_checkpoint(args.ckpt)
    photos = [(p.stem, p, True) for p in expand_photos([args.held_out])]
    photos.append((SAMPLE_VAL_PHOTO, sample_photo_path(SAMPLE_VAL_PHOTO), True))
    photos += [(name, sample_photo_path(name), False) for name in SAMPLE_TRAIN_PHOTOS]
    result = {"ckpt": args.ckpt, "parts": sorted(parts), "photos": []}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name, path, held_out in photos if parts & {"ours", "library"} else []:
        result["photos"].append(measure_photo(model, name, load_photo(path), args.max_errors, held_out, parts))
        args.out.write_text(json.dumps(result, indent=1))  # after each photo: a later failure keeps these
    if "settings" in parts:
        chosen = photos[: args.settings_photos]
        result["settings"] = {name: decoding_settings(model, load_photo(path)) for name, path, _ in chosen}
        result["bf16_decode"] = mismatch_refused(model, load_photo(photos[0][1]))
        for name, found in result["settings"].items():
            print(f"x_hat identical, {name}: " + ", ".join(f"{s}: {v}" for s, v in found.items()))
        print(f"bounded file decoded with g_s in bfloat16: {result['bf16_decode']}")
    earlier = [json.loads(path.read_text())["photos"] for path in args.combine]
    records = combine([r for run in [*earlier, result["photos"]] for r in run])
    if all("total_bpp" in r.get(f"K={k}", {}) and "library_bpp" in r.get(f"K={k}", {}) for r in records if r["held_out"]
           for k in args.max_errors) and any(r["held_out"] for r in records):  # fmt: skip
        result["summary"] = summarize(records, args.max_errors)
        for k, s in result["summary"].items():
            library = ", ".join(f"{c} {v:.3f}" for c, v in sorted(s["library_bpp"].items(), key=lambda kv: kv[1]))
            print(
                f"{k}: ours {s['ours_bpp']:.3f} bpp (HiFiC {s['hfc_bpp']:.3f}), max error {s['max_error_all_photos']}"
            )
            print(f"   library: {library}; ours vs best ({s['best_library']}) {100 * s['ours_vs_best']:+.1f} %")
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
