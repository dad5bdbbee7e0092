"""The bundled model's photos: the committed manifest, the rule that picks photos, the checks, the data module and
the per-photo validation metrics."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from hific_lit.data import photo_set
from hific_lit.data.photo_module import GroupBatches, PhotoSetDataModule
from hific_lit.data.photo_set import (
    FLAT_LIMIT,
    MIN_SHORT_SIDE,
    SOURCES,
    VALIDATION_PHOTOS,
    ManifestEntry,
    PhotoSource,
    flat_fraction,
    green_share,
    package_root,
    photo_paths,
    read_manifest,
    scan,
    sha256_of,
    unpack_archives,
    write_manifest,
)
from hific_lit.data.sample import sample_photo_path
from hific_lit.errors import DatasetError
from hific_lit.training.callbacks import PhotoMetrics


def test_committed_manifest_holds_many_varied_photos_and_keeps_the_held_out_set_apart() -> None:
    entries = read_manifest()
    train = [e for e in entries if e.role == "train"]
    heldout = [e for e in entries if e.role == "heldout"]
    assert len(train) >= 100 and len(heldout) >= 10
    assert {e.package for e in heldout} == {"mate-backgrounds"}
    assert "mate-backgrounds" not in {e.package for e in train}
    assert len({e.sha256 for e in entries}) == len(entries)  # no photo twice, in any role
    assert {e.package for e in entries} == {s.package for s in SOURCES}
    assert all(len(e.sha256) == 64 and e.version for e in entries)
    assert len({e.package for e in train}) >= 5  # several sources, not one game's landscapes only
    assert not {e.name for e in entries} & set(VALIDATION_PHOTOS)


def test_flat_renders_are_told_from_photos() -> None:
    flat = Image.new("RGB", (640, 400), (30, 90, 160))
    assert flat_fraction(flat) == 1.0
    assert flat_fraction(Image.fromarray(skdata.astronaut())) < FLAT_LIMIT
    noise = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    assert flat_fraction(Image.fromarray(noise)) == 0.0


def test_green_share_counts_foliage_and_not_grey_or_yellow() -> None:
    assert green_share(Image.new("RGB", (300, 200), (103, 185, 15))) == 1.0  # the held-out Blinds' mean colour
    assert green_share(Image.new("RGB", (300, 200), (120, 130, 120))) == 0.0  # greyish green: within 15 levels
    assert green_share(Image.new("RGB", (300, 200), (197, 200, 47))) == 0.0  # yellow: green not above red
    half = np.zeros((128, 128, 3), dtype=np.uint8)
    half[:64] = (40, 160, 60)
    assert green_share(Image.fromarray(half)) == 0.5


def _package(tmp_path: Path) -> tuple[dict[str, Path], Path]:
    root = tmp_path / "photos" / "root" / "pkg"
    folder = root / "usr/share/pics"
    folder.mkdir(parents=True)
    Image.fromarray(skdata.astronaut()).save(folder / "astro.jpg")
    Image.fromarray(skdata.coffee()).save(folder / "coffee.jpg")
    Image.new("RGB", (512, 512), (200, 10, 10)).save(folder / "render.jpg")
    return {"pkg": root}, folder


def test_scan_applies_the_lists_and_the_flat_guard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    roots, folder = _package(tmp_path)
    source = PhotoSource("pkg", "train", ("usr/share/pics/*.jpg",), leave_out={"coffee.jpg": "judged by eye"})
    monkeypatch.setattr(photo_set, "SOURCES", (source,))
    entries, refused = scan(roots, {"pkg": "1.0"})
    assert [e.path for e in entries] == ["usr/share/pics/astro.jpg"]
    assert entries[0].sha256 == sha256_of(folder / "astro.jpg") and entries[0].version == "1.0"
    assert len(refused) == 1 and "render.jpg" in refused[0] and "a render" in refused[0]


def test_photos_inside_qt_resource_archives_are_unpacked_and_scanned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    archive = root / "usr/share/app/rcc/sea.rcc"
    archive.parent.mkdir(parents=True)
    archive.write_bytes((Path(__file__).parent / "fixtures/qt/v2.rcc").read_bytes())
    source = PhotoSource(
        "app", "train", ("usr/share/app/rcc/*.rcc.d/demo/photos/*/*.png",), archives=("usr/share/app/rcc/sea.rcc",)
    )
    assert unpack_archives(source, root) == 2
    unpacked = root / "usr/share/app/rcc/sea.rcc.d/demo/photos/sea/reef.png"
    assert unpacked.read_bytes() == (Path(__file__).parent / "fixtures/qt/reef.png").read_bytes()
    monkeypatch.setattr(photo_set, "SOURCES", (source,))
    entries, refused = scan({"app": root}, {"app": "2.0"})  # the fixture's 16x12 picture is an icon, not a photo
    assert entries == [] and refused == [
        f"app: usr/share/app/rcc/sea.rcc.d/demo/photos/sea/reef.png: 12 px on its short side (under {MIN_SHORT_SIDE})"
    ]
    Image.fromarray(skdata.astronaut()).save(unpacked.with_name("astro.png"))
    entries, _ = scan({"app": root}, {"app": "2.0"})
    assert [e.path for e in entries] == ["usr/share/app/rcc/sea.rcc.d/demo/photos/sea/astro.png"]


def test_photo_paths_finds_checks_and_says_how_to_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, folder = _package(tmp_path)
    entry = ManifestEntry(sha256_of(folder / "astro.jpg"), "train", "pkg", "1.0", "usr/share/pics/astro.jpg")
    manifest = tmp_path / "photos.tsv"
    write_manifest([entry], manifest, "test manifest")
    monkeypatch.setattr(photo_set, "manifest_path", lambda: manifest)
    assert photo_paths("train", tmp_path / "photos") == [package_root(tmp_path / "photos", "pkg") / entry.path]
    with pytest.raises(DatasetError, match=r"1 of the 1 train photos are missing \(packages pkg.*make photos"):
        photo_paths("train", tmp_path / "elsewhere")
    (folder / "astro.jpg").write_bytes(b"another version")
    with pytest.raises(DatasetError, match="differ from the manifest's SHA-256"):
        photo_paths("train", tmp_path / "photos")
    with pytest.raises(DatasetError, match="unknown photo role"):
        photo_paths("validation", tmp_path / "photos")


def test_validation_batches_are_whole_photos_and_metrics_are_logged_per_photo(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found = [
        (ManifestEntry("0" * 64, "train", package, "1", f"{name}.png"), sample_photo_path(name))
        for package, name in (("many", "retina"), ("few", "rocket"))
    ]
    monkeypatch.setattr("hific_lit.data.photo_module.photo_entries", lambda role, folder=None, verify=True: found)
    dm = PhotoSetDataModule(
        batch_size=2, crop_size=64, val_photos=["astronaut", "chelsea"], val_tiles=4, package_repeats={"few": 3}
    )
    dm.setup()
    assert len(dm.train_set) == 512 and dm.val_names == ["astronaut", "chelsea"]
    assert dm.train_set.order == [0, 1, 1, 1]  # the package of few photos drawn 3x as often
    assert next(iter(dm.train_dataloader())).shape == (2, 3, 64, 64)  # crops seeded per sample (data.sampler)
    batches = list(dm.val_dataloader())
    assert [b.shape[0] for b in batches] == [4, 4]
    assert list(GroupBatches([2, 3])) == [[0, 1], [2, 3, 4]]

    logged = {}
    module = SimpleNamespace(iteration=7, log_dict=logged.update)
    trainer = SimpleNamespace(datamodule=dm, sanity_checking=False, global_step=14)
    callback = PhotoMetrics()
    callback.on_validation_epoch_start(trainer, module)
    shift = torch.tensor([0.1, 0.0, -0.1]).view(1, 3, 1, 1)
    callback.on_validation_batch_end(trainer, module, {"x_hat": batches[0]}, batches[0], 0)
    callback.on_validation_batch_end(trainer, module, {"x_hat": (batches[1] + shift).clamp(0, 1)}, batches[1], 1)
    callback.on_validation_epoch_end(trainer, module)
    assert logged["val/delta_e/astronaut"] == 0.0 and logged["val/photo_psnr/astronaut"] == float("inf")
    assert logged["val/delta_e/chelsea"] > 5.0 and 15.0 < logged["val/photo_psnr/chelsea"] < 30.0
    assert logged["val/delta_e"] == pytest.approx(logged["val/delta_e/chelsea"] / 2)
