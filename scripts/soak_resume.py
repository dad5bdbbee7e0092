"""Soak test of resuming: kill a tiny training again and again, resume it each time, compare with an uninterrupted run.

Part 1 (one process): a reference run trains ``--iterations`` iterations without interruption. A second run of
the same command (same seed, its own ``hydra.run.dir``) is killed with SIGKILL ``--kills`` times and restarted
after each kill with the default ``ckpt_path=auto``. The kills fall at random iterations spread over the run:
at a random moment of a step, while a checkpoint is being written (a temporary checkpoint file is seen), or
just after the process has restored its checkpoint (within two iterations' time, at most a second, of its log
saying so: during the rest of the set-up or the first steps). Then one SIGTERM: the run must write a checkpoint within
an iteration and exit with status 75. A last restart runs to the end. Reported: resumes that succeeded (resumed
from the newest checkpoint that was whole before the kill, and ran on until killed), checkpoints lost (the newest
whole one before a kill older than what the next start resumed from) or damaged, the final iteration, and whether
the final weights and optimizer states equal the reference run's (bit-exact, else the largest difference).

Part 2 (``--ddp``): the same with 2 DDP processes (gloo on CPU); SIGTERM to rank 1 only: both ranks must stop
after the same step with one checkpoint, rank 0 with status 75; the run then resumes and is compared with an
uninterrupted 2-process run.

Usage: ``python scripts/soak_resume.py [--iterations 300] [--kills 20] [--every 5] [--seed 0] [--out DIR]``
and ``python scripts/soak_resume.py --ddp [--iterations 40]``. Writes ``<out>/summary.json`` and prints it.
docs/preemption.md has the measured numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from hific_lit.errors import REQUEUE, CheckpointError
from hific_lit.training.base import ITERATION_KEY
from hific_lit.training.checkpoint_io import verify_checkpoint
from hific_lit.training.resume import LEFTOVER_GLOB
from hific_lit.training.resume_points import NAME, resume_point_name

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("moment", "write", "moment", "startup", "write")
"""The kinds of kill, in turn: a random moment of a step, during a checkpoint write, during start-up."""
RESUMED = re.compile(r"resumed at iteration (\d+)")
AFRESH = "starting afresh"
RECEIVED = re.compile(r"(SIG\w+) received after iteration (\d+)")
STOPPED = re.compile(r"(SIG\w+): stopped after iteration (\d+)")


def train_command(run_dir: Path, args: argparse.Namespace) -> list[str]:
    """The tiny training of the soak (CPU, bundled photos, CSV log, validation every 25 iterations)."""
    ddp = ["trainer=ddp", "trainer.devices=2", "data.batch_size=4"] if args.ddp else ["data.batch_size=2"]
    return [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        "arch=tiny",
        "data=sample",
        "data.crop_size=64",
        "data.samples_per_epoch=16",
        "data.val_tiles=1",
        "perceptual=null",
        "loss.k_p=0",
        "logger=csv",
        "trainer.accelerator=cpu",
        "trainer.val_check_interval=25",
        "trainer.limit_val_batches=1",
        "trainer.log_every_n_steps=1",
        "trainer.enable_progress_bar=false",
        "callbacks.reconstruction_images=null",
        f"callbacks.resume_points.every_n_iterations={args.every}",
        f"max_iterations={args.iterations}",
        f"seed={args.seed}",
        f"hydra.run.dir={run_dir}",
        *ddp,
    ]


def start(run_dir: Path, args: argparse.Namespace, log: Path) -> subprocess.Popen:
    env = os.environ | {"WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with log.open("w") as out:
        return subprocess.Popen(train_command(run_dir, args), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def newest_resume_point(run_dir: Path) -> int:
    """The highest iteration of a complete ``iter_*.ckpt`` file (0 when none)."""
    found = [int(m[1]) for p in (run_dir / "checkpoints").glob("iter_*.ckpt") if (m := NAME.fullmatch(p.name))]
    return max(found, default=0)


def writing(run_dir: Path) -> bool:
    """Whether a checkpoint is being written (its temporary file exists)."""
    return any((run_dir / "checkpoints").glob(LEFTOVER_GLOB))


def wait_for(proc: subprocess.Popen, condition: Any, timeout: float, poll: float = 0.002) -> bool:
    """Poll ``condition()`` until true (True), the process ends or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if condition():
            return True
        time.sleep(poll)
    return False


def newest_whole_iteration(run_dir: Path) -> int:
    """The highest iteration held by a checkpoint of the run that verifies (0 when none)."""
    best = 0
    for path in (run_dir / "checkpoints").glob("*.ckpt"):
        try:
            verify_checkpoint(path)
        except CheckpointError:
            continue
        best = max(best, int(torch.load(path, weights_only=True, mmap=True)[ITERATION_KEY]))
    return best


