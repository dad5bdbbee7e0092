"""``train(cfg) -> metrics``: one training stage from a composed Hydra config (``conf/train.yaml``).

``hific train`` (and its alias ``scripts/train.py``) runs :func:`run` as the task of a Hydra app
(:mod:`hific_lit.cli.hydra_apps`); :func:`run` adds sweep behaviour: inside a multirun a failing job is
logged and recorded, and the sweep goes on; it returns ``optimized_metric``, which the app hands to the sweeper.

Length of a run: ``max_iterations`` counts training batches (iterations of our own counter).
Lightning's ``trainer.max_steps`` counts optimizer steps (two per iteration in the base stage,
three in the GAN stage) and is derived from it here; do not set it yourself.

Resuming: ``ckpt_path=auto`` (the default) continues from the newest good checkpoint of the run folder
(:mod:`hific_lit.training.resume`); every run writes its checkpoints atomically and verifies them when loading
(:mod:`hific_lit.training.checkpoint_io`), keeps its training steps' random stream
(:mod:`hific_lit.training.random_state`) and stops for a requeue on SIGTERM or SIGUSR1
(:mod:`hific_lit.training.preemption`). docs/preemption.md.
"""

from __future__ import annotations

import json
import logging
import math
import os
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.errors import InstantiationException
from lightning_fabric.plugins.environments import SLURMEnvironment
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import WandbLogger

from hific_lit.config import compose_config as compose_named_config
from hific_lit.config.check import check_training_config
from hific_lit.data.base import CropDataModule, check_global_batch
from hific_lit.errors import HificError, SettingError
from hific_lit.io.files import atomic_write_bytes
from hific_lit.training.base import RDStage, scalar_metrics
from hific_lit.training.callbacks import InferenceExport
from hific_lit.training.checkpoint_io import AtomicCheckpointIO
from hific_lit.training.preemption import Preempted, exit_on_stop_signals
from hific_lit.training.random_state import TrainingRandomState
from hific_lit.training.resume import require_same_tensors, resolve_ckpt_path
from hific_lit.training.warmstart import warm_start

log = logging.getLogger(__name__)

DDP_STRATEGY = "ddp_find_unused_parameters_true"
"""Each manual backward touches only one optimizer's parameters, so DDP must look for unused ones."""


def strategy_for_devices(devices: Any) -> str:
    """``auto`` for exactly one device, DDP (finding unused parameters) otherwise; the ``hific_strategy`` resolver.

    ``devices`` is Lightning's argument: a count, a list of indices, ``"auto"`` or ``-1``.
    """
    if isinstance(devices, str) and devices.strip().isdigit():
        devices = int(devices)
    count = devices if isinstance(devices, int) else len(devices) if not isinstance(devices, str) else -1
    return "auto" if count == 1 else DDP_STRATEGY


if not OmegaConf.has_resolver("hific_strategy"):
    OmegaConf.register_new_resolver("hific_strategy", strategy_for_devices)


def compose_config(overrides: Sequence[str] = (), output_dir: str | Path = "outputs/train/python") -> DictConfig:
    """``conf/train.yaml`` with ``overrides``, composed outside a Hydra app (tests, notebooks), run paths filled in."""
    return compose_named_config("train", overrides, output_dir)


def wandb_key_configured() -> bool:
    """Whether a wandb API key is available (environment or ~/.netrc), i.e. whether online logging can work."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def default_wandb_mode() -> None:
    """wandb runs offline unless a key is configured or ``WANDB_MODE`` says otherwise."""
    if "WANDB_MODE" not in os.environ and not wandb_key_configured():
        os.environ["WANDB_MODE"] = "offline"
        log.info("no wandb API key configured: wandb runs offline (sync later with `wandb sync`)")


def instantiate_dict(cfg: DictConfig | None) -> list[Any]:
    """Instantiate each entry with a ``_target_`` of a dict-of-configs group (callbacks, logger)."""
    if not cfg:
        return []
    return [hydra.utils.instantiate(node) for node in cfg.values() if node is not None and "_target_" in node]


def world_size(trainer_cfg: DictConfig) -> int | None:
    """Processes the Trainer will run (devices x nodes), or ``None`` when only Lightning can tell (``auto``, -1)."""
    devices = trainer_cfg.get("devices", 1)
    if isinstance(devices, str) and devices.strip().isdigit():
        devices = int(devices)
    count = devices if isinstance(devices, int) and devices > 0 else None
    if devices is not None and not isinstance(devices, int | str):
        count = len(devices)
    return None if count is None else count * int(trainer_cfg.get("num_nodes", 1))


def build_datamodule(cfg: DictConfig) -> pl.LightningDataModule:
    """The data module, checked before any model is built: training data present, global batch divisible."""
    datamodule: pl.LightningDataModule = hydra.utils.instantiate(cfg.data)
    if isinstance(datamodule, CropDataModule):
        datamodule.check_source()
        processes = world_size(cfg.trainer)
        if processes is not None:
            check_global_batch(datamodule.batch_size, processes)
    return datamodule


def build_module(cfg: DictConfig, resuming: bool = False) -> RDStage:
    """The stage's LightningModule, warm-started from ``cfg.warmstart`` when set and not ``resuming``."""
    try:
        module: RDStage = hydra.utils.instantiate(cfg.stage)
    except InstantiationException as exc:
        if isinstance(exc.__cause__, HificError):  # e.g. LPIPS weights missing: say so plainly
            raise exc.__cause__ from None
        if isinstance(exc.__cause__, ValueError | TypeError):  # a stage value its class refuses
            raise SettingError(f"stage: {exc.__cause__}") from None
        raise
    if cfg.get("warmstart") and resuming:
        log.info("resuming: warmstart=%s is not applied (the checkpoint holds the weights)", cfg.warmstart)
    elif cfg.get("warmstart"):
        warm_start(module, cfg.warmstart)
    return module


