"""The one guarded ``torch.load``: read a checkpoint without running any code it might carry.

``torch.load(weights_only=True)`` rebuilds only tensors and plain containers (dict, list, tuple, str, numbers,
None, OrderedDict); every other global a pickle names is refused before anything is built. A caller may allow a
few more plain classes (the JT port's checkpoints hold an ``argparse.Namespace``: a dict of attributes with no
code of its own). Every failure is a one-line :class:`~hific_lit.errors.CheckpointError` in our words: a
missing, empty, HTML (a failed download), truncated or corrupt file, or one that names a Python object.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import torch

from hific_lit.errors import CheckpointError

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def refused_global(exc: BaseException) -> str | None:
    """The name of the global torch's weights-only unpickler refused, if that is why ``exc`` was raised."""
    text = str(exc)
    if "Unsupported global" not in text and "not an allowed global" not in text:
        return None
    found = _GLOBAL.search(text)
    return found.group(1) if found else "an unsupported global"


def guarded_load(
    path: str | os.PathLike,
    what: str = "checkpoint",
    mmap: bool = True,
    allowed_globals: Sequence[type] = (),
    map_location: str | torch.device = "cpu",
) -> object:
    """``torch.load`` of ``path`` with ``weights_only=True`` (and ``allowed_globals``), or a :class:`CheckpointError`
    that names the file and what is wrong with it (``what`` names the kind of file in the message).

    ``mmap``: zip-format files are memory-mapped (a 700 MB model does not need 700 MB more to read; tensors are
    read from disk when first used).
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
        with torch.serialization.safe_globals(list(allowed_globals)):
            mapped = mmap and zipfile.is_zipfile(path)
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mapped)
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
