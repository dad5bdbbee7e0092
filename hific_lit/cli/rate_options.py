"""The rate options of ``hific compress`` (``--rate``, ``--target-bpp``, ``--max-bytes``; rate-conditioned models) and
what ``hific info`` shows of a file's rate and a checkpoint's rate range."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from hific_lit.cli.common import number_option, option_type
from hific_lit.errors import SettingError
from hific_lit.io.checkpoint import RATE_KEY
from hific_lit.models.base import Codec
from hific_lit.models.rate import FileEstimate, rate_of_steps, section_rate_steps

parse_rate = number_option(
    "--rate",
    float,
    "a number from 0 to 1",
    lambda r: 0.0 <= r <= 1.0,
    "is outside 0..1 (0: the model's lowest rate, 1: its highest)",
)
parse_target_bpp = number_option("--target-bpp", float, "a number of bits per pixel", lambda b: b > 0, "is not above 0")
parse_max_bytes = number_option("--max-bytes", int, "a whole number of bytes", lambda n: n >= 1, "is below 1 byte")


def add_rate_options(parser: argparse.ArgumentParser) -> None:
    """``--rate``, ``--target-bpp`` and ``--max-bytes``, one at most."""
    rate = parser.add_mutually_exclusive_group()
    rate.add_argument(
        "--rate",
        type=option_type(parse_rate),
        metavar="R",
        help="rate-conditioned models (hific info CKPT says): 0 = the lowest rate trained ... 1 = the highest, any "
        "value between (stored in the file); default: the checkpoint's (0.5)",
    )
    rate.add_argument(
        "--target-bpp",
        type=option_type(parse_target_bpp),
        metavar="B",
        help="rate-conditioned models: per image, the rate whose file is within 2%% of B bits per pixel (or the "
        "lowest / highest rate, with a note, when B is out of reach)",
    )
    rate.add_argument(
        "--max-bytes",
        type=option_type(parse_max_bytes),
        metavar="N",
        help="rate-conditioned models: per image, the highest rate whose file fits N bytes (never more; an image "
        "that does not fit even at the lowest rate fails)",
    )


def checked_rate_options(model: Codec, args: argparse.Namespace) -> dict[str, float | int | None]:
    """The rate options as ``compress_to_file`` takes them; a model with one rate refuses any (one line)."""
    options = {"rate": args.rate, "target_bpp": args.target_bpp, "max_bytes": args.max_bytes}
    if model.capabilities.rate is None and any(v is not None for v in options.values()):
        raise SettingError(
            "this model has one rate (trained without arch.rate_conditioning); drop --rate, --target-bpp and "
            "--max-bytes"
        )
    if args.max_error is not None and (args.target_bpp is not None or args.max_bytes is not None):
        raise SettingError("--max-error adds a residual on top of the file: use it with --rate, not a target size")
    return options


def rate_text(estimate: FileEstimate) -> str:
    """``, rate 0.2500`` for a file of a rate-conditioned model (empty otherwise)."""
    return "" if estimate.rate is None else f", rate {estimate.rate:.4f}"


def file_rate_info(sections: Mapping[str, bytes]) -> dict[str, object]:
    """``hific info``'s sections and rate of a file (none for a file without a ``rate`` section)."""
    steps = section_rate_steps(sections)
    return {} if steps is None else {"rate": round(rate_of_steps(steps), 6)}


def checkpoint_rate_info(payload: Mapping) -> dict[str, object]:
    """``hific info``'s view of a checkpoint's rate: one rate, or its anchors and default rate."""
    rate = payload.get(RATE_KEY)
    if rate is None:
        return {"rate": "no (one rate)"}
    usage = "yes (hific compress --rate 0..1, --target-bpp B, --max-bytes N)"
    return {"rate": usage, "rate_anchors": rate["anchors"], "default_rate": rate["default_rate"]}
