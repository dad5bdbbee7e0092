"""A Hydra callback the sweep smoke tests add with ``+hydra.callbacks.probe=...``: what each job returned to Hydra,
the value a sweeper receives (``JobReturn.return_value``), one JSON line per job in ``path``.

Not a test module; ``tests/`` is put on PYTHONPATH by the tests that use it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class JobReturnProbe(Callback):
    """Append ``{"job": <hydra.job.num>, "returned": <the job's return value>}`` to ``path`` as each job ends."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        returned = job_return.return_value if job_return.status == JobStatus.COMPLETED else "raised"
        with self.path.open("a") as f:
            f.write(json.dumps({"job": config.hydra.job.num, "returned": returned}) + "\n")
