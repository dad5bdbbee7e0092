"""WebDataset shards: writing them (make_shards) and streaming them to ranks and workers."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

import hydra
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import webdataset as wds
from PIL import Image

from hific_lit.data import WebDataModule
from hific_lit.data.shard_writer import ShardSettings, write_shards
from hific_lit.data.shards import ShardStream, batches_for_worker, decode_image, resolve_shards, shards_for_rank
from hific_lit.data.transforms import RandomScaleCrop
from hific_lit.errors import DatasetError
from hific_lit.io.images import load_image, pil_to_tensor
from hific_lit.training.run import compose_config

ROOT = Path(__file__).resolve().parents[1]
LOADER = {"batch_size": 2, "crop_size": 32, "num_workers": 2, "batches_per_epoch": 6}


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """14 random images of varied sizes and formats in two folders, plus one corrupt file."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(14):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(exist_ok=True)
        pixels = rng.integers(0, 256, (40 + 7 * i, 90 - 3 * i, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:02d}.{'png' if i % 3 else 'jpg'}")
    (root / "a" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return root


@pytest.fixture(scope="module")
def shard_dir(image_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shards")
    write_shards(image_tree, out, ShardSettings(max_count=3), workers=2, progress=False)
    return out


def sha256s(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_manifest_counts_samples_bytes_and_skips(shard_dir: Path) -> None:
    manifest = json.loads((shard_dir / "train-manifest.json").read_text())
    assert manifest["samples"] == 14 and len(manifest["shards"]) == 5
    assert [s["samples"] for s in manifest["shards"]] == [3, 3, 3, 3, 2]
    assert manifest["skipped"] == [{"source": "a/corrupt.png", "reason": manifest["skipped"][0]["reason"]}]
    assert manifest["pattern"] == "train-{000000..000004}.tar"
    for shard in manifest["shards"]:
        data = (shard_dir / shard["name"]).read_bytes()
        assert shard["bytes"] == len(data) and shard["sha256"] == hashlib.sha256(data).hexdigest()


def test_shards_are_reproducible_and_stale_ones_removed(image_tree: Path, shard_dir: Path, tmp_path: Path) -> None:
    write_shards(image_tree, tmp_path, ShardSettings(max_count=2), progress=False)
    assert (tmp_path / "train-000006.tar").exists()
    write_shards(image_tree, tmp_path, ShardSettings(max_count=3), workers=1, progress=False)
    shards = {k: v for k, v in sha256s(tmp_path).items() if k.endswith(".tar")}
    assert shards == {k: v for k, v in sha256s(shard_dir).items() if k.endswith(".tar")}


def test_size_limit_and_pre_downscale(image_tree: Path, tmp_path: Path) -> None:
    manifest = write_shards(image_tree, tmp_path, ShardSettings(max_bytes=40_000, max_short_side=48), progress=False)
    assert manifest["downscaled"] == sum(1 for i in range(14) if min(40 + 7 * i, 90 - 3 * i) > 48)
    assert all(s["bytes"] <= 40_000 or s["samples"] == 1 for s in manifest["shards"])
    for sample in wds.WebDataset(str(tmp_path / "train-000000.tar"), shardshuffle=False, empty_check=False):
        meta = json.loads(sample["json"])
        assert min(meta["stored_size"]) == min(48, min(meta["size"]))


def test_shards_hold_the_source_images_exactly(image_tree: Path, shard_dir: Path) -> None:
    seen = []
    for sample in wds.WebDataset(resolve_shards(shard_dir), shardshuffle=False, empty_check=False):
        source = json.loads(sample["json"])["source"]
        seen.append(source)
        assert torch.equal(pil_to_tensor(decode_image(sample)), load_image(image_tree / source))
    assert len(seen) == 14 and seen == sorted(seen)


def test_stream_reads_back_with_two_workers(shard_dir: Path) -> None:
    dm = WebDataModule(str(shard_dir), batch_size=4, crop_size=32, num_workers=2, batches_per_epoch=9)
    dm.setup("fit")
    loader = dm.train_dataloader()
    for _ in range(2):  # two epochs from the same persistent workers
        batches = list(loader)
        assert len(loader) == len(batches) == 9
        assert all(b.shape == (4, 3, 32, 32) and b.dtype == torch.float32 for b in batches)
    assert dm.skipped_samples == 0
    assert dm.val_dataloader() == []  # no val_dir: no validation


def test_validation_comes_from_an_image_folder(shard_dir: Path, image_tree: Path) -> None:
    dm = WebDataModule(str(shard_dir), val_dir=str(image_tree / "b"), batch_size=4, crop_size=32, num_workers=0)
    dm.setup("fit")
    batches = list(dm.val_dataloader())
    assert [b.shape[0] for b in batches] == [4, 3] and all(b.shape[1:] == (3, 32, 32) for b in batches)


def test_two_ranks_see_disjoint_shards_and_equal_batch_counts(shard_dir: Path) -> None:
    pattern = str(shard_dir / "train-{000000..000004}.tar")
    shards, counts = [], []
    for rank in range(2):
        dm = WebDataModule(
            pattern, batch_size=2, crop_size=32, num_workers=2, batches_per_epoch=6, rank=rank, world_size=2
        )
        dm.setup("fit")
        shards.append(set(dm.train_set.shards))
        counts.append(len(list(dm.train_dataloader())))
    assert shards[0].isdisjoint(shards[1]) and len(shards[0]) == 3 and len(shards[1]) == 2
    assert counts == [6, 6]


def test_ranks_seeded_alike_still_draw_different_crops(shard_dir: Path) -> None:
    shards = resolve_shards(shard_dir)
    first = []
    for rank in range(2):
        torch.manual_seed(0)  # as seed_everything does on every rank
        stream = ShardStream(shards, RandomScaleCrop(16), batch_size=4, batches_per_epoch=1, rank=rank)
        first.append(next(iter(stream)))
    torch.manual_seed(0)
    again = next(iter(ShardStream(shards, RandomScaleCrop(16), batch_size=4, batches_per_epoch=1, rank=1)))
    assert not torch.equal(first[0], first[1]) and torch.equal(first[1], again)


def test_a_resumed_stream_is_shuffled_afresh_instead_of_replaying_its_start(shard_dir: Path) -> None:
    """A resumed run's generators are seeded as at the start; the salt (batches trained) makes its stream new."""
    shards = resolve_shards(shard_dir)

    def first_batch(salt: int) -> torch.Tensor:
        torch.manual_seed(0)
        stream = ShardStream(shards, RandomScaleCrop(16), batch_size=4, batches_per_epoch=1, salt=salt)
        return next(iter(stream))

    assert torch.equal(first_batch(0), first_batch(0))
    assert not torch.equal(first_batch(0), first_batch(1200))


def test_corrupt_member_is_skipped_counted_and_training_goes_on(shard_dir: Path, tmp_path: Path) -> None:
    members = [(m, f.read()) for m, f in _members(shard_dir / "train-000000.tar")]
    with tarfile.open(tmp_path / "bad-000000.tar", "w") as tar:
        for info, data in members:
            if info.name.startswith("000000001."):
                data = b"not an image" if info.name.endswith((".png", ".jpg")) else data
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    bad = str(tmp_path / "bad-000000.tar")
    dm = WebDataModule([bad, bad], batch_size=2, crop_size=16, num_workers=0, batches_per_epoch=4, shuffle_buffer=0)
    dm.setup("fit")
    with pytest.warns(RuntimeWarning, match="000000001"):
        assert len(list(dm.train_dataloader())) == 4
    assert dm.skipped_samples >= 1
    # Unshuffled, each worker meets the corrupt member on its first pass. In worker processes the
    # warning goes to the worker's stderr; the count reaches the main process.
    dm = WebDataModule([bad, bad], batch_size=2, crop_size=16, num_workers=2, batches_per_epoch=4, shuffle_buffer=0)
    dm.setup("fit")
    assert len(list(dm.train_dataloader())) == 4
    assert dm.skipped_samples >= 2


def test_truncated_shard_is_read_up_to_the_damage(shard_dir: Path, tmp_path: Path) -> None:
    data = (shard_dir / "train-000000.tar").read_bytes()
    (tmp_path / "cut.tar").write_bytes(data[: len(data) // 2])
    dm = WebDataModule(str(tmp_path / "cut.tar"), batch_size=1, crop_size=16, num_workers=0, batches_per_epoch=3)
    dm.setup("fit")
    with pytest.warns(RuntimeWarning, match="skipping unreadable sample"):
        assert len(list(dm.train_dataloader())) == 3
    assert dm.skipped_samples >= 1


def _members(path: Path) -> list[tuple[tarfile.TarInfo, io.BytesIO]]:
    with tarfile.open(path) as tar:
        return [(m, io.BytesIO(tar.extractfile(m).read())) for m in tar.getmembers()]


def test_paper_preprocessing_gives_256_crops_in_unit_range(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    src = tmp_path / "src"
    src.mkdir()
    for i, size in enumerate([(120, 200), (300, 280), (700, 500)]):  # below, near and above the crop
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(src / f"{i}.png")
    write_shards(src, tmp_path / "out", ShardSettings(), progress=False)
    dm = WebDataModule(str(tmp_path / "out"), batch_size=3, crop_size=256, num_workers=0, batches_per_epoch=2)
    dm.setup("fit")
    for batch in dm.train_dataloader():
        assert batch.shape == (3, 3, 256, 256)
        assert batch.min() >= 0 and batch.max() <= 1


def test_shard_spec_errors_are_clear(shard_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="do not exist"):
        resolve_shards(str(tmp_path / "x-{000..002}.tar"))
    with pytest.raises(DatasetError, match=r"no \.tar shards"):
        resolve_shards(str(tmp_path))
    with pytest.raises(DatasetError, match="every rank needs at least one"):
        shards_for_rank(["a.tar"], 1, 2)
    assert sum(batches_for_worker(10, w, 3) for w in range(3)) == 10


def test_hydra_override_with_a_quoted_brace_pattern(shard_dir: Path) -> None:
    from hific_lit.config import compose_config

    pattern = str(shard_dir / "train-{000000..000004}.tar")
    overrides = ["data=openimages_wds", f"data.train_shards='{pattern}'", "data.num_workers=0"]
    cfg = compose_config("train", overrides, shard_dir)
    dm = hydra.utils.instantiate(cfg.data)
    dm.setup("fit")
    assert len(dm.train_set.shards) == 5


def test_make_shards_script_and_config(image_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import make_shards
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    assert make_shards.main([str(image_tree), str(tmp_path), "--max-count", "5", "--workers", "1", "--quiet"]) == 0
    assert "14 images in 3 shards" in capsys.readouterr().out
    assert make_shards.main([str(tmp_path / "nothing"), str(tmp_path)]) == 2
    assert "not a directory" in capsys.readouterr().err
    overrides = ["data=openimages_wds", f"data.train_shards={tmp_path}", "data.crop_size=16", "data.num_workers=0"]
    dm = hydra.utils.instantiate(compose_config([*overrides, "data.batches_per_epoch=2"], tmp_path / "run").data)
    dm.setup("fit")
    assert [tuple(b.shape) for b in dm.train_dataloader()] == [(8, 3, 16, 16)] * 2


class CountingModule(pl.LightningModule):
    """Trains one scalar on the batches and writes, per rank, the shards it read and the batches it saw."""

    def __init__(self, out_dir: str) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.out_dir = out_dir
        self.batches = 0

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        assert batch.shape == (2, 3, 16, 16)
        self.batches += 1
        return (batch.mean() - self.weight) ** 2

    def on_train_end(self) -> None:
        record = {"shards": self.trainer.datamodule.train_set.shards, "batches": self.batches}
        (Path(self.out_dir) / f"rank{self.global_rank}.json").write_text(json.dumps(record))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(shards: Path, out_dir: Path, batch_size: int = 2, **trainer_kwargs: object) -> list[dict]:
    """``batch_size`` is the global batch: each of the ranks loads its share (2 per rank here)."""
    dm = WebDataModule(
        str(shards), batch_size=batch_size, crop_size=16, num_workers=1, batches_per_epoch=3, shuffle_buffer=4
    )
    trainer = pl.Trainer(
        max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, **trainer_kwargs,
    )  # fmt: skip
    trainer.fit(CountingModule(str(out_dir)), datamodule=dm)
    return [json.loads(p.read_text()) for p in sorted(out_dir.glob("rank*.json"))]


def test_trainer_runs_the_explicit_epoch_length(shard_dir: Path, tmp_path: Path) -> None:
    (record,) = fit(shard_dir, tmp_path)
    assert record["batches"] == 2 * 3 and len(record["shards"]) == 5


@pytest.mark.slow
def test_two_process_ddp_ranks_read_disjoint_shards_in_step(shard_dir: Path, tmp_path: Path) -> None:
    records = fit(shard_dir, tmp_path, batch_size=4, strategy="ddp_spawn", devices=2)
    assert [r["batches"] for r in records] == [6, 6]
    assert set(records[0]["shards"]).isdisjoint(records[1]["shards"])
    assert len(records[0]["shards"]) + len(records[1]["shards"]) == 5


def test_an_interrupted_run_leaves_no_partial_shard(image_tree: Path, tmp_path: Path, monkeypatch) -> None:
    """Shards go through the package's one atomic writer: a failure midway leaves the finished shards only."""
    from hific_lit.data import shard_writer

    real = shard_writer.prepare_sample
    calls = []

    def failing_at_the_eighth(*args: object) -> shard_writer.PreparedSample:
        calls.append(args)
        if len(calls) == 8:  # after 6 readable images and the corrupt one: shard 0 done, shard 1 begun
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(shard_writer, "prepare_sample", failing_at_the_eighth)
    with pytest.raises(KeyboardInterrupt):
        write_shards(image_tree, tmp_path, ShardSettings(max_count=5), workers=1, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train-000000.tar"]
    with tarfile.open(tmp_path / "train-000000.tar") as tar:
        assert len(tar.getnames()) == 2 * 5
