"""Which checkpoint a run resumes from (``ckpt_path``): a file, ``auto`` (the newest good one of the run), or none.

``ckpt_path=auto`` (the default of ``conf/train.yaml``) looks in ``<run>/checkpoints`` and resumes from the
checkpoint with the most training steps that passes :func:`~hific_lit.training.checkpoint_io.verify_checkpoint`;
a truncated or damaged one is skipped with a one-line warning, and a folder without checkpoints starts afresh.
So a requeued job, or the same command run again with the same ``hydra.run.dir``, continues where it stopped.
An explicit path that does not exist or does not load stops the run in one line (exit status 2).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from pytorch_lightning.utilities import rank_zero_only
from torch import nn

from hific_lit.errors import CheckpointError
from hific_lit.training.base import ARCH_KEY, IterationCheckpointing, check_same_kernel_form
from hific_lit.training.checkpoint_io import verify_checkpoint
from hific_lit.training.warmstart import read_lightning_checkpoint

log = logging.getLogger(__name__)

AUTO = "auto"
CHECKPOINT_FOLDER = "checkpoints"
LEFTOVER_GLOB = ".*.ckpt.*.tmp"
"""Temporary files of checkpoint writes that a kill cut short (:func:`hific_lit.io.files.atomic_file`'s names)."""


def resolve_ckpt_path(value: str | None, output_dir: str | Path) -> Path | None:
    """The checkpoint to resume from: ``value`` checked, the newest good one of ``output_dir`` for ``auto``,
    or ``None`` (a fresh start) for ``None`` / ``auto`` without checkpoints. Raises :class:`CheckpointError`."""
    if value is None or str(value) == "":
        return None
    if str(value) == AUTO:
        return newest_good_checkpoint(Path(output_dir) / CHECKPOINT_FOLDER)
    path = Path(value).expanduser()
    if not path.is_file():
        raise CheckpointError(
            f"ckpt_path={value}: no such file (ckpt_path=auto resumes from the newest checkpoint of the run folder)"
        )
    read_lightning_checkpoint(path)
    try:
        verify_checkpoint(path)
    except CheckpointError as exc:
        raise CheckpointError(f"ckpt_path={value} cannot be resumed from: {exc}") from None
    return path


def newest_good_checkpoint(folder: Path) -> Path | None:
    """The checkpoint of ``folder`` with the most training steps (then the newest) that verifies, else ``None``.

    Leftover temporary files of cut-short writes are removed first (by rank zero); every checkpoint that does
    not open, or fails verification, is named in a one-line warning and skipped.
    """
    if rank_zero_only.rank == 0:
        for leftover in folder.glob(LEFTOVER_GLOB):
            leftover.unlink(missing_ok=True)
            log.info("ckpt_path=auto: removed %s, a checkpoint write cut short", leftover.name)
    ranked = []
    for path in folder.glob("*.ckpt"):
        try:
            steps = int(read_lightning_checkpoint(path).get("global_step", 0))
        except CheckpointError as exc:
            log.warning("ckpt_path=auto: skipping %s", exc)
            continue
        ranked.append((steps, path.stat().st_mtime_ns, path))
    for _, _, path in sorted(ranked, reverse=True):
        try:
            verify_checkpoint(path)
        except CheckpointError as exc:
            log.warning("ckpt_path=auto: skipping %s", exc)
            continue
        log.info("ckpt_path=auto: resuming from %s", path)
        return path
    log.info("ckpt_path=auto: no checkpoint in %s, starting afresh", folder)
    return None


def require_same_tensors(module: nn.Module, path: Path) -> None:
    """Refuse, in one line, a checkpoint whose weights are not exactly ``module``'s (another stage or architecture,
    or h_a's kernels in the other form: :func:`~hific_lit.training.base.check_same_kernel_form`)."""
    checkpoint = read_lightning_checkpoint(path)
    if isinstance(module, IterationCheckpointing):
        check_same_kernel_form(module.model.arch.to_dict(), checkpoint.get(ARCH_KEY))
    stored: Mapping = checkpoint["state_dict"]
    own = module.state_dict()
    missing = sorted(set(own) - set(stored))
    unexpected = sorted(set(stored) - set(own))
    reshaped = sorted(k for k in set(own) & set(stored) if own[k].shape != stored[k].shape)
    if missing or unexpected or reshaped:
        raise CheckpointError(
            f"{path} was written by another stage or architecture ({len(missing)} tensors missing, e.g. "
            f"{missing[:2]}; {len(unexpected)} unexpected, e.g. {unexpected[:2]}; {len(reshaped)} of another shape, "
            f"e.g. {reshaped[:2]}): resume with the run's own configuration, or start afresh in another "
            "hydra.run.dir (or with ckpt_path=null)"
        )
