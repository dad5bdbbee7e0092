"""Train HiFiC: an alias of ``hific train`` (same Hydra overrides; config conf/train.yaml, see the README).

Examples::

    python scripts/train.py experiment=demo_base                  # small model on CPU, minutes
    python scripts/train.py regime=med trainer.devices=4          # paper model, 4 GPUs (DDP)
    python scripts/train.py stage=gan warmstart=RUN/checkpoints/last.ckpt
    python scripts/train.py ... hydra.run.dir=RUN                 # resumes RUN where it stopped (ckpt_path=auto)
    python scripts/train.py ckpt_path=RUN/checkpoints/last.ckpt   # resume from that checkpoint
    python scripts/train.py -m regime=low,med,high                # a sweep

Exit status: 0 ok, 1 some sweep jobs failed (each recorded in its metrics.json), 2 nothing could run,
75 stopped by SIGTERM/SIGUSR1 after writing a checkpoint (run the same command to resume;
docs/preemption.md).
"""

import sys

from hific_lit.cli import hydra_apps

if __name__ == "__main__":
    sys.exit(hydra_apps.main("train", sys.argv[1:], "scripts/train.py"))
