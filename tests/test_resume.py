"""The pieces of resuming: atomic and verified checkpoints, ckpt_path=auto, random states, data position, logs."""

from __future__ import annotations

import csv
import logging
import multiprocessing
import os
import random
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from hific_lit.data.sample import SampleDataModule
from hific_lit.data.sampler import ResumableSampler, SeededIndex, split_key
from hific_lit.errors import CheckpointError
from hific_lit.training.checkpoint_io import AtomicCheckpointIO, verify_checkpoint
from hific_lit.training.loggers import AppendingWriter, persistent_run_id
from hific_lit.training.random_state import capture, restore
from hific_lit.training.resume import LEFTOVER_GLOB, require_same_tensors, resolve_ckpt_path
from hific_lit.training.resume_points import ResumePoints


def lightning_like(steps: int, size: int = 1000) -> dict:
    """A checkpoint with what ckpt_path=auto reads: weights and Lightning's step count."""
    return {"state_dict": {"w": torch.full((size,), float(steps))}, "global_step": steps, "hific_iteration": steps // 2}


def test_a_write_that_fails_midway_leaves_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint(lightning_like(2), path)

    def disk_gone(fd: int) -> None:
        raise OSError("input/output error")

    monkeypatch.setattr(os, "fsync", disk_gone)
    with pytest.raises(OSError, match="input/output error"):
        io.save_checkpoint(lightning_like(4), path)
    assert io.load_checkpoint(path)["global_step"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def write_forever(path: Path) -> None:
    """Write checkpoints of 32 MB to ``path`` again and again (the child process a test kills)."""
    while True:
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.rand(8_000_000)}, "global_step": 9}, path)


def test_a_process_killed_while_writing_leaves_the_previous_checkpoint(tmp_path: Path) -> None:
    """SIGKILL while a new checkpoint is being written: the old file stays whole, a temporary is left over,
    and ckpt_path=auto removes it and resumes from the old file."""
    path = tmp_path / "checkpoints" / "iter_0000002.ckpt"
    AtomicCheckpointIO().save_checkpoint(lightning_like(2), path)
    before = path.read_bytes()
    child = multiprocessing.get_context("fork").Process(target=write_forever, args=(path,))
    child.start()
    deadline = time.monotonic() + 120
    while not list(path.parent.glob(LEFTOVER_GLOB)) and time.monotonic() < deadline:
        time.sleep(0.0005)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    leftovers = list(path.parent.glob(LEFTOVER_GLOB))
    assert len(leftovers) == 1, "the kill did not land during a write"
    if path.read_bytes() != before:  # the kill came after a rename: then the new file is whole
        verify_checkpoint(path)
    assert resolve_ckpt_path("auto", tmp_path) == path
    assert not list(path.parent.glob(LEFTOVER_GLOB))


def test_verification_refuses_a_truncated_and_a_damaged_checkpoint(tmp_path: Path) -> None:
    good = tmp_path / "good.ckpt"
    AtomicCheckpointIO().save_checkpoint(lightning_like(2, size=50_000), good)
    data = good.read_bytes()
    verify_checkpoint(good)
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.ckpt is truncated or not a PyTorch checkpoint"):
        verify_checkpoint(tmp_path / "cut.ckpt")
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF  # inside the weights: torch.load would read it without complaint
    (tmp_path / "flip.ckpt").write_bytes(bytes(flipped))
    assert torch.load(tmp_path / "flip.ckpt", weights_only=True)["global_step"] == 2
    with pytest.raises(CheckpointError, match=r"flip\.ckpt is damaged: its record .* fails its CRC-32 check"):
        AtomicCheckpointIO().load_checkpoint(tmp_path / "flip.ckpt")


def test_auto_resumes_from_the_newest_good_checkpoint_skipping_a_truncated_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "checkpoints"
    io = AtomicCheckpointIO()
    for steps in (10, 20, 30):
        io.save_checkpoint(lightning_like(steps), folder / f"iter_{steps // 2:07d}.ckpt")
    io.save_checkpoint(lightning_like(20), folder / "best.ckpt")
    newest = folder / "iter_0000015.ckpt"
    newest.write_bytes(newest.read_bytes()[:-100])  # cut short by a crash of the disk, not by us
    (folder / ".iter_0000020.ckpt.x1y2.tmp").write_bytes(b"PK\x03\x04 partial")
    with caplog.at_level(logging.INFO, logger="hific_lit.training.resume"):
        chosen = resolve_ckpt_path("auto", tmp_path)
    assert chosen in (folder / "iter_0000010.ckpt", folder / "best.ckpt")  # 20 steps, the most among good ones
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "iter_0000015.ckpt" in warnings[0] and "\n" not in warnings[0]
    assert not list(folder.glob(LEFTOVER_GLOB))
    assert resolve_ckpt_path("auto", tmp_path / "elsewhere") is None  # no checkpoints: a fresh start
    assert resolve_ckpt_path(None, tmp_path) is None


def test_an_explicit_ckpt_path_that_is_missing_or_damaged_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"ckpt_path=.*missing\.ckpt: no such file"):
        resolve_ckpt_path(str(tmp_path / "missing.ckpt"), tmp_path)
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(lightning_like(4, size=50_000), path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"cannot be resumed from: .*fails its CRC-32 check") as info:
        resolve_ckpt_path(str(path), tmp_path)
    assert "\n" not in str(info.value)


