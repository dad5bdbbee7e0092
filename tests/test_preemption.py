"""Stopping on a scheduler's signal and resuming: exactly the uninterrupted run, requeue on SLURM, one-line refusals."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hific_lit.cli import hydra_apps
from hific_lit.errors import NOTHING_RAN, REQUEUE
from hific_lit.training.base import ITERATION_KEY
from hific_lit.training.preemption import Preempted
from hific_lit.training.run import compose_config, train

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "debug=fdr",
    "perceptual=null",
    "loss.k_p=0",
    "logger=csv",
    "data.samples_per_epoch=6",  # 3 batches of 2 per epoch: a resume lands mid-epoch and runs across epochs
    "data.val_tiles=1",
    "trainer.val_check_interval=2",
    "trainer.log_every_n_steps=1",
    "callbacks.reconstruction_images=null",
    "callbacks.resume_points.every_n_iterations=2",
]


def final_checkpoint(run: Path, iteration: int) -> dict:
    return torch.load(run / "checkpoints" / f"iter_{iteration:07d}.ckpt", weights_only=True)


def logged(run: Path, key: str) -> dict[int, str]:
    with open(run / "csv" / "version_0" / "metrics.csv", newline="") as f:
        return {int(r["step"]): r[key] for r in csv.DictReader(f) if r.get(key)}


def test_a_run_stopped_by_sigterm_and_resumed_ends_exactly_as_an_uninterrupted_one(tmp_path: Path) -> None:
    """SIGTERM once iteration 3 of 8 has stepped (the end of an epoch of 3 batches): a checkpoint after iteration 3,
    status 75; the same command resumes, is stopped again at the end of the next epoch, resumes, and ends with the
    weights, optimizer states and log of the run never stopped (bit for bit, on a CPU)."""
    settings = [*TINY, "max_iterations=8", "trainer.val_check_interval=5"]  # no validation at an epoch's end
    whole = train(compose_config(settings, tmp_path / "whole"))
    run = tmp_path / "stopped"
    for at in (3, 6):  # two ends of epochs: Lightning's epoch counter falls behind, the data position must not
        stop = ["+callbacks.signal_at._target_=signal_at.SignalAt", f"+callbacks.signal_at.iteration={at}"]
        with pytest.raises(Preempted) as info:
            train(compose_config([*settings, *stop], run))
        assert info.value.code == REQUEUE and info.value.iteration == at
        assert info.value.checkpoint == run / "checkpoints" / f"iter_{at:07d}.ckpt"
        assert json.loads((run / "metrics.json").read_text())["status"] == "preempted"
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are given back after the fit
        assert not (run / "inference.ckpt").exists()

    resumed = train(compose_config(settings, run))
    assert resumed["iteration"] == whole["iteration"] == 8
    a, b = final_checkpoint(tmp_path / "whole", 8), final_checkpoint(run, 8)
    assert a[ITERATION_KEY] == b[ITERATION_KEY] == 8 and a["global_step"] == b["global_step"] == 16
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    for opt_a, opt_b in zip(a["optimizer_states"], b["optimizer_states"], strict=True):
        for index, state in opt_a["state"].items():
            assert all(torch.equal(v, opt_b["state"][index][k]) for k, v in state.items()), index
    assert a["lr_schedulers"] == b["lr_schedulers"]
    assert logged(run, "train/loss") == logged(tmp_path / "whole", "train/loss")  # every step once, the same values
    for key in ("train/rate_weight", "val/rd_loss"):  # the λ_A/λ_B choices and the validations, at the same steps
        assert logged(run, key) == logged(tmp_path / "whole", key), key
    assert (run / "inference.ckpt").is_file()
    again = train(compose_config(settings, run))  # a finished run resumes at its end
    assert again["iteration"] == 8 and again["val/rd_loss"] == resumed["val/rd_loss"] == whole["val/rd_loss"]


def test_a_stop_signal_while_setting_up_ends_the_run_at_once_with_75(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def signalled(cfg: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        pytest.fail("the signal did not stop the set-up")

    monkeypatch.setattr("hific_lit.training.run.build_datamodule", signalled)
    with pytest.raises(Preempted) as info:
        train(compose_config(TINY, tmp_path))
    assert info.value.code == REQUEUE and info.value.checkpoint is None
    assert not (tmp_path / "metrics.json").exists() and not (tmp_path / "checkpoints").exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_sigusr1_on_slurm_checkpoints_after_its_step_requeues_and_exits_75(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``hific train`` in a one-task SLURM job (Lightning's SLURM environment detects it) whose ``scontrol``
    records its arguments: SIGUSR1 in iteration 3 gives a checkpoint after iteration 3, ``scontrol requeue JOB``,
    exit status 75 and no traceback."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "scontrol.calls"}\n')
    scontrol.chmod(0o755)
    slurm = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "hific", "SLURM_NTASKS": "1", "SLURM_PROCID": "0"}
    slurm |= {"SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NNODES": "1"}
    for name, value in slurm.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    run = tmp_path / "run"
    stop = ["+callbacks.signal_at._target_=signal_at.SignalAt", "+callbacks.signal_at.iteration=3"]
    stop += ["+callbacks.signal_at.signal_name=SIGUSR1"]
    args = [*TINY, "callbacks.resume_points.every_n_iterations=0", "max_iterations=10", *stop, f"hydra.run.dir={run}"]
    assert hydra_apps.main("train", args, "hific train") == REQUEUE
    assert (tmp_path / "scontrol.calls").read_text() == "requeue 4242\n"
    log = (run / "train.log").read_text()
    assert "SIGUSR1 received after iteration 3" in log
    assert "SIGUSR1: stopped after iteration 3, checkpoint" in log
    assert [p.name for p in (run / "checkpoints").glob("iter_*.ckpt")] == ["iter_0000003.ckpt"]
    assert torch.load(run / "checkpoints" / "iter_0000003.ckpt", weights_only=True)[ITERATION_KEY] == 3
    assert "Traceback" not in capsys.readouterr().err + log


def test_a_missing_ckpt_path_stops_the_command_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope" / "last.ckpt"
    args = [*TINY, f"ckpt_path={missing}", f"hydra.run.dir={tmp_path / 'run'}"]
    assert hydra_apps.main("train", args, "hific train") == NOTHING_RAN
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == f"hific train: error: ckpt_path={missing}: no such file " + (
        "(ckpt_path=auto resumes from the newest checkpoint of the run folder)"
    )
    assert "Traceback" not in err


@pytest.mark.slow
def test_the_soak_resumes_every_kill_and_ends_with_the_uninterrupted_weights(tmp_path: Path, load_script) -> None:
    soak = load_script("soak_resume")
    soak.main(["--iterations", "40", "--kills", "4", "--every", "3", "--out", str(tmp_path / "one")])
    summary = json.loads((tmp_path / "one" / "summary.json").read_text())
    assert summary["resumes_succeeded"] == len(summary["resumes"]) == 5
    assert summary["checkpoints_lost"] == summary["checkpoints_damaged"] == 0
    assert summary["kills_during_write"] >= 1
    assert summary["sigterm"]["requeue_status"] and summary["sigterm"]["checkpoint_written"]
    assert summary["final_status"] == 0 and summary["final_iteration"] == 40
    assert summary["final_weights"]["tensors_unequal"] == 0


@pytest.mark.slow
def test_sigterm_to_one_ddp_rank_stops_both_and_the_run_resumes(tmp_path: Path, load_script) -> None:
    soak = load_script("soak_resume")
    soak.main(["--ddp", "--iterations", "16", "--kills", "0", "--every", "2", "--out", str(tmp_path / "ddp")])
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    stop = summary["sigterm_to_rank1"]
    assert stop["requeue_status"] and stop["checkpoint_written"] and stop["rank1_ended"]
    assert 0 <= stop["stopped_after_iteration"] - stop["received_after_iteration"] <= 1
    assert summary["resume"]["ok"] and summary["final_status"] == 0 and summary["final_iteration"] == 16
    assert summary["final_weights"]["tensors_unequal"] == 0


@pytest.mark.slow
def test_a_resumed_run_continues_the_same_wandb_run(tmp_path: Path) -> None:
    """Offline wandb: the stopped run and the resumed one write to one run id (kept in <run>/wandb_run_id)."""
    run = tmp_path / "run"
    env = os.environ | {"WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", "NETRC": str(tmp_path / "netrc")}
    args = [*TINY, "logger=wandb", f"hydra.run.dir={run}"]
    for iterations in (2, 4):
        cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), *args, f"max_iterations={iterations}"]
        result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
    run_id = (run / "wandb_run_id").read_text()
    assert sorted(p.name.rsplit("-", 1)[1] for p in (run / "wandb").glob("offline-run-*")) == [run_id, run_id]
