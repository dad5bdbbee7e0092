"""Turn a folder of images (e.g. an OpenImages train split) into WebDataset tar shards.

    python scripts/make_shards.py SRC_DIR OUT_DIR [--max-count 10000] [--max-size 1G]
                                  [--max-short-side 1024] [--workers 8] [--prefix train]

Writes OUT_DIR/<prefix>-000000.tar, ... and OUT_DIR/<prefix>-manifest.json (shard names, sample
counts, bytes, SHA-256, skipped files). Re-running on the same inputs gives the same shards.
"""

from __future__ import annotations

import argparse
import os
import sys

from hific_lit.data.shard_writer import ShardSettings, write_shards
from hific_lit.errors import exit_status
from hific_lit.io.files import parse_size
from hific_lit.io.images import DEFAULT_MAX_PIXELS


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 when the shards are written (unreadable images skipped, listed), 2 when nothing could run."""
    parser = argparse.ArgumentParser(
        prog="make_shards.py",
        description="Write WebDataset tar shards and a JSON manifest from a directory tree of images. "
        "Unreadable images are skipped and listed in the manifest.",
    )
    parser.add_argument("src_dir", help="directory tree of images (PNG, JPEG, WebP, TIFF, BMP, PPM)")
    parser.add_argument("out_dir", help="where the shards and the manifest go (created if missing)")
    parser.add_argument("--prefix", default="train", help="shard name prefix (default: %(default)s)")
    parser.add_argument("--max-count", type=int, default=10_000, help="images per shard at most (default: %(default)s)")
    parser.add_argument(
        "--max-size", default="1G", help="bytes per shard at most, e.g. 500M, 1G (default: %(default)s)"
    )
    parser.add_argument(
        "--max-short-side",
        type=int,
        default=None,
        help="downscale images whose shorter side exceeds this many pixels (stored as PNG); default: keep all as is",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        metavar="N",
        help="skip images of more than N pixels without decoding them (decompression bombs; default: %(default)s)",
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="decoding processes (default: %(default)s)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    def make() -> None:
        settings = ShardSettings(
            args.max_count, parse_size(args.max_size), args.max_short_side, args.prefix, args.max_pixels
        )
        manifest = write_shards(args.src_dir, args.out_dir, settings, workers=args.workers, progress=not args.quiet)
        print(
            f"{manifest['samples']} images in {len(manifest['shards'])} shards ({manifest['bytes'] / 1e6:.1f} MB) "
            f"-> {args.out_dir}/{manifest['pattern']}; {manifest['downscaled']} downscaled, "
            f"{len(manifest['skipped'])} skipped"
        )

    return exit_status(make, parser.prog)


if __name__ == "__main__":
    sys.exit(main())