def test_random_states_round_trip_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    state = capture()
    first = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)], np.random.normal())
    torch.save(state, tmp_path / "rng.pt")
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    restore(torch.load(tmp_path / "rng.pt", weights_only=True))
    again = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)], np.random.normal())
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert first[2] == again[2] and first[3] == again[3]


def test_the_sampler_resumes_mid_epoch_with_the_same_samples_and_seeds() -> None:
    data = list(range(10))
    full = list(ResumableSampler(data, num_replicas=1, rank=0, seed=7, epoch=3))
    assert sorted(key.index for key in full) == data
    assert list(ResumableSampler(data, num_replicas=1, rank=0, seed=7, epoch=3, start=4)) == full[4:]
    sampler = ResumableSampler(data, num_replicas=1, rank=0, seed=7, epoch=3, start=4)
    list(sampler)
    assert list(sampler) == full  # the skip applies to the first pass only
    assert [k.index for k in ResumableSampler(data, 1, 0, seed=7, epoch=4)] != [k.index for k in full]
    ranks = [list(ResumableSampler(data, num_replicas=3, rank=r, seed=7, epoch=3)) for r in range(3)]
    assert [len(r) for r in ranks] == [4, 4, 4]  # padded by repetition to a multiple of the ranks
    assert {k.index for r in ranks for k in r} == set(data)
    assert len({k.seed for r in ranks for k in r}) == 12  # every sample its own random numbers
    index, generator = split_key(SeededIndex(5, full[0].seed))
    assert index == 5 and torch.equal(
        torch.rand(3, generator=generator), torch.rand(3, generator=split_key(full[0])[1])
    )
    assert split_key(5) == (5, None)


def resumed_at(module: SampleDataModule, batches: int) -> SampleDataModule:
    """``module`` as a run that has trained ``batches`` batches sees it (only what the loaders read of the Trainer)."""
    progress = SimpleNamespace(total=SimpleNamespace(processed=batches))
    fit_loop = SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=progress))
    module.trainer = SimpleNamespace(fit_loop=fit_loop, world_size=1, global_rank=0)
    return module


@pytest.mark.parametrize("workers", [0, 2])
def test_the_data_of_a_resumed_run_continue_where_it_stopped(workers: int) -> None:
    """3 batches per epoch: a run resumed after 4 batches reads batches 5, 6, ... of the uninterrupted run, crops
    and all, whatever the number of workers; data_seed comes back through the checkpoint's data module state."""
    settings = {"batch_size": 2, "crop_size": 32, "samples_per_epoch": 6, "val_tiles": 1}
    torch.manual_seed(5)
    whole = resumed_at(SampleDataModule(**settings), 0)
    whole.setup()
    loader = whole.train_dataloader()
    reference = list(loader)
    whole.trainer.fit_loop.epoch_loop.batch_progress.total.processed = 3  # where the second pass starts
    reference += list(loader)
    torch.manual_seed(99)  # a resumed process: the seed comes from the checkpoint, not from torch
    resumed = resumed_at(SampleDataModule(**settings, num_workers=workers), 4)
    resumed.load_state_dict(whole.state_dict())
    resumed.setup()
    after = list(resumed.train_dataloader())
    assert len(reference) == 6 and len(after) == 2
    assert all(torch.equal(a, b) for a, b in zip(after, reference[4:], strict=True))


def test_resume_points_keep_the_newest_and_drop_those_of_a_run_not_continued(tmp_path: Path) -> None:
    strategy = SimpleNamespace(remove_checkpoint=lambda path: Path(path).unlink())
    trainer = SimpleNamespace(loggers=[], is_global_zero=True, strategy=strategy)
    trainer.save_checkpoint = lambda path, weights_only: Path(path).write_bytes(b"checkpoint")
    points = ResumePoints(tmp_path, every_n_iterations=10, keep=2)
    for iteration in (10, 20, 30):
        points.save(trainer, iteration)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iter_0000020.ckpt", "iter_0000030.ckpt"]
    ResumePoints(tmp_path, keep=2).save(trainer, 5)  # a run started afresh in the same folder (ckpt_path=null)
    assert [p.name for p in tmp_path.iterdir()] == ["iter_0000005.ckpt"]


def test_the_csv_log_of_a_resumed_run_drops_the_rows_it_logs_again(tmp_path: Path) -> None:
    writer = AppendingWriter(str(tmp_path))
    for step in range(10):
        writer.log_metrics({"train/loss": float(step)}, step)
    writer.save()
    resumed = AppendingWriter(str(tmp_path))  # the stopped run logged up to step 9; its checkpoint was at step 6
    for step in range(6, 12):
        resumed.log_metrics({"train/loss": 100.0 + step, "val/psnr": 20.0}, step)
    resumed.save()
    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(12))
    assert [float(r["train/loss"]) for r in rows] == [*map(float, range(6)), *(100.0 + s for s in range(6, 12))]


def test_a_checkpoint_of_other_weights_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "base.ckpt"
    torch.save({"state_dict": {"weight": torch.zeros(2, 2), "extra": torch.zeros(1)}}, path)
    with pytest.raises(CheckpointError, match=r"another stage or architecture \(1 tensors missing, e\.g\. \['bias'\]"):
        require_same_tensors(nn.Linear(2, 2), path)


def test_the_wandb_run_id_is_kept_in_the_run_folder(tmp_path: Path) -> None:
    first = persistent_run_id(tmp_path)
    assert (tmp_path / "wandb_run_id").read_text() == first
    assert persistent_run_id(tmp_path) == first
    assert persistent_run_id(tmp_path / "other") != first
