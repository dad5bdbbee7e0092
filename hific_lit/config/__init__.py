"""The Hydra configs (``conf/``): where they are, and composing one outside a Hydra app.

``conf/train.yaml`` and ``conf/eval.yaml`` sit side by side and share the groups they both need
(``paths/``); the ``arch`` group comes from Python (:mod:`hific_lit.config.store`, registered on
import of this module). ``hific train`` and ``hific eval`` (and ``scripts/train.py``,
``scripts/eval.py``) run them as Hydra apps; tests and notebooks compose them with :func:`compose_config`.

A config states no number that the code states too: it takes nodes made from the Python definitions
(:mod:`hific_lit.config.store`) or names a constant with ``${hific_constant:hific_lit.module.NAME}``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf, open_dict

from hific_lit.config import store  # noqa: F401  (registers the groups made from Python)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "conf"
"""The Hydra configs of a source checkout."""

DATA_ENV = "HIFIC_DATA"


def default_data_dir() -> Path:
    """Where data sets live unless told otherwise: ``$HIFIC_DATA``, else ``./data``.

    The one rule for training and eval configs (``paths.data_dir``, through the ``hific_data_dir``
    resolver) and for ``hific download``.
    """
    return Path(os.environ.get(DATA_ENV, "data")).resolve()


def hific_constant(path: str) -> Any:
    """The value of ``path``, a constant of this package (``hific_lit.io.images.DEFAULT_MAX_PIXELS``): the
    ``hific_constant`` resolver, with which a config takes a number from the one place the code defines it."""
    if not path.startswith("hific_lit."):
        raise ValueError(f"hific_constant names a constant of hific_lit (hific_lit.module.NAME), not {path!r}")
    return get_object(path)


if not OmegaConf.has_resolver("hific_data_dir"):
    OmegaConf.register_new_resolver("hific_data_dir", lambda: str(default_data_dir()))
if not OmegaConf.has_resolver("hific_constant"):
    OmegaConf.register_new_resolver("hific_constant", hific_constant)


def group_options(group: str) -> list[str]:
    """The options of a config group: its YAML files in ``conf/<group>/`` and the nodes made from Python
    (:mod:`hific_lit.config.store`)."""
    stored = ConfigStore.instance().repo.get(group, {})
    files = {path.stem for path in (CONFIG_DIR / group).glob("*.yaml")}
    return sorted(files | {name.removesuffix(".yaml") for name in stored if name.endswith(".yaml")})


def compose_config(name: str, overrides: Sequence[str] = (), output_dir: str | Path = "outputs/python") -> DictConfig:
    """``conf/<name>.yaml`` with ``overrides``, run paths filled in (``paths.root_dir``, ``paths.output_dir``)
    as a Hydra app would fill them."""
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(name, overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.root_dir = str(CONFIG_DIR.parent)
        cfg.paths.output_dir = str(Path(output_dir).resolve())
    return cfg
