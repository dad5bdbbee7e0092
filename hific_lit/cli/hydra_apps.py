"""``hific train`` and ``hific eval``: the Hydra apps of ``conf/train.yaml`` and ``conf/eval.yaml``.

Everything after the command is Hydra's: overrides (``regime=med``, ``eval_set=clic2020``),
``-m`` sweeps, ``--cfg job``, ``--help``. ``scripts/train.py`` and ``scripts/eval.py`` are
aliases that call :func:`main` the same way. Each job returns its ``optimized_metric`` to Hydra, so that a
sweeper that optimises (``hparams_search=optuna``) sees it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from omegaconf import DictConfig

from hific_lit.errors import NOTHING_RAN, OK, REQUEUE, SOME_FAILED, exit_status

log = logging.getLogger(__name__)


class JobOutcome(NamedTuple):
    """What one job of a Hydra app gives: its exit status, and the value a sweeper optimises."""

    status: int
    objective: float | list[float] | None = None
    """The job's ``optimized_metric`` values (NaN when a sweep job failed); ``None`` where there is none."""


def train_task(cfg: DictConfig) -> JobOutcome:
    """Train one HiFiC stage; Hydra overrides as in conf/train.yaml.

    Trains with PyTorch Lightning (:func:`hific_lit.training.run.run`); everything after `train` is Hydra's
    (overrides, -m sweeps, --cfg job, --help). In a sweep a failed job is recorded and gives 1.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from hific_lit.training.run import run

    in_sweep = HydraConfig.get().mode == RunMode.MULTIRUN
    objective = run(cfg, in_sweep=in_sweep)
    metrics = Path(cfg.paths.output_dir) / "metrics.json"
    failed = in_sweep and metrics.is_file() and json.loads(metrics.read_text()).get("status") == "failed"
    return JobOutcome(SOME_FAILED if failed else OK, objective)


def eval_task(cfg: DictConfig) -> JobOutcome:
    """Evaluate checkpoints from real bitstreams; Hydra overrides as in conf/eval.yaml.

    Runs :func:`hific_lit.eval.pipeline.evaluate` into the run folder against JPEG/WebP/AVIF at the
    same bpp, then logs its numbers; everything after `eval` is Hydra's.
    """
    from hific_lit.eval.pipeline import evaluate

    summary = evaluate(cfg)
    for name, entry in summary["checkpoints"].items():
        for method, values in entry["methods"].items():
            keys = ("bpp", "psnr", "ms_ssim", "lpips", "fid")
            shown = ", ".join(f"{key} {values[key]:.4g}" for key in keys if values.get(key) is not None)
            log.info("%-12s %-6s %s", name, method, shown)
    for metric, reason in summary["missing"].items():
        log.warning("missing %s: %s", metric, reason)
    log.info("results in %s (summary.json, per_image.csv, plots/, <checkpoint>/viewer.html)", cfg.paths.output_dir)
    return JobOutcome(OK)


APPS: dict[str, Callable[[DictConfig], JobOutcome]] = {"train": train_task, "eval": eval_task}
"""Command -> its task; the config is ``conf/<command>.yaml`` and the Hydra job is named after the command."""


def main(command: str, overrides: Sequence[str], prog: str) -> int:
    """Run the Hydra app of ``command`` with ``overrides`` (Hydra's command line) and return the exit status.

    Each job's :class:`~hific_lit.errors.HificError` is one line and status 2 (nothing could run);
    a sweep's status is its worst job's. Each job returns its objective to Hydra (:class:`JobOutcome`).
    ``--help``, ``--cfg job`` and the like give 0; an override Hydra cannot apply gives 2, as does any other
    failure before a job has finished.
    """
    from hydra import version
    from hydra._internal.utils import _run_hydra, get_args_parser

    from hific_lit.config import CONFIG_DIR  # also registers the arch group

    task = APPS[command]
    statuses: list[int] = []
    if command == "train":
        # Lightning, imported before Hydra sets up logging, keeps its own stderr handler for its messages
        # (DDP set-up, trainer summary), as with scripts/train.py before it became an alias.
        import hific_lit.training.run  # noqa: F401

    def job(cfg: DictConfig) -> float | list[float] | None:
        outcome = JobOutcome(NOTHING_RAN)

        def action() -> int:
            nonlocal outcome
            outcome = task(cfg)
            return outcome.status

        statuses.append(exit_status(action, prog))
        return outcome.objective

    version.setbase("1.3")
    parser = get_args_parser()
    parser.prog = prog
    # What @hydra.main does, with the command line handed in instead of read from sys.argv
    # (sys.argv stays as it was, so that runs record the command that started them).
    args = parser.parse_args(list(overrides))
    args.overrides.insert(0, f"hydra.job.name={command}")  # train.log, eval.log; a later override still wins
    try:
        _run_hydra(
            args=args,
            args_parser=parser,
            task_function=job,
            config_path=str(CONFIG_DIR),
            config_name=command,
        )
    except SystemExit as exc:  # Hydra reported a bad override or a crash on one line (HYDRA_FULL_ERROR=1: all)
        if exc.code in (0, None):
            return OK
        if exc.code == REQUEUE:  # training stopped on a scheduler's signal after a checkpoint (a sweep stops too)
            return REQUEUE
        return SOME_FAILED if statuses else NOTHING_RAN
    return max(statuses, default=OK)
