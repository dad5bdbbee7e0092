"""The ``hific`` command line."""

from __future__ import annotations

import argparse
import sys

from hific_lit import __version__


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; each subcommand registers its own sub-parser."""
    parser = argparse.ArgumentParser(
        prog="hific",
        description="HiFiC image compression (Mentzer et al. 2020): compress, decompress and inspect .hfc files.",
    )
    parser.add_argument("--version", action="version", version=f"hific-lit {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hific`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
