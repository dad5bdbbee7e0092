"""Hydra's ``arch`` group, made from the Python presets: each architecture is defined once.

``arch=small`` selects :data:`hific_lit.arch.ARCH_PRESETS` ``["small"]`` as a config node
(``_target_: hific_lit.arch.ArchConfig`` plus every field), so that ``arch.residual_blocks=1`` and
interpolations such as ``${arch.latent_channels}`` work as with a YAML file, and no YAML copy of
the numbers can drift from the package.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from hific_lit.arch import ARCH_PRESETS
from hific_lit.gc2018.arch import GC2018_PRESETS


def register_arch_presets() -> None:
    """Store every preset of :data:`~hific_lit.arch.ARCH_PRESETS` in Hydra's ``arch`` group (idempotent)."""
    store = ConfigStore.instance()
    for name, arch in ARCH_PRESETS.items():
        store.store(group="arch", name=name, node={"_target_": "hific_lit.arch.ArchConfig", **arch.to_dict()})
    for name, gc_arch in GC2018_PRESETS.items():
        node = {"_target_": "hific_lit.gc2018.arch.GC2018Config", **gc_arch.to_dict()}
        store.store(group="arch", name=name, node=node)


register_arch_presets()
