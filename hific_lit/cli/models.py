"""Which model ``hific compress`` / ``decompress`` use: ``--ckpt PATH``, ``--model NAME``, or found for the user.

- ``hific compress photo.png``: the bundled model, said in one line (``--model NAME`` or ``--ckpt`` for another);
- ``hific decompress photo.hfc``: the model whose fingerprint the file's header records, looked up in the model
  cache and then among the bundled models (:func:`hific_lit.pretrained.registry.find_by_fingerprint`), said in
  one line; when none matches, one line names the fingerprint and what to pass.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hific_lit.errors import CheckpointError
from hific_lit.io.container import read_hfc, unpack
from hific_lit.pretrained.registry import BUNDLED, REMOTE_MODELS, find_by_fingerprint, model_home, resolve_model


def add_model_options(parser: argparse.ArgumentParser, default: str) -> None:
    """``--ckpt PATH`` or ``--model NAME`` (not both); ``default`` says in the help what happens with neither."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--ckpt", help="inference checkpoint (written at the end of training, or by hific export)")
    names = ", ".join([BUNDLED, *REMOTE_MODELS])
    group.add_argument("--model", metavar="NAME", help=f"a model by name: {names} (hific download NAME). {default}")


def compress_checkpoint(args: argparse.Namespace) -> tuple[Path, str | None]:
    """The checkpoint ``hific compress`` uses and, when the user named none, the line that says which."""
    if args.ckpt:
        return Path(args.ckpt), None
    entry = resolve_model(args.model or BUNDLED)
    note = None if args.model else f"hific compress: no --ckpt given: using the {entry.place} model {entry.name!r}"
    return entry.path, note


def decompress_checkpoint(args: argparse.Namespace, first_file: Path) -> tuple[Path, str | None]:
    """The checkpoint ``hific decompress`` uses: ``--ckpt``, ``--model``, else the one whose fingerprint
    ``first_file`` records (cache, then bundled), with the line that says which."""
    if args.ckpt:
        return Path(args.ckpt), None
    if args.model:
        return resolve_model(args.model).path, None
    header = unpack(read_hfc(first_file))[0]
    entry = find_by_fingerprint(header.fingerprint)
    if entry is None:
        raise CheckpointError(
            f"{first_file} was made by a model that is neither in the model cache ({model_home()}) nor bundled "
            f"(fingerprint {header.fingerprint.hex()}): pass the checkpoint that made it (--ckpt PATH), or "
            f"--model NAME after `hific download NAME` ({', '.join(REMOTE_MODELS)})"
        )
    return entry.path, f"hific decompress: {first_file} was made by the {entry.place} model {entry.name!r}; using it"
