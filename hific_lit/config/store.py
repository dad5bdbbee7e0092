"""Config groups made from Python definitions, so that each number is stated once.

* ``arch``: ``arch=small`` selects :data:`hific_lit.models.hific.arch.ARCH_PRESETS` ``["small"]`` (and the GC2018
  presets) as a config node, ``_target_`` plus every field, so that ``arch.residual_blocks=1`` and
  interpolations such as ``${arch.latent_channels}`` work as with a YAML file.
* ``loss``: ``loss=default`` is :class:`hific_lit.training.losses.LossConfig`'s defaults (the authors' numbers,
  docs/fidelity.md), with the target rate and the rate weights taken from the ``regime`` group.
"""

from __future__ import annotations

from dataclasses import asdict

from hydra.core.config_store import ConfigStore

from hific_lit.models.gc2018.arch import GC2018_PRESETS
from hific_lit.models.hific.arch import ARCH_PRESETS
from hific_lit.training.losses import LossConfig

REGIME_FIELDS = ("target_bpp", "lambda_a", "lambda_b")
"""The loss fields each ``regime`` sets."""


def register_configs() -> None:
    """Store the arch presets and the default loss in Hydra's config store (idempotent)."""
    store = ConfigStore.instance()
    for name, arch in ARCH_PRESETS.items():
        store.store(
            group="arch", name=name, node={"_target_": "hific_lit.models.hific.arch.ArchConfig", **arch.to_dict()}
        )
    for name, gc_arch in GC2018_PRESETS.items():
        node = {"_target_": "hific_lit.models.gc2018.arch.GC2018Config", **gc_arch.to_dict()}
        store.store(group="arch", name=name, node=node)
    loss = {"_target_": "hific_lit.training.losses.LossConfig", **asdict(LossConfig())}
    loss |= {field: f"${{regime.{field}}}" for field in REGIME_FIELDS}
    store.store(group="loss", name="default", node=loss)


register_configs()
