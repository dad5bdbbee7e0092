"""``hific export`` (an inference checkpoint from a training run) and ``hific download`` (Kodak, CLIC 2020)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hific_lit.cli.common import add_command, option_type, parse_realism
from hific_lit.errors import NOTHING_RAN, OK, SOME_FAILED, DatasetError


def run_export(args: argparse.Namespace) -> int:
    """Write an inference checkpoint from a training checkpoint.

    Exports a Lightning checkpoint of a training run (last.ckpt, best.ckpt) as the inference
    checkpoint that compress, decompress and eval load: the codec with freshly built coding tables,
    no optimizer state, no discriminator. (Training writes RUN/inference.ckpt itself at its end.)
    --realism R stores the default realism of a realism-conditioned model (MRIC): what hific
    decompress and hific eval decode at when not told another (hific info CKPT shows it).
    """
    from hific_lit.training.export import export_training_checkpoint

    print(export_training_checkpoint(args.source, args.output, args.realism))
    return OK


def run_download(args: argparse.Namespace) -> int:
    """Download and verify the evaluation sets (Kodak, CLIC 2020).

    Downloads (resumable) and verifies each set into ROOT/NAME, where `hific eval eval_set=NAME`
    looks (official URLs and checksums: hific_lit/data/eval_sets.json). A set that fails, e.g.
    offline, is one line naming its URL and the folder to put the files in by hand; the others go on.
    """
    from hific_lit.config import default_data_dir
    from hific_lit.data.eval_sets import download_eval_set, eval_set_images

    root = args.root or default_data_dir()
    failed = 0
    for name in args.names:
        try:
            folder = download_eval_set(name, root, progress=not args.quiet)
            print(f"{name}: {len(eval_set_images(name, root))} images verified in {folder}")
        except DatasetError as exc:
            failed += 1
            print(f"hific download: error: {exc}", file=sys.stderr)
    return OK if not failed else NOTHING_RAN if failed == len(args.names) else SOME_FAILED


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the export and download subcommands (nothing heavy is imported until one runs)."""
    example = "hific export outputs/train/runs/DATE/checkpoints/best.ckpt best.ckpt"
    export = add_command(subparsers, "export", run_export, example)
    export.add_argument("source", type=Path, help="Lightning checkpoint of a hific-lit training run")
    export.add_argument("output", type=Path, help="inference checkpoint to write (atomically)")
    export.add_argument(
        "--realism",
        type=option_type(parse_realism),
        metavar="R",
        help="models trained with realism conditioning (MRIC): the realism hific decompress uses without --realism, "
        "0 = lowest distortion (beta 0) ... 1 = most realistic (the model's largest beta). Default: 1",
    )

    download = add_command(subparsers, "download", run_download, "hific download kodak clic2020 --root data")
    download.add_argument("names", nargs="+", metavar="NAME", help="kodak (24 images), clic2020 (428 images)")
    download.add_argument("--root", type=Path, default=None, help="default: $HIFIC_DATA, else ./data")
    download.add_argument("--quiet", action="store_true", help="no progress bars")
