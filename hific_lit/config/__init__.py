"""The Hydra configs (``conf/``): where they are, and composing one outside a Hydra app.

``conf/train.yaml`` and ``conf/eval.yaml`` sit side by side and share the groups they both need
(``paths/``); the ``arch`` group comes from Python (:mod:`hific_lit.config.store`, registered on
import of this module). ``hific train`` and ``hific eval`` (and ``scripts/train.py``,
``scripts/eval.py``) run them as Hydra apps; tests and notebooks compose them with :func:`compose_config`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf, open_dict

from hific_lit.config import store  # noqa: F401  (registers the arch group with Hydra)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "conf"
"""The Hydra configs of a source checkout."""

DATA_ENV = "HIFIC_DATA"


def default_data_dir() -> Path:
    """Where data sets live unless told otherwise: ``$HIFIC_DATA``, else ``./data``.

    The one rule for training and eval configs (``paths.data_dir``, through the ``hific_data_dir``
    resolver) and for ``hific download``.
    """
    return Path(os.environ.get(DATA_ENV, "data")).resolve()


if not OmegaConf.has_resolver("hific_data_dir"):
    OmegaConf.register_new_resolver("hific_data_dir", lambda: str(default_data_dir()))


def compose_config(name: str, overrides: Sequence[str] = (), output_dir: str | Path = "outputs/python") -> DictConfig:
    """``conf/<name>.yaml`` with ``overrides``, run paths filled in (``paths.root_dir``, ``paths.output_dir``)
    as a Hydra app would fill them."""
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(name, overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.root_dir = str(CONFIG_DIR.parent)
        cfg.paths.output_dir = str(Path(output_dir).resolve())
    return cfg
