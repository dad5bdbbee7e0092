"""``<run>/checkpoints/iter_<N>.ckpt``: checkpoints to resume from, every few iterations and on a stop signal.

:class:`ResumePoints` writes one every ``every_n_iterations`` iterations, at the end of training, and after the
step during which a scheduler's stop signal arrived (:mod:`hific_lit.training.preemption`); it keeps the newest
``keep``. It writes at the end of a step, where Lightning writes its own periodic checkpoints (so that Lightning
restores its loops exactly), after the loggers have written out what they hold. A stop takes effect at the start
of the next step, once the stopped step is logged and validated. Each file is written atomically
(:class:`~hific_lit.training.checkpoint_io.AtomicCheckpointIO`). ``ckpt_path=auto`` resumes from the newest good
one (:mod:`hific_lit.training.resume`).
"""

from __future__ import annotations

import logging
import re
import signal
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Checkpoint

from hific_lit.training.preemption import Preempted, StopSignals, requeue_slurm_job, slurm_job_id

log = logging.getLogger(__name__)

NAME = re.compile(r"iter_(\d+)\.ckpt")


def resume_point_name(iteration: int) -> str:
    """The file name of the resume point after ``iteration`` iterations."""
    return f"iter_{iteration:07d}.ckpt"


class ResumePoints(Checkpoint):
    """Checkpoints to resume from: every ``every_n_iterations`` iterations, at the end, and on a stop signal.

    Args:
        dirpath: the folder (``<run>/checkpoints``, where ``ckpt_path=auto`` looks).
        every_n_iterations: iterations between two checkpoints (0: only at the end and on a signal).
        keep: how many of the newest to keep (older ``iter_*.ckpt`` files are removed once a newer one is written;
            so are those of higher iterations, left by a run this one does not continue: one started afresh in
            the same folder, or resumed from an earlier checkpoint).

    A stop signal (SIGTERM, SIGUSR1) on any rank ends training after the current step on every rank: this
    callback writes a checkpoint and raises :class:`~hific_lit.training.preemption.Preempted`, so that the
    process exits with status 75 (``REQUEUE``); on SLURM a SIGUSR1 also requeues the job.
    """

    def __init__(self, dirpath: str | Path, every_n_iterations: int = 1000, keep: int = 3) -> None:
        if every_n_iterations < 0 or keep < 1:
            raise ValueError(f"need every_n_iterations >= 0 and keep >= 1, got {every_n_iterations} and {keep}")
        self.dirpath = Path(dirpath)
        self.every_n_iterations = every_n_iterations
        self.keep = keep
        self.signals = StopSignals()
        self.stopping: Preempted | None = None
        self.last_saved: tuple[int, Path] | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.signals.install(lambda: int(pl_module.iteration))

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """After a step (where Lightning's own periodic checkpoints are written): save if due or if any rank
        received a stop signal; a stop takes effect at the next batch, once this one is logged and validated."""
        iteration = int(pl_module.iteration)
        received, after = self.signals.received, self.signals.received_after
        if received is not None and after is not None:
            log.warning("%s received after iteration %d", signal.Signals(received).name, after)
            self.signals.received_after = None
        signum = self.signals.agreed(trainer)
        every = self.every_n_iterations
        if signum is None and not (every > 0 and iteration % every == 0):
            return
        path = self.save(trainer, iteration)
        if signum is not None:
            self.stopping = Preempted(signum, iteration, path)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Stop (every rank) if a stop signal came: the last step is logged and validated by now."""
        if self.stopping is None:
            return
        stop = self.stopping
        job = slurm_job_id()
        if stop.signal_name == "SIGUSR1" and job is not None and trainer.is_global_zero:
            requeue_slurm_job(job)
        if trainer.is_global_zero:
            log.warning(
                "%s: stopped after iteration %d, checkpoint %s; exiting with status 75 for a requeue "
                "(the same command resumes)",
                stop.signal_name,
                stop.iteration,
                stop.checkpoint,
            )
        raise stop

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.save(trainer, int(pl_module.iteration))

    def save(self, trainer: pl.Trainer, iteration: int) -> Path:
        """Write ``iter_<iteration>.ckpt`` (every rank takes part) unless already written; remove the oldest."""
        path = self.dirpath / resume_point_name(iteration)
        if self.last_saved is not None and self.last_saved[0] == iteration:
            return self.last_saved[1]
        for logger in trainer.loggers:
            logger.save()
        trainer.save_checkpoint(path, weights_only=False)
        self.last_saved = (iteration, path)
        points = sorted((int(m[1]), p) for p in self.dirpath.glob("iter_*.ckpt") if (m := NAME.fullmatch(p.name)))
        beyond = [p for n, p in points if n > iteration]
        if beyond and trainer.is_global_zero:
            names = ", ".join(p.name for p in beyond)
            log.info("removing %s: resume points of a run this one does not continue", names)
        for old in beyond + [p for n, p in points if n <= iteration][: -self.keep]:
            trainer.strategy.remove_checkpoint(old)
        return path
