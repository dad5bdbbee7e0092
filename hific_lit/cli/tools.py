"""``hific export`` (an inference checkpoint from a training run) and ``hific download`` (evaluation sets, models)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hific_lit.cli.common import add_command, option_type, parse_realism
from hific_lit.errors import NOTHING_RAN, OK, SOME_FAILED, CheckpointError, DatasetError


def run_export(args: argparse.Namespace) -> int:
    """Write an inference checkpoint from a training checkpoint.

    Exports a Lightning checkpoint of a training run (last.ckpt, best.ckpt) as the inference
    checkpoint that compress, decompress and eval load: the codec with freshly built coding tables,
    no optimizer state, no discriminator. (Training writes RUN/inference.ckpt itself at its end.)
    --realism R stores the default realism of a realism-conditioned model (MRIC): what hific
    decompress and hific eval decode at when not told another (hific info CKPT shows it).
    --precision bf16 stores the encoder's and generator's weights in bfloat16: the file is about half
    the size, decodes the same files (same fingerprint) and loads as fast; given an inference
    checkpoint as SOURCE, it converts that one.
    """
    from hific_lit.training.export import convert_inference_checkpoint, export_training_checkpoint
    from hific_lit.training.warmstart import is_inference_checkpoint

    if args.precision is not None and is_inference_checkpoint(args.source):
        if args.realism is not None:
            raise CheckpointError(f"{args.source}: --realism is set when exporting from a training run, not here")
        print(convert_inference_checkpoint(args.source, args.output, args.precision))
        return OK
    print(export_training_checkpoint(args.source, args.output, args.realism, args.precision or "fp32"))
    return OK


def run_download(args: argparse.Namespace) -> int:
    """Download and verify the evaluation sets (Kodak, CLIC 2020) or the released models (hific-low/med/high).

    Downloads (resumable) and verifies each set into ROOT/NAME, where `hific eval eval_set=NAME`
    looks (official URLs and checksums: hific_lit/data/eval_sets.json). A model (the JT port's
    HIFIC-low/med/high, Zenodo first, then the port's other mirrors) is checked, imported and kept in
    the model cache ($HIFIC_HOME, default ~/.cache/hific), where --model NAME finds it. A name that
    fails, e.g. offline, is one line naming its URL and what to do; the others go on.
    """
    from hific_lit.config import default_data_dir
    from hific_lit.data.eval_sets import download_eval_set, eval_set_images
    from hific_lit.pretrained.download import download_model
    from hific_lit.pretrained.registry import REMOTE_MODELS

    root = args.root or default_data_dir()
    failed = 0
    for name in args.names:
        try:
            if name in REMOTE_MODELS:
                got = download_model(name, progress=not args.quiet)
                how = "already in the cache" if got.already_cached else f"from {got.source}, imported"
                print(f"{name}: {got.path} ({how}); use it with --model {name}")
                continue
            folder = download_eval_set(name, root, progress=not args.quiet)
            print(f"{name}: {len(eval_set_images(name, root))} images verified in {folder}")
        except (DatasetError, CheckpointError) as exc:
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
    export.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default=None,
        help="float type of the stored encoder and generator weights: fp32 (default) or bf16 (about half the "
        "file, the same fingerprint); with an inference checkpoint as SOURCE, converts it",
    )

    download = add_command(subparsers, "download", run_download, "hific download kodak clic2020 --root data")
    download.add_argument(
        "names",
        nargs="+",
        metavar="NAME",
        help="kodak (24 images), clic2020 (428 images); hific-low, hific-med, hific-high (the JT port's released "
        "models, about 2 GB each, kept in $HIFIC_HOME, default ~/.cache/hific)",
    )
    download.add_argument("--root", type=Path, default=None, help="evaluation sets: default $HIFIC_DATA, else ./data")
    download.add_argument("--quiet", action="store_true", help="no progress bars")
