"""Whether a composed training config fits together, checked before anything is built.

``hific train`` composes an arch, a stage and a data set from independent groups, so some choices do not
fit: a GC2018 arch under HiFiC's default ``stage=base``, a HiFiC arch under ``stage=gc2018``, a value left
``???`` (``data=folder`` without ``data.train_dir``), a GAN-stage experiment without ``warmstart``
(``require_warmstart``), an arch value its dataclass refuses, a rate-conditioned arch without one target per
anchor (``regime=rate``). :func:`check_training_config` turns each into
one :class:`SettingError` line that names the fix, before any interpolation is resolved or any network built.
"""

from __future__ import annotations

from dataclasses import dataclass

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from omegaconf import DictConfig, ListConfig, OmegaConf

from hific_lit.errors import SettingError
from hific_lit.models.gc2018.arch import GC2018Config
from hific_lit.models.hific.arch import ArchConfig


@dataclass(frozen=True)
class ModelFamily:
    """One model's arch dataclass, the stage class its stages derive from, and how to name its stages."""

    name: str
    arch_type: type
    stage_base: str
    stages: str


FAMILIES = (
    ModelFamily(
        "HiFiC",
        ArchConfig,
        "hific_lit.training.base.RDStage",
        "stage=base (rate, MSE, LPIPS) or stage=gan (adds D; warmstart=<base run>/checkpoints/last.ckpt)",
    ),
    ModelFamily(
        "GC2018",
        GC2018Config,
        "hific_lit.training.gc2018.GC2018Stage",
        "stage=gc2018 (the paper's GAN objective) or stage=gc2018_mse (MSE only)",
    ),
)
"""The models ``hific train`` trains (HiFiC also covers MRIC and imported JT models: ``arch=hific|jt|small|tiny``)."""

HINTS = {
    "warmstart": "warmstart=<base-stage run>/checkpoints/last.ckpt (the GAN stage starts from a trained base stage)",
    "data.train_dir": "data.train_dir=/path/to/training/images",
}
"""How to fill a mandatory value left ``???``, for the keys the configs leave so."""


def missing_keys(node: DictConfig | ListConfig, prefix: str = "") -> list[str]:
    """The dotted keys left ``???`` under ``node``, found without resolving any interpolation (which may be what
    does not fit, e.g. ``${arch.discriminator_scales}`` of a HiFiC arch)."""
    found = []
    keys = node.keys() if isinstance(node, DictConfig) else range(len(node))
    for key in keys:
        dotted = f"{prefix}{key}"
        if OmegaConf.is_missing(node, key):
            found.append(dotted)
        elif not OmegaConf.is_interpolation(node, key):
            child = node._get_node(key)
            if isinstance(child, DictConfig | ListConfig) and not child._is_none():
                found += missing_keys(child, f"{dotted}.")
    return found


def family_of_arch(arch: object) -> ModelFamily:
    """The family whose arch dataclass ``arch`` is."""
    for family in FAMILIES:
        if isinstance(arch, family.arch_type):
            return family
    raise SettingError(f"arch is a {type(arch).__name__}, which no training stage takes")


def family_of_stage(target: str) -> ModelFamily | None:
    """The family whose base stage the class named ``target`` is or derives from; ``None`` if none."""
    stage_class = hydra.utils.get_class(target)
    for family in FAMILIES:
        if issubclass(stage_class, hydra.utils.get_class(family.stage_base)):
            return family
    return None


def build_arch(cfg: DictConfig) -> object:
    """The arch dataclass of ``cfg.arch``; a value it refuses is a :class:`SettingError` naming ``arch.``."""
    try:
        return hydra.utils.instantiate(cfg.arch)
    except InstantiationException as exc:
        cause = exc.__cause__ or exc
        raise SettingError(f"arch: {cause}") from None


def check_training_config(cfg: DictConfig) -> None:
    """Raise a one-line :class:`SettingError` unless arch, stage and the mandatory values fit together."""
    arch_choice = HydraConfig.get().runtime.choices.get("arch") if HydraConfig.initialized() else None
    arch = build_arch(cfg)
    arch_family = family_of_arch(arch)
    stage_family = family_of_stage(cfg.stage._target_)
    if stage_family is not arch_family:
        shown = f"arch={arch_choice}" if arch_choice else "this arch"
        stage_kind = stage_family.name if stage_family else "another model's"
        raise SettingError(
            f"{shown} is a {arch_family.name} model, but the stage ({cfg.stage._target_}) trains {stage_kind}: "
            f"use {arch_family.stages}"
        )
    missing = sorted(key for key in missing_keys(cfg) if not key.startswith("hydra."))
    if cfg.get("require_warmstart") and not cfg.get("warmstart"):
        missing.append("warmstart")
    if missing:
        hints = [HINTS.get(key, f"{key}=...") for key in missing]
        raise SettingError(f"{', '.join(missing)} must be set: add {'; '.join(hints)}")
    if isinstance(arch, ArchConfig):
        check_rate_anchors(arch, cfg.loss.get("anchor_targets"))


def check_rate_anchors(arch: ArchConfig, targets: ListConfig | None) -> None:
    """A rate-conditioned HiFiC trains one target per rate anchor (``regime=rate``); a fixed-rate one none."""
    if arch.rate_conditioning and len(targets or []) != arch.rate_anchors:
        raise SettingError(
            f"arch.rate_conditioning trains one rate target per anchor ({arch.rate_anchors}): add regime=rate (or "
            "loss.anchor_targets=[...] and loss.anchor_lambda_a=[...])"
        )
    if targets and not arch.rate_conditioning:
        raise SettingError(
            "loss.anchor_targets (regime=rate) are for a rate-conditioned model: add "
            "arch.rate_conditioning=true, or pick another regime"
        )
