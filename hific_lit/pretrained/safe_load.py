"""Read a foreign PyTorch checkpoint without running any code it might carry.

``torch.load(weights_only=True)`` rebuilds only tensors and plain containers (dict, list, tuple,
str, numbers, None, OrderedDict); every other global a pickle names is refused before anything
is built. The JT port's checkpoints hold tensors, plain dicts (its ``args``) and optimizer
states, so nothing more is needed; :data:`ALLOWED_GLOBALS` adds ``argparse.Namespace``, the one
plain attribute holder an ``args`` of a PyTorch training script may be (its state is a dict
of attributes; it has no code of its own). Anything else is reported and never executed.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import zipfile
from pathlib import Path

import torch

from hific_lit.errors import CheckpointError

ALLOWED_GLOBALS: tuple[type, ...] = (argparse.Namespace,)
"""Classes a checkpoint may name beyond torch's weights-only defaults."""

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def refused_global(exc: BaseException) -> str | None:
    """The name of the global torch's weights-only unpickler refused, if that is why ``exc`` was raised."""
    text = str(exc)
    if "Unsupported global" not in text and "not an allowed global" not in text:
        return None
    found = _GLOBAL.search(text)
    return found.group(1) if found else "an unsupported global"


def load_plain_checkpoint(path: str | os.PathLike, what: str = "checkpoint") -> object:
    """``torch.load`` of ``path`` on the CPU with ``weights_only=True`` and :data:`ALLOWED_GLOBALS`.

    Zip-format files are memory-mapped (a 700 MB model does not need 700 MB more to read).
    A missing, empty, HTML, truncated or code-carrying file raises :class:`CheckpointError`.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such {what} file")
    with open(path, "rb") as f:
        head = f.read(512).lstrip()
    if not head:
        raise CheckpointError(f"{path}: the {what} file is empty")
    if head[:1] == b"<":
        raise CheckpointError(f"{path}: this is an HTML/XML page, not a {what} (a failed download?)")
    try:
        with torch.serialization.safe_globals(list(ALLOWED_GLOBALS)):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        name = refused_global(exc)
        if name is not None:
            raise CheckpointError(
                f"{path}: refused: the {what} holds the Python object {name}, which is not plain data "
                "(loading it could run code); nothing from the file was executed"
            ) from None
        lines = str(exc).strip().splitlines()
        reason = lines[0] if lines else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch {what} (truncated or corrupt?): {reason}") from None
