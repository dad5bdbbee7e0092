"""What every ``hific`` command shares: how it is registered (with its example) and its option types."""

from __future__ import annotations

import argparse
import inspect
import math
from collections.abc import Callable

from hific_lit.errors import SettingError

EXIT_STATUS = "Exit status: 0 on success, 1 if some inputs failed, 2 if nothing could run (e.g. a bad checkpoint)."
"""The rule of :mod:`hific_lit.errors`, as every command's help states it."""


def add_command(
    subparsers: argparse._SubParsersAction,
    name: str,
    run: Callable[..., int | None],
    example: str,
    hydra: bool = False,
) -> argparse.ArgumentParser:
    """Add the subcommand ``name``, with ``example`` in ``hific --help`` and in its own help.

    ``run`` documents the command: the first line of its docstring is the summary ``hific --help``
    shows, the rest the command's description. ``run(args)`` returns the exit status (0, or 1 when
    some inputs failed). ``hydra``: ``hific`` hands the command line to Hydra before parsing
    (``train``, ``eval``), and ``run`` is the Hydra task.
    """
    summary, _, details = inspect.getdoc(run).partition("\n\n")
    parser = subparsers.add_parser(
        name,
        help=summary[:1].lower() + summary[1:].rstrip("."),
        description=f"{summary} {' '.join(details.split())} {EXIT_STATUS}",
        epilog=f"example: {example}",
        add_help=not hydra,
    )
    parser.set_defaults(func=None if hydra else run)
    return parser


def option_type(parse: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse ``type=`` that reports a :class:`SettingError` with its own message."""

    def parse_option(text: str) -> object:
        try:
            return parse(text)
        except SettingError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse_option.__name__ = parse.__name__
    return parse_option


def number_option(
    option: str, kind: type[float] | type[int], takes: str, fits: Callable[[float], bool], outside: str
) -> Callable[[str], float]:
    """The parser of a numeric option: ``kind(text)`` if finite and ``fits``, else a :class:`SettingError` line
    (``OPTION takes TAKES, got 'x'`` or ``OPTION VALUE OUTSIDE``)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise SettingError(f"{option} takes {takes}, got {text!r}") from None
        if not (math.isfinite(value) and fits(value)):
            raise SettingError(f"{option} {text} {outside}")
        return value

    parse.__name__ = "parse_" + option.lstrip("-").replace("-", "_")
    parse.__doc__ = f"``{option}``: {takes}, else :class:`SettingError`."
    return parse


parse_realism = number_option(
    "--realism",
    float,
    "a number from 0 to 1",
    lambda value: 0.0 <= value <= 1.0,
    "is outside 0..1 (0: lowest distortion, 1: the model's largest beta)",
)
