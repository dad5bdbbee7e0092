"""The ``hific`` command: the one front door to compressing, training, evaluating and the tools around them.

=============  ===================================================  ==========================
command        what                                                 code
=============  ===================================================  ==========================
compress       images -> .hfc files                                 :mod:`hific_lit.cli.coding`
decompress     .hfc files -> images                                 :mod:`hific_lit.cli.coding`
info           header, sizes and bpp of .hfc files                  :mod:`hific_lit.cli.info`
import-jt      a model of the JT port -> inference checkpoint       :mod:`hific_lit.pretrained.cli`
train          one training stage (Hydra, ``conf/train.yaml``)      :mod:`hific_lit.cli.hydra_apps`
eval           checkpoints on Kodak / CLIC / a folder (Hydra,       :mod:`hific_lit.cli.hydra_apps`
               ``conf/eval.yaml``)
export         Lightning checkpoint -> inference checkpoint         :mod:`hific_lit.cli.tools`
download       Kodak, CLIC 2020; hific-low/med/high (model cache)   :mod:`hific_lit.cli.tools`
=============  ===================================================  ==========================

Every command exits by the rule of :mod:`hific_lit.errors`: 0 ok, 1 some inputs failed, 2 nothing could run.
"""

from __future__ import annotations

import argparse
import sys

from hific_lit.cli import coding, hydra_apps, info, tools
from hific_lit.cli.common import EXIT_STATUS, add_command
from hific_lit.errors import exit_status
from hific_lit.pretrained import cli as pretrained_cli
from hific_lit.version import __version__

HYDRA_EXAMPLES = {
    "train": "hific train experiment=demo_base  (or: regime=med trainer.devices=4; hific train --help)",
    "eval": "hific eval ckpt=model.ckpt eval_set=kodak  (hific eval --help)",
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; ``hific --help`` lists every command with one example each."""
    parser = argparse.ArgumentParser(
        prog="hific",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="HiFiC image compression (Mentzer et al. 2020): compress, decompress and inspect .hfc files; "
        "train, evaluate, export and import models; download the evaluation sets.",
    )
    parser.add_argument("--version", action="version", version=f"hific-lit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    coding.register(subparsers)
    info.register(subparsers)
    pretrained_cli.register(subparsers)
    for name, task in hydra_apps.APPS.items():
        add_command(subparsers, name, task, HYDRA_EXAMPLES[name], hydra=True)
    tools.register(subparsers)
    examples = [sub.epilog.removeprefix("example: ") for sub in subparsers.choices.values() if sub.epilog]
    parser.epilog = "examples:\n" + "".join(f"  {example}\n" for example in examples)
    parser.epilog += f"\n{EXIT_STATUS}\n`hific COMMAND --help` for each command's options."
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hific`` console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in hydra_apps.APPS:
        return hydra_apps.main(argv[0], argv[1:], f"hific {argv[0]}")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return exit_status(lambda: args.func(args), f"hific {args.command}")
