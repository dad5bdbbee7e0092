"""Config groups made from Python definitions, so that each number is stated once.

==============  ==========================================================  ===================================
group           node                                                        used by
==============  ==========================================================  ===================================
``arch``        :data:`~hific_lit.models.hific.arch.ARCH_PRESETS` and the   ``arch=small`` (train.yaml)
                GC2018 presets: ``_target_`` plus every field
``regime``      :data:`~hific_lit.training.losses.REGIMES` (target rate,    ``regime=low`` (train.yaml)
                λ_A, λ_B); ``rate``: the three as a rate-conditioned
                model's anchors (:func:`rate_regime`)
``loss``        :class:`~hific_lit.training.losses.LossConfig`'s defaults   ``loss=default`` (train.yaml)
                with the target and the rate weights from ``regime``
``optimizer``   Adam at :data:`~hific_lit.training.losses.ADAM_LR`           ``stage/base.yaml``, ``stage/gan.yaml``
                (``adam``); GC2018's ``gc2018`` and ``gc2018_prior``       ``stage/gc2018_mse.yaml``
                (:mod:`~hific_lit.training.gc2018_losses`)
``gc2018_loss`` :class:`~hific_lit.training.gc2018_losses.GC2018Loss`'s      ``stage/gc2018_mse.yaml``
                defaults
``lr_schedule`` :class:`~hific_lit.training.losses.LRSchedule`'s defaults   ``stage/base.yaml``
``crops``       :data:`~hific_lit.data.transforms.AUTHORS_CROPS`            every ``data/*.yaml``
==============  ==========================================================  ===================================

Each node is a plain config, so overrides reach it where it lands: ``arch.residual_blocks=1``,
``regime.lambda_b=0.0625``, ``stage.codec_optimizer.lr=3e-4``, ``stage.lr_schedule.decay_iteration=1000``,
``data.crop_size=128``, and interpolations such as ``${arch.latent_channels}`` work as with a YAML file.
"""

from __future__ import annotations

from dataclasses import asdict, fields

from hydra.core.config_store import ConfigStore

from hific_lit.data.transforms import AUTHORS_CROPS
from hific_lit.models.gc2018.arch import GC2018_PRESETS
from hific_lit.models.hific.arch import ARCH_PRESETS
from hific_lit.training.gc2018_losses import GC2018_ADAM, PRIOR_ADAM, GC2018Loss
from hific_lit.training.losses import ADAM_LR, REGIMES, LossConfig, LRSchedule, Regime

REGIME_FIELDS = tuple(field.name for field in fields(Regime))
"""The loss fields each ``regime`` sets."""
ANCHOR_FIELDS = ("anchor_targets", "anchor_lambda_a")
"""The loss fields a rate-conditioned model's ``regime`` sets too (``regime=rate``); empty for the others."""


def rate_regime() -> dict:
    """``regime=rate``: one rate anchor per regime of :data:`REGIMES` (low, med, high), each with its target and λ_A.

    ``target_bpp``/``lambda_a`` are med's (a rate-conditioned model uses the anchors'); ``lambda_b`` is shared.
    """
    anchors = [REGIMES[name] for name in ("low", "med", "high")]
    return asdict(REGIMES["med"]) | {
        "anchor_targets": [regime.target_bpp for regime in anchors],
        "anchor_lambda_a": [regime.lambda_a for regime in anchors],
    }


def register_configs() -> None:
    """Store the nodes of the table above in Hydra's config store (idempotent)."""
    store = ConfigStore.instance()
    for name, arch in ARCH_PRESETS.items():
        store.store(
            group="arch", name=name, node={"_target_": "hific_lit.models.hific.arch.ArchConfig", **arch.to_dict()}
        )
    for name, gc_arch in GC2018_PRESETS.items():
        node = {"_target_": "hific_lit.models.gc2018.arch.GC2018Config", **gc_arch.to_dict()}
        store.store(group="arch", name=name, node=node)
    for name, regime in REGIMES.items():
        store.store(group="regime", name=name, node=asdict(regime))
    store.store(group="regime", name="rate", node=rate_regime())
    loss = {"_target_": "hific_lit.training.losses.LossConfig", **asdict(LossConfig())}
    loss |= {field: f"${{regime.{field}}}" for field in REGIME_FIELDS}
    loss |= {field: f"${{oc.select:regime.{field},null}}" for field in ANCHOR_FIELDS}
    store.store(group="loss", name="default", node=loss)
    adam = {"_target_": "torch.optim.Adam", "_partial_": True}
    store.store(group="optimizer", name="adam", node=adam | {"lr": ADAM_LR})
    store.store(group="optimizer", name="gc2018", node=adam | GC2018_ADAM | {"betas": list(GC2018_ADAM["betas"])})
    store.store(group="optimizer", name="gc2018_prior", node=adam | PRIOR_ADAM)
    gc2018_loss = {"_target_": "hific_lit.training.gc2018_losses.GC2018Loss", **asdict(GC2018Loss())}
    store.store(group="gc2018_loss", name="default", node=gc2018_loss)
    schedule = {"_target_": "hific_lit.training.losses.LRSchedule", **asdict(LRSchedule())}
    store.store(group="lr_schedule", name="default", node=schedule)
    store.store(group="crops", name="default", node=asdict(AUTHORS_CROPS))


register_configs()
