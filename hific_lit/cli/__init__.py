"""The ``hific`` command line."""

from __future__ import annotations

import argparse
import sys

from hific_lit import __version__, cli_coding
from hific_lit.errors import HificError
from hific_lit.pretrained import cli as pretrained_cli


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; each subcommand registers its own sub-parser."""
    parser = argparse.ArgumentParser(
        prog="hific",
        description=(
            "HiFiC image compression (Mentzer et al. 2020): compress, decompress and inspect .hfc files; "
            "import pretrained models."
        ),
    )
    parser.add_argument("--version", action="version", version=f"hific-lit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    cli_coding.register(subparsers)
    pretrained_cli.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hific`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except HificError as exc:
        print(f"hific {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hific {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
