"""Training checkpoints written atomically and checked when read: the ``CheckpointIO`` plugin of every run.

Lightning's own writer (``TorchCheckpointIO``) serialises the whole checkpoint into memory and writes it through
a temporary file in the system's temporary folder, then moves it; across file systems that move is a plain copy,
and nothing is synced. Here ``torch.save`` streams into a temporary file next to the target, which is flushed,
fsynced and renamed over it (:func:`hific_lit.io.files.atomic_write`): a kill at any moment leaves either the
previous file or the new one, never a part. Reading checks every record of the file against the CRC-32 that
``torch.save`` stored with it (``torch.load`` does not), so a truncated or damaged file is refused in one line.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning_fabric.utilities.types import _PATH

from hific_lit.errors import CheckpointError
from hific_lit.io.files import atomic_write


def verify_checkpoint(path: str | Path) -> None:
    """Raise :class:`CheckpointError` unless ``path`` is a whole ``torch.save`` file whose records match their CRC-32.

    Reads the whole file (about a second per GB), unpickles nothing.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist")
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise CheckpointError(f"{path} is truncated or not a PyTorch checkpoint ({exc})") from None
    if damaged is not None:
        raise CheckpointError(f"{path} is damaged: its record {damaged} fails its CRC-32 check")


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` into a temporary file beside the target, fsynced and renamed; every load verified first."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        atomic_write(path, lambda f: torch.save(checkpoint, f))

    def load_checkpoint(
        self,
        path: _PATH,
        map_location: Callable | None = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        verify_checkpoint(path)
        return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
