"""Training data (sample photos, image folders, WebDataset shards) and the Kodak / CLIC2020 eval sets.

The data modules import Lightning, so they load on first use (``hific_lit.data.SampleDataModule``,
as Hydra's ``_target_`` names them): importing a light submodule such as ``hific_lit.data.eval_sets``
(``hific download``) or ``hific_lit.data.sample`` does not pay for them.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ImageFolderDataModule": "hific_lit.data.folder",
    "SampleDataModule": "hific_lit.data.sample",
    "WebDataModule": "hific_lit.data.webdataset_module",
    "load_sample_photo": "hific_lit.data.sample",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'hific_lit.data' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
