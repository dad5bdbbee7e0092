"""Shared by the benchmarks: time a call, and measure the peak memory of ``hific`` in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

_MEASURED_CLI = """
import atexit, runpy, sys

def report_peak():
    with open("/proc/self/status") as f:
        sys.stderr.write(next(line for line in f if line.startswith("VmHWM")))

atexit.register(report_peak)
sys.argv = ["hific", *sys.argv[1:]]
runpy.run_module("hific_lit.cli", run_name="__main__")
"""


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` calls of ``fn`` after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def peak_rss_of_cli(cli_args: list[str]) -> tuple[int, float]:
    """Run ``hific CLI_ARGS`` in a fresh interpreter; (its peak resident bytes, wall seconds).

    The child reads its own VmHWM at exit: ``wait4``'s ``ru_maxrss`` would also count the pages the
    child shared with this (large) process between fork and exec.
    """
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _MEASURED_CLI, *cli_args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"hific {' '.join(cli_args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    peak_kb = next(int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("VmHWM"))
    return peak_kb * 1024, time.perf_counter() - start
