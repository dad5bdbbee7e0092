"""Loggers that continue a resumed run: the same CSV file appended to, the same wandb run.

- :class:`ResumableCSVLogger` writes ``<run>/csv/version_0/metrics.csv`` and, in a resumed run, appends to it.
  The steps between the checkpoint a run resumes from and the moment it stopped are trained again; their rows
  from the stopped run are dropped when the resumed run logs its first step, so the file reads as one run.
  Rows are written as they are logged.
- :class:`ResumableWandbLogger` keeps the run's wandb id in ``<run>/wandb_run_id``, so that a resumed run
  continues the same wandb run (Lightning's logger resumes by id). wandb drops the steps a resumed run logs
  again, up to the last step it had received.
"""

from __future__ import annotations

import csv
import io
import secrets
import string
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import CSVLogger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.utilities import rank_zero_only

from hific_lit.io.files import atomic_write_bytes

RUN_ID_FILE = "wandb_run_id"


class AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, appending to an existing ``metrics.csv`` instead of deleting it.

    The first step logged drops the file's rows of that step and later ones (logged by a run that stopped
    after the checkpoint this one resumed from).
    """

    def _check_log_dir_exists(self) -> None:
        self._trimmed = False
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = list(csv.DictReader(file).fieldnames or [])

    def log_metrics(self, metrics_dict: dict[str, float], step: int | None = None) -> None:
        if not self._trimmed and step is not None:
            self._trimmed = True
            self._drop_rows_from(step)
        super().log_metrics(metrics_dict, step)

    def _drop_rows_from(self, step: int) -> None:
        if not self._fs.isfile(self.metrics_file_path):
            return
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            reader = csv.DictReader(file)
            rows = list(reader)
            fields = reader.fieldnames or []
        kept = [row for row in rows if row.get("step") and int(float(row["step"])) < step]
        if len(kept) == len(rows):
            return
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=fields)
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_bytes(self.metrics_file_path, text.getvalue().encode())


class ResumableCSVLogger(CSVLogger):
    """Lightning's CSV logger writing one file per run folder (``version`` 0) that a resumed run appends to.

    Rows are written as they are logged (``flush_logs_every_n_steps=1``, an append of a line), so a killed run
    loses none of the steps before its last checkpoint.
    """

    def __init__(
        self, save_dir: str | Path, name: str = "csv", version: int | str = 0, flush_logs_every_n_steps: int = 1
    ) -> None:
        super().__init__(save_dir, name=name, version=version, flush_logs_every_n_steps=flush_logs_every_n_steps)

    @property
    @rank_zero_experiment
    def experiment(self) -> AppendingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def persistent_run_id(folder: str | Path) -> str:
    """The wandb id of the run in ``folder``: read from ``folder/wandb_run_id``, else new (and written by rank zero)."""
    path = Path(folder) / RUN_ID_FILE
    if path.is_file():
        return path.read_text().strip()
    run_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))  # as wandb's own
    if rank_zero_only.rank == 0:
        atomic_write_bytes(path, run_id.encode())
    return run_id


class ResumableWandbLogger(WandbLogger):
    """Lightning's wandb logger with the run folder's persistent id (:func:`persistent_run_id`), unless ``id`` says."""

    def __init__(self, save_dir: str | Path = ".", id: str | None = None, **kwargs: Any) -> None:
        super().__init__(save_dir=save_dir, id=id or persistent_run_id(save_dir), **kwargs)
