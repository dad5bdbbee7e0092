"""Paper-style crops, the sample photos and image folders as LightningDataModules."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hific_lit.data import ImageFolderDataModule, SampleDataModule
from hific_lit.data.base import check_global_batch
from hific_lit.data.folder import hold_out
from hific_lit.data.image_files import ImageFileDataset, find_images
from hific_lit.data.transforms import CenterCrop, RandomScaleCrop, grid_tiles, rotate_hue
from hific_lit.errors import DatasetError
from hific_lit.io.images import pil_to_tensor


def write_images(folder: Path, sizes: list[tuple[int, int]]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate(sizes):
        path = folder / f"img{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.mark.parametrize("size", [(40, 30), (64, 64), (300, 451), (1000, 90)])
def test_random_scale_crop_gives_full_crops_in_range(size: tuple[int, int]) -> None:
    x = torch.rand(3, *size)
    out = RandomScaleCrop(64)(x)
    assert out.shape == (3, 64, 64)
    assert out.dtype == torch.float32
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_random_scale_crop_downscales_within_paper_range() -> None:
    # A vertical ramp: the value span inside the crop reveals the window size before resizing.
    ramp = torch.linspace(0, 1, 1000).view(1, 1000, 1).expand(3, 1000, 1000).contiguous()
    transform = RandomScaleCrop(256)
    gen = torch.Generator().manual_seed(1)
    spans = []
    for _ in range(20):
        out = transform(ramp, generator=gen)
        spans.append(float(out[0, -1, 0] - out[0, 0, 0]) * 999)
    # window = 256 / factor with factor in [0.75, 0.95] -> 269..341 source rows across the crop
    assert min(spans) > 256 / 0.95 - 4 and max(spans) < 256 / 0.75 + 4


def test_the_authors_scale_range_never_goes_below_the_crop() -> None:
    transform, gen = RandomScaleCrop(256), torch.Generator().manual_seed(0)
    # models/hific/model.py: scale ~ U[max(0.75, 256 / short side), max(that, 0.95)]
    for short, low, high in [(1000, 0.75, 0.95), (300, 256 / 300, 0.95), (256, 1.0, 1.0), (200, 1.28, 1.28)]:
        scales = [transform.draw_scale(short, gen) for _ in range(200)]
        assert low - 1e-9 <= min(scales) and max(scales) <= high + 1e-9, short
        assert max(scales) - min(scales) > 0.8 * (high - low) - 1e-9, short  # spread over the whole range


@pytest.mark.parametrize("size", [(300, 451), (180, 120), (256, 256)])
def test_the_crop_is_a_window_of_the_whole_image_resized_bilinear_without_antialias(size: tuple[int, int]) -> None:
    x = torch.rand(3, *size)
    out = RandomScaleCrop(128)(x, generator=torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)  # replay the draws: scale, top, left
    low = max(0.75, 128 / min(size))
    scale = low + (max(low, 0.95) - low) * float(torch.rand((), generator=gen))
    new = (max(128, math.ceil(scale * size[0])), max(128, math.ceil(scale * size[1])))
    resized = torch.nn.functional.interpolate(x[None], size=new, mode="bilinear", align_corners=False, antialias=False)
    top = int(torch.randint(0, new[0] - 128 + 1, (), generator=gen))
    left = int(torch.randint(0, new[1] - 128 + 1, (), generator=gen))
    # torch computes the sample positions in float32, these weights in float64: 1e-4 of the 0..1 range apart
    torch.testing.assert_close(out, resized[0, :, top : top + 128, left : left + 128], atol=1e-4, rtol=0)


def test_no_flip_by_default_and_the_earlier_pipeline_is_an_option() -> None:
    x = torch.rand(3, 80, 80)
    crops = [RandomScaleCrop(80, (1.0, 1.0))(x, generator=torch.Generator().manual_seed(s)) for s in range(8)]
    assert all(torch.allclose(c, x, atol=1e-6) for c in crops)
    earlier = RandomScaleCrop(64, interpolation="bicubic_antialias", flip=True)
    assert earlier(torch.rand(3, 100, 90)).shape == (3, 64, 64)
    with pytest.raises(ValueError, match="interpolation"):
        RandomScaleCrop(64, interpolation="nearest")


def test_hue_rotation_keeps_grey_and_luma_and_turns_colours() -> None:
    grey = torch.full((3, 8, 8), 0.4)
    assert torch.allclose(rotate_hue(grey, 1.0), grey, atol=1e-5)
    green = torch.zeros(3, 8, 8)
    green[1] = 0.5
    turned = rotate_hue(green, math.pi)  # half a turn: green becomes magenta-ish, luma kept
    luma = torch.tensor([0.299, 0.587, 0.114])
    assert (luma @ turned.flatten(1)).mean().item() == pytest.approx(0.587 * 0.5, abs=0.02)
    assert turned[0].mean() > turned[1].mean() and turned[2].mean() > turned[1].mean()
    assert torch.allclose(rotate_hue(green, 2 * math.pi), green, atol=1e-5)
    crops = [RandomScaleCrop(8, (1.0, 1.0), hue_rotation=True)(green) for _ in range(20)]
    assert any(torch.allclose(c, green) for c in crops) and not all(torch.allclose(c, green) for c in crops)


def test_extra_photos_join_training_downscaled_and_a_missing_pattern_says_what_to_install(tmp_path: Path) -> None:
    write_images(tmp_path / "extra", [(300, 400), (90, 120)])
    dm = SampleDataModule(batch_size=2, crop_size=32, samples_per_epoch=9, val_tiles=1)
    dm.extra_photos, dm.max_short_side = [str(tmp_path / "extra" / "*.png")], 100
    dm.check_source()
    dm.setup("fit")
    assert len(dm.train_set.photos) == 7 + 2
    assert [p.size for p in dm.train_set.photos[-2:]] == [(133, 100), (120, 90)]  # shorter side at most 100
    dm.extra_photos = [str(tmp_path / "none" / "*.jpg")]
    with pytest.raises(DatasetError, match=r"lomiri-wallpapers-16\.04"):
        dm.check_source()


def test_random_scale_crop_flips_and_is_reproducible_with_a_generator() -> None:
    x = torch.rand(3, 80, 80)
    transform = RandomScaleCrop(80, scale_range=(1.0, 1.0), flip=True)
    a = [transform(x, generator=torch.Generator().manual_seed(s)) for s in range(8)]
    b = [transform(x, generator=torch.Generator().manual_seed(s)) for s in range(8)]
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    flipped = sum(torch.allclose(u, x.flip(-1), atol=1e-5) for u in a)
    kept = sum(torch.allclose(u, x, atol=1e-5) for u in a)
    assert flipped > 0 and kept > 0 and flipped + kept == len(a)


def test_pil_input_crops_like_the_tensor_input() -> None:
    pil = Image.fromarray(np.random.default_rng(3).integers(0, 256, (90, 130, 3), dtype=np.uint8))
    tensor = pil_to_tensor(pil)
    for size in (64, 128):  # a downscaled window, and an upscaled one
        crop = RandomScaleCrop(size)
        from_pil = crop(pil, generator=torch.Generator().manual_seed(7))
        assert torch.equal(from_pil, crop(tensor, generator=torch.Generator().manual_seed(7)))
    assert torch.equal(CenterCrop(64)(pil), CenterCrop(64)(tensor))


def test_center_crop_and_tiles_upscale_small_images() -> None:
    assert CenterCrop(64)(torch.rand(3, 20, 50)).shape == (3, 64, 64)
    tiles = grid_tiles(torch.rand(3, 130, 200), 64)
    assert len(tiles) == 2 * 3 and all(t.shape == (3, 64, 64) for t in tiles)
    assert len(grid_tiles(torch.rand(3, 130, 200), 64, limit=4)) == 4


def test_sample_datamodule_batches_and_held_out_photo() -> None:
    dm = SampleDataModule(batch_size=4, crop_size=64, samples_per_epoch=8, val_tiles=3)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == 2
    assert all(b.shape == (4, 3, 64, 64) and b.min() >= 0 and b.max() <= 1 for b in batches)
    assert all("astronaut" not in p.name for p in dm.train_set.paths)
    (val,) = list(dm.val_dataloader())
    assert val.shape == (3, 3, 64, 64)
    assert torch.equal(val, next(iter(dm.val_dataloader())))  # validation is deterministic


def test_batch_size_is_global_and_the_stage_asks_for_sub_batches() -> None:
    assert check_global_batch(8, 1) == 8 and check_global_batch(8, 4) == 2  # authors: 8 crops per step in total
    with pytest.raises(ValueError, match=r"data.batch_size=8 is the global batch.*choose a multiple of 3"):
        check_global_batch(8, 3)
    dm = SampleDataModule(batch_size=4, crop_size=32, samples_per_epoch=16, val_tiles=2)
    dm.setup("fit")
    dm.sub_batches = 2  # what GANStage.setup asks for: one sub-batch for D, one for the codec
    assert [b.shape[0] for b in dm.train_dataloader()] == [8, 8]
    assert next(iter(dm.val_dataloader())).shape[0] == 2


def test_folder_datamodule_reads_a_tree_with_two_workers(tmp_path: Path) -> None:
    write_images(tmp_path / "train" / "a", [(70, 90), (100, 64)])
    write_images(tmp_path / "train" / "b", [(50, 50), (128, 96)])
    write_images(tmp_path / "val", [(64, 80)])
    train, val = str(tmp_path / "train"), str(tmp_path / "val")
    dm = ImageFolderDataModule(train, val, batch_size=2, crop_size=64, num_workers=2)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert [tuple(b.shape) for b in batches] == [(2, 3, 64, 64)] * 2
    assert [tuple(b.shape) for b in dm.val_dataloader()] == [(1, 3, 64, 64)]
    assert dm.skipped_samples == 0


def test_folder_holds_out_validation_deterministically(tmp_path: Path) -> None:
    paths = write_images(tmp_path, [(8, 8)] * 10)
    train, val = hold_out(paths, 0.2)
    assert len(val) == 2 and set(train).isdisjoint(val) and len(train) + len(val) == 10
    assert hold_out(paths, 0.2) == (train, val)


def test_short_epochs_sample_the_whole_folder(tmp_path: Path) -> None:
    paths = write_images(tmp_path, [(8, 8 + i) for i in range(10)])
    dataset = ImageFileDataset(paths, lambda img: torch.tensor(img.width), length=2)
    assert len(dataset) == 2
    assert len({int(dataset[i % 2]) for i in range(60)}) > 5
    cycling = ImageFileDataset(paths, lambda img: torch.tensor(img.width), length=20)
    assert [int(cycling[i]) for i in range(12)] == [8 + i % 10 for i in range(12)]


def test_unreadable_file_is_skipped_with_a_warning(tmp_path: Path) -> None:
    good = write_images(tmp_path, [(64, 64)])
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    dataset = ImageFileDataset(find_images(tmp_path), CenterCrop(32))
    assert dataset.paths == sorted([good[0], bad])
    with pytest.warns(RuntimeWarning, match="broken.png"):
        out = dataset[0]
    assert out.shape == (3, 32, 32) and dataset.skips.value == 1


def test_missing_or_empty_folder_raises_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a directory"):
        find_images(tmp_path / "nope")
    with pytest.raises(DatasetError, match="no image files"):
        find_images(tmp_path)
