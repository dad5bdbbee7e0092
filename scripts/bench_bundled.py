"""The bundled model on the 12 held-out photos (Debian's mate-backgrounds), next to JPEG at the same bpp.

    python scripts/bench_bundled.py                      # the bundled model at its default rate (`make photos` first)
    python scripts/bench_bundled.py --target-bpps 0.15 0.3 0.5   # one rate-conditioned model at several rates
    python scripts/bench_bundled.py --ckpt model.ckpt    # any inference checkpoint
    python scripts/bench_bundled.py --viewer out.html    # and the side-by-side viewer
    python scripts/bench_bundled.py --paper-size         # only: fp32 and bf16 size and load time of the paper's model

Prints a Markdown table per rate (per photo: bpp from the .hfc file, PSNR, colour error; JPEG's at the same rate;
with ``--target-bpps`` each file is searched to its target, ``hific compress --target-bpp``), the
targets of issue 23 (mean PSNR >= 25 dB at <= 0.5 bpp; no photo's colour error above JPEG's), and the load time
and size of the checkpoint in fp32 and bf16 (`hific export --precision bf16`); writes outputs/bench/bundled.json.
docs/bundled.md holds its output.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from hific_lit.errors import NOTHING_RAN, HificError
from hific_lit.eval.heldout import code_next_to_jpeg, format_table, heldout_photos, summary
from hific_lit.eval.viewer import write_viewer
from hific_lit.io.checkpoint import load_inference_checkpoint
from hific_lit.pretrained.registry import BUNDLED, resolve_model
from hific_lit.training.export import convert_inference_checkpoint

TARGET_PSNR, TARGET_BPP = 25.0, 0.5


def load_seconds(path: Path, repeats: int = 5) -> float:
    """Median wall time of :func:`load_inference_checkpoint` (fp32 compute) plus reading every weight once, over
    ``repeats`` loads after one that warms the page cache. (An fp32 file is memory-mapped and read on first use, so
    the load alone would not count its reading; a bf16 file is read and converted during the load.)"""

    def load_and_read() -> None:
        model = load_inference_checkpoint(path)
        with torch.no_grad():
            for tensor in model.state_dict().values():
                tensor.sum()

    load_and_read()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        load_and_read()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def precision_costs(ckpt: Path) -> dict[str, dict[str, float]]:
    """File size and load time of ``ckpt`` and of its bf16 copy (and whether that copy is already bf16)."""
    with tempfile.TemporaryDirectory() as tmp:
        fp32, bf16 = Path(tmp) / "fp32.ckpt", Path(tmp) / "bf16.ckpt"
        convert_inference_checkpoint(ckpt, fp32, "fp32")
        convert_inference_checkpoint(ckpt, bf16, "bf16")
        return {
            name: {"bytes": p.stat().st_size, "load_s": load_seconds(p)} for name, p in (("fp32", fp32), ("bf16", bf16))
        }


def paper_size_costs() -> dict[str, dict[str, float]]:
    """:func:`precision_costs` of the paper's architecture (``arch=hific``, 184 M parameters, random weights)."""
    from hific_lit.io.checkpoint import save_inference_checkpoint
    from hific_lit.models.hific.model import HiFiC

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hific.ckpt"
        save_inference_checkpoint(HiFiC.from_preset("hific").eval(), path)
        return precision_costs(path)


def print_costs(costs: dict[str, dict[str, float]], what: str) -> None:
    for name, cost in costs.items():
        print(f"{what} {name}: {cost['bytes'] / 1e6:.2f} MB, loads in {1000 * cost['load_s']:.1f} ms (median of 5)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, default=None, help="inference checkpoint (default: the bundled model)")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench"), help="folder of bundled.json and the files")
    parser.add_argument("--viewer", type=Path, default=None, help="also write the HTML viewer here")
    parser.add_argument(
        "--target-bpps", type=float, nargs="+", default=None, metavar="B",
        help="code each photo at each of these bpp (a rate-conditioned model; default: its default rate)",
    )  # fmt: skip
    parser.add_argument("--paper-size", action="store_true", help="only the fp32/bf16 costs of the paper's model")
    args = parser.parse_args(argv)
    if args.paper_size:
        print_costs(paper_size_costs(), "arch=hific (184 M parameters)")
        return 0
    try:
        ckpt = args.ckpt or resolve_model(BUNDLED).path
        model = load_inference_checkpoint(ckpt)
        photos = heldout_photos()
        if args.target_bpps and model.capabilities.rate is None:
            raise HificError(f"{ckpt} has one rate (no arch.rate_conditioning): drop --target-bpps")
    except HificError as exc:
        print(f"bench_bundled: error: {exc}", file=sys.stderr)
        return NOTHING_RAN
    print(f"model: {ckpt}")
    points, viewer = [], []
    for target in args.target_bpps or [None]:
        files = args.out / "bundled" / ("default" if target is None else f"{target:g}bpp")
        files.mkdir(parents=True, exist_ok=True)
        coding = None if target is None else {"target_bpp": target}
        rows = []
        for name, image in photos:
            row, entry = code_next_to_jpeg(model, name, image, files, coding)
            rows.append(row)
            viewer.append(entry if target is None else replace(entry, name=f"{name} @ {target:g} bpp"))
        s = summary(rows)
        label = "the model's default rate" if target is None else f"--target-bpp {target:g}"
        print(f"\n{label}:\n\n{format_table(rows)}\n")
        print(
            f"targets (issue 23): mean PSNR {s['psnr']:.2f} dB (>= {TARGET_PSNR}) at {s['bpp']:.3f} bpp "
            f"(<= {TARGET_BPP}); photos whose colour error is above JPEG's at the same bpp: "
            f"{s['photos_above_jpeg_delta_e']} (0 wanted)"
        )
        points.append({"target_bpp": target, "rows": [r.as_dict() for r in rows], "summary": s})
    costs = precision_costs(ckpt)
    print_costs(costs, "checkpoint")
    if args.viewer:
        print(f"viewer: {write_viewer(viewer, args.viewer, 'the bundled model on the held-out photos')}")
    report = {"checkpoint": str(ckpt), "points": points, "precision": costs}
    (args.out / "bundled.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
