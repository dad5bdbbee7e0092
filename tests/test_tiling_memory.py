"""The memory budget holds for real: peak resident memory of tiled g_a / g_s, measured in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SIDE = 1024
BUDGET = 24 * 2**20
SLACK = 24 * 2**20
"""Beyond the budget: whole-image buffers (synthesis: 12 MiB image, 3 MiB trunk output, 1.5 MiB
y_hat) and kernels' scratch space."""

ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": str(128 * 2**10)}
"""glibc's default mmap threshold, pinned. Left dynamic, glibc raises it to up to 32 MiB after the
first large free, so this test's small (few-MiB) tile activations come from a heap that fragments
and keeps ~50 MiB more than the live tensors. Tiles of the default budget (activations over 32 MiB)
are mmapped either way; see scripts/bench_tiling.py for peaks under the default allocator."""

_CHILD = """
import json, sys, torch
from hific_lit import HiFiC
from hific_lit.tiling import tiled_analysis, tiled_synthesis

def peak_rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))

def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

torch.set_num_threads(1)
budget = None if sys.argv[1] == "none" else int(sys.argv[1])
side = int(sys.argv[2])
model = HiFiC.from_preset("small").eval()
x = torch.rand(1, 3, side, side) * 2 - 1
with torch.no_grad():
    model.g_s(model.g_a(x[..., :64, :64]))  # warm up: load kernels outside the measurement
peaks = {}
reset_peak(); base = peak_rss()
y = tiled_analysis(model.g_a, x, budget)
peaks["analysis"] = peak_rss() - base
reset_peak(); base = peak_rss()
x_hat = tiled_synthesis(model.g_s, torch.round(y), budget)
peaks["synthesis"] = peak_rss() - base
print(json.dumps(peaks))
"""


def _peaks(budget: int | None) -> dict[str, int]:
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, **ALLOCATOR, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    args = [sys.executable, "-c", _CHILD, "none" if budget is None else str(budget), str(SIDE)]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to reset the peak RSS")
def test_tiled_transforms_stay_within_the_memory_budget() -> None:
    tiled, whole = _peaks(BUDGET), _peaks(None)
    for transform in ("analysis", "synthesis"):
        assert tiled[transform] <= BUDGET + SLACK, (transform, tiled, whole)
        assert whole[transform] > 3 * (BUDGET + SLACK), (transform, tiled, whole)  # the budget made the difference