def build_trainer(cfg: DictConfig, module: RDStage, resolved: dict) -> pl.Trainer:
    """The Trainer with loggers and callbacks; ``max_steps`` derived from ``max_iterations``.

    Always added: the atomic, verifying checkpoint writer, the training steps' random state and, on SLURM,
    Lightning's SLURM environment without its own requeue handling (:mod:`hific_lit.training.preemption`).
    """
    callbacks = [*instantiate_dict(cfg.get("callbacks")), TrainingRandomState()]
    for callback in callbacks:
        if isinstance(callback, InferenceExport):
            callback.config = resolved
    loggers = instantiate_dict(cfg.get("logger"))
    if any(isinstance(lg, WandbLogger) for lg in loggers):
        default_wandb_mode()
    max_steps = int(cfg.max_iterations) * module.optimizers_per_iteration
    plugins: list[Any] = [AtomicCheckpointIO()]
    if SLURMEnvironment.detect():
        plugins.append(SLURMEnvironment(auto_requeue=False))
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, max_steps=max_steps, plugins=plugins
    )
    for lg in trainer.loggers:
        lg.log_hyperparams(resolved)
    return trainer


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train one stage as ``cfg`` says; return the final metrics (also written to ``metrics.json``).

    Arch, stage and mandatory values are checked first (:func:`check_training_config`): a config that does not
    fit together stops on one line that names the fix. The checkpoint to resume from is chosen and checked next
    (``ckpt_path``: :func:`~hific_lit.training.resume.resolve_ckpt_path`). Raises
    :class:`~hific_lit.training.preemption.Preempted` (a ``SystemExit``, status 75) when a stop signal ended the
    run: during training after a checkpoint (``metrics.json`` then says ``"status": "preempted"``), or at once
    while setting up.
    """
    check_training_config(cfg)
    with exit_on_stop_signals():
        return fit_stage(cfg)


def fit_stage(cfg: DictConfig) -> dict[str, Any]:
    """:func:`train` once the config is checked: resume or start, build, fit, record the metrics."""
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), output_dir)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, resuming=ckpt_path is not None)
    if ckpt_path is not None:
        require_same_tensors(module, ckpt_path)
    trainer = build_trainer(cfg, module, resolved)
    log.info("training %s for %d iterations", type(module).__name__, cfg.max_iterations)
    try:
        with warnings.catch_warnings():
            if isinstance(datamodule, CropDataModule):  # its loaders do resume mid-epoch (hific_lit.data.base)
                warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before")
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except Preempted as stop:
        if trainer.is_global_zero and stop.checkpoint is not None:
            stopped = {"signal": stop.signal_name, "iteration": stop.iteration, "checkpoint": str(stop.checkpoint)}
            write_metrics(output_dir, {"status": "preempted", **stopped})
        raise
    metrics = dict(module.metrics_before_resume) | scalar_metrics(trainer.callback_metrics)
    metrics["iteration"] = module.iteration
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None:
        metrics["best_checkpoint"] = checkpoint.best_model_path
        metrics["last_checkpoint"] = checkpoint.last_model_path
    if trainer.is_global_zero:
        write_metrics(output_dir, {"status": "ok", **metrics})
    return metrics


def write_metrics(output_dir: Path, metrics: dict[str, Any]) -> None:
    """``metrics.json`` in the run folder, written atomically."""
    text = json.dumps(metrics, indent=2, sort_keys=True, default=str)
    atomic_write_bytes(output_dir / "metrics.json", text.encode())


Objective = float | list[float] | None
"""What a job returns to the sweeper: one value, one per objective, or none."""


def objective(metrics: dict[str, Any], name: str | Sequence[str] | None) -> Objective:
    """The value a sweeper optimises (``optimized_metric``): a metric's value, or a list of values for a list of
    names (a multi-objective sweep, e.g. ``[val/bpp_rounded, val/psnr]``); NaN where the job failed or did not log it.
    """
    if not name:
        return None
    if not isinstance(name, str):
        return [objective(metrics, one) for one in name]
    value = metrics.get(name)
    return float(value) if isinstance(value, int | float) else math.nan


def run(cfg: DictConfig, in_sweep: bool = False) -> Objective:
    """Train and return the values of ``cfg.optimized_metric``; in a sweep a failure is recorded instead of raised."""
    try:
        metrics = train(cfg)
    except Exception as exc:
        if not in_sweep:
            raise
        log.error("job failed, the sweep goes on:\n%s", traceback.format_exc())
        metrics = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        write_metrics(Path(cfg.paths.output_dir), metrics)
    return objective(metrics, cfg.get("optimized_metric"))
