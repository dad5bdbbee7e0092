"""``hific import-jt``: a released model of the JT port as a hific-lit inference checkpoint."""

from __future__ import annotations

import argparse

from hific_lit.pretrained.jt import import_jt


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``import-jt`` to the ``hific`` command."""
    parser = subparsers.add_parser(
        "import-jt",
        help="import a model of the PyTorch port by Justin Tan (HIFIC-low/med/high .pt)",
        description=(
            "Convert a checkpoint of github.com/Justin-Tan/high-fidelity-generative-compression (e.g. the released "
            "HIFIC-low/med/high .pt files) into a hific-lit inference checkpoint for compress, decompress, eval and "
            "fine-tuning. The file is read with torch.load(weights_only=True): nothing in it is executed."
        ),
        epilog="example: hific import-jt HIFIC-med.pt -o hific-med.ckpt",
    )
    parser.add_argument("model", help="the port's checkpoint (.pt)")
    parser.add_argument("-o", "--output", required=True, help="inference checkpoint to write (.ckpt)")
    parser.add_argument(
        "--no-discriminator", action="store_true", help="leave out the port's discriminator (kept by default)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Import, then say what was found and written."""
    info = import_jt(args.model, args.output, keep_discriminator=not args.no_discriminator)
    print(f"found: {info.summary()}")
    kept = info.has_discriminator and not args.no_discriminator
    print(f"wrote {args.output}{' (with the discriminator, for stage=gan fine-tuning)' if kept else ''}")
    return 0
