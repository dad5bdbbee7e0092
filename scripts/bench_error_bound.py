"""The error bound on real photos: max |error| <= K on every pixel, the rate against library codecs at the same K,
and which decoding settings reproduce x_hat exactly (docs/error-bound.md).

Usage::

    python scripts/bench_error_bound.py --ckpt outputs/demo/gan/inference.ckpt --coder outputs/residual/demo.pt

Photos, each shrunk (Lanczos) to a shorter side of 512 as the demo model trains: the held-out set is
the 12 photos of Debian's ``mate-backgrounds`` (``/usr/share/backgrounds/mate/nature``, trained on by
neither the demo model nor the residual coder) and scikit-image's astronaut (the demo's validation
photo); the bound is checked on those 13 and on the 7 other bundled photos (20 in all). For each photo
and K: the model's .hfc (its real bytes), x_hat as decompress writes it (8 bits), the residual coded by
the residual coder (real bytes), decoded and compared with the original on every pixel; the library
codecs of :mod:`hific_lit.eval.lossless` on the same photo, each decoded and measured; and JPEG-XL
(lossless) on the same quantized residual (``q mod 256`` as an 8-bit image), the library alternative
to the learned residual model. Part 2 decodes photos under each setting and compares x_hat with the
reference decoding. Writes ``outputs/bench/error_bound.json`` and prints a summary.
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

from hific_lit.checkpoint import load_inference_checkpoint
from hific_lit.data.sample import (
    SAMPLE_TRAIN_PHOTOS,
    SAMPLE_VAL_PHOTO,
    expand_photos,
    sample_photo_path,
    shrink,
    upright,
)
from hific_lit.entropy.residual import load_residual_coder, quantize_residual
from hific_lit.eval.lossless import _imagecodecs, bounded_encodings
from hific_lit.image_io import open_image, pil_to_tensor

HELD_OUT = "/usr/share/backgrounds/mate/nature/*.jpg"
OUTPUT = Path("outputs/bench/error_bound.json")
SHORT_SIDE = 512


def load_photo(path: Path) -> torch.Tensor:
    """(3, H, W) uint8, upright, shrunk to a shorter side of 512."""
    return pil_to_tensor(shrink(upright(open_image(path)), SHORT_SIDE), uint8=True)


def residual_with_jpegxl(x: torch.Tensor, x_hat: torch.Tensor, k: int) -> int | None:
    """Bytes of JPEG-XL (lossless) coding ``q mod 256`` as an 8-bit RGB image (q decodes from it given x_hat)."""
    ic = _imagecodecs()
    if ic is None:
        return None
    q = quantize_residual(x, x_hat, k).permute(1, 2, 0).numpy()
    return len(ic.jpegxl_encode(np.ascontiguousarray((q % 256).astype(np.uint8)), lossless=True, effort=7))


def measure_photo(model, coder, name: str, x: torch.Tensor, max_errors: list[int], held_out: bool) -> dict:
    """Everything measured on one photo."""
    pixels = x.shape[1] * x.shape[2]
    with torch.inference_mode():
        hfc = model.compress(x)
        x_hat = model.decompress(hfc, uint8=True)[0]
    record = {"photo": name, "size": list(x.shape[1:]), "held_out": held_out, "hfc_bpp": 8 * len(hfc) / pixels}
    record["psnr"] = float(10 * np.log10(255**2 / ((x.double() - x_hat.double()) ** 2).mean()))
    lossless = {e.codec: e for e in bounded_encodings(x.permute(1, 2, 0).numpy(), 0)} if held_out else {}
    for k in max_errors:
        start = time.perf_counter()
        stream = coder.encode(x, x_hat, k)
        encode_s = time.perf_counter() - start
        decoded = coder.decode(stream, x_hat, k)
        entry = {
            "residual_bpp": 8 * len(stream) / pixels,
            "total_bpp": 8 * (len(hfc) + len(stream)) / pixels,
            "max_error": int((decoded.int() - x.int()).abs().max()),
            "encode_s": encode_s,
            "decode_s": time.perf_counter() - start - encode_s,
        }
        if held_out:
            near = bounded_encodings(x.permute(1, 2, 0).numpy(), k) if k else list(lossless.values())
            library = {e.codec: e for e in near} | {c: e for c, e in lossless.items()}
            entry["library_bpp"] = {c: e.bpp(*x.shape[1:]) for c, e in library.items()}
            entry["library_max_error"] = {c: e.measured_error for c, e in library.items()}
            jxl = residual_with_jpegxl(x, x_hat, k)
            if jxl is not None:
                entry["residual_jpegxl_bpp"] = 8 * jxl / pixels
        record[f"K={k}"] = entry
        print(f"  {name} K={k}: {entry['total_bpp']:.3f} bpp, max error {entry['max_error']}", flush=True)
    return record


def decoding_settings(model, x: torch.Tensor) -> dict[str, bool]:
    """Whether x_hat (8 bits, as decompress writes it) is the reference decoding's under each setting."""
    with torch.inference_mode():
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
            other = copy.deepcopy(model)
            other.g_s.to(dtype)
            try:
                found[f"g_s in {name}"] = crc(other) == reference
            except RuntimeError as exc:
                found[f"g_s in {name}"] = f"fails: {str(exc).splitlines()[0][:80]}"
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
        best = min(library, key=library.get)
        summary[f"K={k}"] = {
            "ours_bpp": ours,
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
    parser.add_argument("--ckpt", default="outputs/demo/gan/inference.ckpt")
    parser.add_argument("--coder", default="outputs/residual/demo.pt")
    parser.add_argument("--max-errors", type=int, nargs="+", default=[0, 1, 2, 4])
    parser.add_argument("--held-out", default=HELD_OUT)
    parser.add_argument("--settings-photos", type=int, default=2, help="photos decoded under each setting (part 2)")
    parser.add_argument("--out", type=Path, default=OUTPUT)
    args = parser.parse_args()
    model = load_inference_checkpoint(args.ckpt)
    coder = load_residual_coder(args.coder)
    photos = [(p.stem, p, True) for p in expand_photos([args.held_out])]
    photos.append((SAMPLE_VAL_PHOTO, sample_photo_path(SAMPLE_VAL_PHOTO), True))
    photos += [(name, sample_photo_path(name), False) for name in SAMPLE_TRAIN_PHOTOS]
    records = []
    for name, path, held_out in photos:
        records.append(measure_photo(model, coder, name, load_photo(path), args.max_errors, held_out))
    settings = {name: decoding_settings(model, load_photo(path)) for name, path, _ in photos[: args.settings_photos]}
    summary = summarize(records, args.max_errors)
    result = {"ckpt": args.ckpt, "coder": args.coder, "summary": summary, "settings": settings, "photos": records}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    for k, s in summary.items():
        library = ", ".join(f"{c} {v:.3f}" for c, v in sorted(s["library_bpp"].items(), key=lambda kv: kv[1]))
        print(f"{k}: ours {s['ours_bpp']:.3f} bpp (HiFiC {s['hfc_bpp']:.3f}), max error {s['max_error_all_photos']}")
        print(f"   library: {library}; ours vs best ({s['best_library']}) {100 * s['ours_vs_best']:+.1f} %")
    for name, found in settings.items():
        print(f"x_hat identical, {name}: " + ", ".join(f"{s}: {v}" for s, v in found.items()))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
