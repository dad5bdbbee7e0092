"""``hific info``: what a .hfc file holds (header, sections, bpp, its rate) and what a checkpoint can do."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hific_lit.cli.common import add_command
from hific_lit.cli.rate_options import checkpoint_rate_info, file_rate_info
from hific_lit.errors import SOME_FAILED, HificError
from hific_lit.io.checkpoint import REALISM_KEY, RESIDUAL_KEY, read_inference_checkpoint
from hific_lit.io.container import HEADER_SIZES, header_fields, read_hfc, unpack
from hific_lit.io.files import bits_per_pixel
from hific_lit.models.error_bound import residual_info


def file_info(path: Path) -> dict[str, object]:
    """Header fields, section sizes and bpp of a .hfc file (validated, CRCs checked)."""
    data = read_hfc(path)
    try:
        unpacked = unpack(data)
        header = unpacked.header
        rate = file_rate_info(unpacked.sections)
    except HificError as exc:
        raise type(exc)(f"{path}: {exc}") from None
    info: dict[str, object] = {"file": str(path), **header_fields(header)}
    info.update(header_bytes=HEADER_SIZES[header.version], total_bytes=len(data))
    info["bpp"] = round(bits_per_pixel(len(data), header.height, header.width), 6)
    info.update(residual_info(unpacked.sections, len(data)))
    return info | rate


CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth")


def checkpoint_info(path: Path) -> dict[str, object]:
    """What an inference checkpoint holds: model kind, latent size, whether it decodes at any realism (MRIC), whether it
    codes at any rate, and whether it bounds the error."""
    payload = read_inference_checkpoint(path, mmap=True)
    arch = payload.get("arch") or {}
    info: dict[str, object] = {"file": str(path), "model": payload.get("model", "hific")}
    info.update(format_version=payload.get("format_version"), latent_channels=arch.get("latent_channels"))
    realism = payload.get(REALISM_KEY)
    info["realism"] = "no (one operating point)" if realism is None else "yes (hific decompress --realism 0..1)"
    if realism is not None:
        default = round(realism["default_beta"] / realism["beta_max"], 4)
        info.update(beta_max=realism["beta_max"], default_realism=default)
    info.update(checkpoint_rate_info(payload))
    info["error_bound"] = "yes (hific compress --max-error K)" if RESIDUAL_KEY in payload else "no residual coder"
    return info


def run_info(args: argparse.Namespace) -> int:
    """Show the header, sizes and bpp of .hfc files, or what a checkpoint supports.

    Checks each file (magic, version, CRCs, lengths) and prints its header fields, section sizes, bits per
    pixel and, from a rate-conditioned model, the rate it was coded at. No checkpoint needed. Given a checkpoint
    (.ckpt, .pt, .pth), shows its model and whether it decodes at any realism (--realism) and codes at any rate
    (--rate). A bad file is one line on stderr; the others go on.
    """
    infos = []
    for path in args.files:
        try:
            infos.append((checkpoint_info if Path(path).suffix in CHECKPOINT_SUFFIXES else file_info)(Path(path)))
        except (HificError, OSError) as exc:
            print(f"hific info: error: {exc}", file=sys.stderr)
    if args.json and infos:
        print(json.dumps(infos if len(args.files) > 1 else infos[0], indent=2))
    elif infos:
        print("\n".join("\n".join(f"{key:>12}: {value}" for key, value in info.items()) for info in infos))
    return SOME_FAILED if len(infos) < len(args.files) else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the info subcommand."""
    info = add_command(subparsers, "info", run_info, "hific info photo.hfc --json  (or: hific info model.ckpt)")
    info.add_argument(
        "files", nargs="+", metavar="FILE.hfc|CKPT", help=".hfc files or inference checkpoints (.ckpt, .pt, .pth)"
    )
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
