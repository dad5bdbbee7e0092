"""Stop signals of schedulers: SIGTERM or SIGUSR1 ends the run after the current step, for a requeue.

A signal handler only records the signal; :meth:`StopSignals.agreed` asks every rank between two steps (one
tiny all-reduce), so a signal that reaches one rank stops all of them after the same step. The caller
(:class:`~hific_lit.training.resume_points.ResumePoints`) then writes a checkpoint and raises :class:`Preempted`,
and the process exits with :data:`~hific_lit.errors.REQUEUE`. On SLURM, SIGUSR1 (``#SBATCH --signal=USR1@90``,
sent before the time limit) also requeues the job with ``scontrol requeue``; SIGTERM (preemption, ``scancel``)
leaves the decision to SLURM. docs/preemption.md.

Lightning's own handling is not used for these two signals: its SIGTERM handler runs a collective inside the
signal handler (which mismatches the other ranks' collectives when the signal reaches one rank), and its SLURM
SIGUSR1 handler writes a checkpoint inside the handler, i.e. in the middle of a step (codec updated, aux and
the iteration counter not). Lightning restores every handler it found when the fit ends.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.utilities import rank_zero_only

from hific_lit.errors import REQUEUE

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Preempted(SystemExit):
    """Training stopped on a scheduler's signal after writing ``checkpoint``; the exit status is :data:`REQUEUE`.

    ``checkpoint`` is ``None`` when the signal came before training started (nothing to save).
    """

    def __init__(self, signum: int, iteration: int | None = None, checkpoint: Path | None = None) -> None:
        super().__init__(REQUEUE)
        self.signal_name = signal.Signals(signum).name
        self.iteration = iteration
        self.checkpoint = checkpoint


def _stop_now(signum: int, frame: FrameType | None) -> None:
    log.warning("%s before training started: exiting with status 75 for a requeue", signal.Signals(signum).name)
    job = slurm_job_id()
    if signum == signal.SIGUSR1 and job is not None and rank_zero_only.rank == 0:
        requeue_slurm_job(job)
    raise Preempted(signum)


@contextmanager
def exit_on_stop_signals() -> Iterator[None]:
    """While setting up, a stop signal ends the run at once (status 75): nothing is trained yet, and every file
    is written atomically. Training replaces these handlers (:class:`StopSignals`); the previous ones come back
    at the end. Outside the main thread, signals stay as they are."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    for signum in STOP_SIGNALS:
        signal.signal(signum, _stop_now)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class StopSignals:
    """Handlers of :data:`STOP_SIGNALS` that record the signal and let the step in progress finish.

    The first signal also records the iterations completed when it came (:attr:`received_after`).
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self.received_after: int | None = None
        self._progress: Callable[[], int] = lambda: 0

    def install(self, progress: Callable[[], int]) -> None:
        """Handle the stop signals from now on (the main thread only); ``progress()``: iterations completed."""
        self._progress = progress
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._record)

    def _record(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received, self.received_after = signum, self._progress()

    def agreed(self, trainer: pl.Trainer) -> int | None:
        """The stop signal received by any rank (the highest number if several), or ``None``; every rank must ask."""
        if trainer.world_size == 1 or not (dist.is_available() and dist.is_initialized()):
            return self.received
        flag = torch.tensor([self.received or 0], device=trainer.strategy.root_device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item()) or None


def slurm_job_id() -> str | None:
    """The SLURM job to requeue (``<array job>_<task>`` for an array task), or ``None`` outside SLURM."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_job is not None:
        return f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


def requeue_slurm_job(job_id: str) -> bool:
    """``scontrol requeue JOB``; whether it succeeded (a failure is logged, the run still stops for a requeue)."""
    try:
        result = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("scontrol requeue %s failed: %s", job_id, exc)
        return False
    if result.returncode != 0:
        log.warning("scontrol requeue %s failed: %s", job_id, (result.stderr or result.stdout).strip())
        return False
    log.info("SLURM job %s requeued", job_id)
    return True
