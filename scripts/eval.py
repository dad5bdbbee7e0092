"""Evaluate HiFiC checkpoints: an alias of ``hific eval`` (same Hydra overrides; config conf/eval.yaml).

    python scripts/eval.py ckpt=model.ckpt                         # Kodak (hific download kodak)
    python scripts/eval.py 'ckpt=[low.ckpt,med.ckpt,high.ckpt]' eval_set=clic2020
    python scripts/eval.py ckpt=model.ckpt eval_set=folder eval_set.path=~/photos metrics.fid=false

Results go to the Hydra run folder (outputs/eval/<time>/). Exit status: 0 ok, 2 nothing could run.
"""

import sys

from hific_lit.cli import hydra_apps

if __name__ == "__main__":
    sys.exit(hydra_apps.main("eval", sys.argv[1:], "scripts/eval.py"))