def checkpoint_health(run_dir: Path) -> tuple[int, int]:
    """(damaged checkpoint files, leftover temporary files) in the run's checkpoint folder."""
    damaged = 0
    for path in (run_dir / "checkpoints").glob("*.ckpt"):
        try:
            verify_checkpoint(path)
        except CheckpointError:
            damaged += 1
    return damaged, len(list((run_dir / "checkpoints").glob(LEFTOVER_GLOB)))


def compare_final(reference: Path, resumed: Path, iteration: int) -> dict[str, Any]:
    """Weights and optimizer states of the two runs' final checkpoints: equal bit for bit, or the largest difference."""
    name = resume_point_name(iteration)
    a = torch.load(reference / "checkpoints" / name, weights_only=True, map_location="cpu")
    b = torch.load(resumed / "checkpoints" / name, weights_only=True, map_location="cpu")
    pairs = [(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"]]
    for opt_a, opt_b in zip(a["optimizer_states"], b["optimizer_states"], strict=True):
        for key, state in opt_a["state"].items():
            pairs += [(v, opt_b["state"][key][n]) for n, v in state.items() if isinstance(v, torch.Tensor)]
    unequal = [(x, y) for x, y in pairs if not torch.equal(x, y)]
    largest = max((float((x.double() - y.double()).abs().max()) for x, y in unequal), default=0.0)
    return {"tensors_compared": len(pairs), "tensors_unequal": len(unequal), "max_abs_difference": largest}


def reference_run(out: Path, args: argparse.Namespace) -> dict[str, float]:
    """Train without interruption; return the start-up time and seconds per iteration seen from checkpoint files."""
    run_dir = out / "reference"
    began = time.monotonic()
    proc = start(run_dir, args, out / "reference.log")
    seen: dict[int, float] = {}
    while proc.poll() is None:
        seen.setdefault(newest_resume_point(run_dir), time.monotonic() - began)
        time.sleep(0.05)
    if proc.returncode != 0:
        raise SystemExit(f"the reference run failed ({proc.returncode}); see {out / 'reference.log'}")
    first, last = min(k for k in seen if k), max(seen)
    per_iteration = (seen[last] - seen[first]) / max(1, last - first)
    return {"startup_s": seen[first] - first * per_iteration, "seconds_per_iteration": per_iteration}


def resumed_iteration(proc: subprocess.Popen, log: Path) -> int | None:
    """Wait for the run to say where it starts: the iteration it resumed at, 0 for a fresh start, None if it died."""
    found = wait_for(proc, lambda: RESUMED.search(log.read_text()) or AFRESH in log.read_text(), 600, poll=0.05)
    match = RESUMED.search(log.read_text())
    return int(match[1]) if match else 0 if found else None


def kill_once(proc: subprocess.Popen, run_dir: Path, kind: str, target: int, timing: dict, rng: random.Random) -> str:
    """Wait as ``kind`` says, then SIGKILL; return what the kill hit ('crashed' if the process ended on its own)."""
    if kind == "startup":  # the checkpoint is being restored, the trainer set up, the first steps taken
        time.sleep(rng.uniform(0, min(1.0, 2 * timing["seconds_per_iteration"])))
    else:
        wait_for(proc, lambda: newest_resume_point(run_dir) >= target, timeout=600, poll=0.02)
        if kind == "write":
            kind = "write" if wait_for(proc, lambda: writing(run_dir), timeout=120) else "moment (no write seen)"
        else:
            time.sleep(rng.uniform(0, timing["seconds_per_iteration"]))
    if proc.poll() is not None:
        return "crashed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return kind


def soak_kills(out: Path, args: argparse.Namespace, timing: dict) -> dict[str, Any]:
    """Part 1: the killed and resumed run, then a SIGTERM, then the run to its end."""
    run_dir, rng = out / "resumed", random.Random(args.seed)
    targets = sorted(rng.sample(range(args.every, args.iterations * 4 // 5), args.kills))
    kills: list[dict[str, Any]] = []
    resumes: list[dict[str, Any]] = []
    newest = 0
    for attempt in range(args.kills + 2):
        log = out / f"attempt_{attempt:02d}.log"
        proc = start(run_dir, args, log)
        resumed = resumed_iteration(proc, log)
        if attempt:
            resumes.append({"newest_whole_checkpoint": newest, "resumed_at": resumed, "ok": resumed == newest})
        if attempt == args.kills + 1:
            proc.wait()
        elif attempt == args.kills:
            sigterm = stop_with_sigterm(proc, run_dir, log, timing, at=args.iterations * 9 // 10)
        else:
            kind = KINDS[attempt % len(KINDS)]
            target = max(targets[attempt], newest_resume_point(run_dir) + args.every)
            hit = kill_once(proc, run_dir, kind, target, timing, rng)
            damaged, leftovers = checkpoint_health(run_dir)
            kills.append({"kind": hit, "damaged": damaged, "leftover_tmp": leftovers})
        newest = newest_whole_iteration(run_dir)
        if attempt < args.kills:
            kills[-1]["newest_whole_checkpoint"] = newest
    final = json.loads((run_dir / "metrics.json").read_text())
    return {
        "kills": kills,
        "kills_during_write": sum(k["kind"] == "write" for k in kills),
        "resumes": resumes,
        "resumes_succeeded": sum(r["ok"] for r in resumes),
        "checkpoints_lost": sum(
            r["resumed_at"] is not None and r["resumed_at"] < r["newest_whole_checkpoint"] for r in resumes
        ),
        "checkpoints_damaged": sum(k["damaged"] for k in kills),
        "sigterm": sigterm,
        "final_status": proc.returncode,
        "final_iteration": final.get("iteration"),
    }


def stop_with_sigterm(
    proc: subprocess.Popen, run_dir: Path, log: Path, timing: dict, at: int, pid: int | None = None
) -> dict[str, Any]:
    """SIGTERM (to ``pid``, default the run's process) once this process has trained past iteration ``at``, in the
    middle of a step; the exit status, and after which iterations the signal came and the run stopped."""
    started = newest_resume_point(run_dir)
    wait_for(proc, lambda: newest_resume_point(run_dir) >= max(at, started + 1), timeout=900, poll=0.02)
    time.sleep(timing["seconds_per_iteration"] / 2)
    if proc.poll() is not None:
        raise SystemExit(f"the run ended (status {proc.returncode}) before the SIGTERM; see {log}")
    os.kill(pid or proc.pid, signal.SIGTERM)
    status = proc.wait(timeout=600)
    text = log.read_text()
    received, stopped = RECEIVED.findall(text), STOPPED.findall(text)
    during = int(received[-1][1]) if received else None
    after = int(stopped[-1][1]) if stopped else None
    whole = (run_dir / "checkpoints" / resume_point_name(after)).is_file() if after is not None else False
    return {
        "exit_status": status,
        "requeue_status": status == REQUEUE,
        "received_after_iteration": during,
        "stopped_after_iteration": after,
        "checkpoint_written": whole,
        "ranks_that_logged_the_signal": len(received),
    }


def child_ranks(pid: int) -> list[int]:
    """The processes Lightning started for the other local ranks (children of ``pid`` running the training)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if "train.py" in Path(f"/proc/{c}/cmdline").read_text()]


def process_ends(pid: int, timeout: float) -> bool:
    """Whether process ``pid`` is gone (or a zombie: it has exited) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


def soak_ddp(out: Path, args: argparse.Namespace, timing: dict) -> dict[str, Any]:
    """Part 2: SIGTERM to rank 1 of a 2-process run, then the resumed run to its end."""
    run_dir = out / "resumed"
    log = out / "attempt_00.log"
    proc = start(run_dir, args, log)
    wait_for(proc, lambda: newest_resume_point(run_dir) >= args.every, timeout=900, poll=0.02)
    ranks = child_ranks(proc.pid)
    if not ranks:
        raise SystemExit(f"no second rank found under process {proc.pid}; see {log}")
    sigterm = stop_with_sigterm(proc, run_dir, log, timing, at=args.iterations // 2, pid=ranks[0])
    sigterm["rank1_ended"] = process_ends(ranks[0], timeout=120)
    newest = newest_whole_iteration(run_dir)
    proc = start(run_dir, args, out / "attempt_01.log")
    resumed = resumed_iteration(proc, out / "attempt_01.log")
    proc.wait()
    final = json.loads((run_dir / "metrics.json").read_text())
    return {
        "sigterm_to_rank1": sigterm,
        "resume": {"newest_whole_checkpoint": newest, "resumed_at": resumed, "ok": resumed == newest},
        "final_status": proc.returncode,
        "final_iteration": final.get("iteration"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--every", type=int, default=5, help="iterations between two resume points")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ddp", action="store_true", help="part 2: 2 DDP processes, SIGTERM to rank 1")
    parser.add_argument("--out", type=Path, default=None, help="default outputs/soak/<one|ddp>")
    args = parser.parse_args(argv)
    if args.iterations < 2 * args.every + args.kills:
        parser.error("need --iterations >= 2 * --every + --kills")
    out = (args.out or ROOT / "outputs" / "soak" / ("ddp" if args.ddp else "one")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    timing = reference_run(out, args)
    summary = {"command": " ".join(train_command(out / "<run>", args)[1:]), "timing": timing}
    summary |= soak_ddp(out, args, timing) if args.ddp else soak_kills(out, args, timing)
    summary["final_weights"] = compare_final(out / "reference", out / "resumed", args.iterations)
    summary["wall_s"] = round(time.monotonic() - began, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
