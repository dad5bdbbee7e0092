"""The Codec interface every model implements: one compress (to bytes or straight to a file), one decompress, one
header check, one fingerprint rule, declared capabilities in place of questions about the model's class."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from hific_lit import HiFiC
from hific_lit.errors import BitstreamError, CheckpointError, SettingError
from hific_lit.io.container import SECTION_TAGS, Header, pack, unpack
from hific_lit.models import registry
from hific_lit.models.base import Codec
from hific_lit.models.capabilities import Capabilities, RealismRange
from hific_lit.models.fingerprint import fingerprint_digest
from hific_lit.models.gc2018.model import GC2018
from hific_lit.models.hific import model as hific_model
from hific_lit.models.hific.arch import ArchConfig


@pytest.fixture(scope="module")
def model(seeded_tiny: Callable[[int], HiFiC]) -> HiFiC:
    return seeded_tiny(13)


@pytest.fixture(scope="module")
def gc2018() -> GC2018:
    torch.manual_seed(3)
    codec = GC2018.from_preset("gc2018_tiny").eval()
    codec.update()
    return codec


def _photo(height: int = 70, width: int = 150) -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100 : 100 + height, 200 : 200 + width])


@pytest.mark.parametrize("name", ["model", "gc2018"])
def test_every_model_writes_the_same_file_to_bytes_and_to_disk(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    codec: Codec = request.getfixturevalue(name)
    x = torch.from_numpy(_photo()).permute(2, 0, 1)
    expected = codec.compress(x)
    bits = codec.compress_to_file(x, tmp_path / "a.hfc")
    written = (tmp_path / "a.hfc").read_bytes()
    header, z_stream, y_stream, _ = unpack(written)
    assert written == expected and header.y_length > 0 and header.kind == codec.kind_code
    assert written == pack(header, z_stream, y_stream)  # the one writer, in memory and into a file
    assert bits == expected.estimated_bits > 0
    from_file = codec.decompress_file(tmp_path / "a.hfc", uint8=True)
    assert torch.equal(from_file, codec.decompress(expected, uint8=True)) and from_file.shape == (1, 3, 70, 150)
    batch = codec.compress_batch(torch.stack([x, x.flip(-1)]))
    assert batch[0] == expected and batch[1] != expected


def test_a_failure_midway_leaves_no_file_and_an_old_one_untouched(
    model: HiFiC, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "a.hfc"
    target.write_bytes(b"old")

    def broken(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(hific_model, "write_stream", broken)
    with pytest.raises(OSError, match="No space"):
        model.compress_to_file(torch.from_numpy(_photo()).permute(2, 0, 1), target)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["a.hfc"]
    with pytest.raises(ValueError, match="one image"):
        model.compress_to_file(torch.rand(2, 3, 16, 16), tmp_path / "b.hfc")
    assert not (tmp_path / "b.hfc").exists()


def test_the_image_is_let_go_once_the_analysis_has_run(
    model: HiFiC, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pixels = _photo()
    alive = weakref.ref(pixels)
    images = [torch.from_numpy(pixels).permute(2, 0, 1)]
    del pixels
    seen = []
    code_latent = HiFiC.code_latent
    monkeypatch.setattr(HiFiC, "code_latent", lambda self, y: seen.append(alive()) or code_latent(self, y))
    model.compress_to_file(images.pop(), tmp_path / "a.hfc")
    assert seen == [None], "the image was still alive while the latent was coded"


def test_a_file_of_one_model_kind_is_refused_by_the_other(model: HiFiC, gc2018: GC2018) -> None:
    x = torch.from_numpy(_photo()).permute(2, 0, 1)
    with pytest.raises(BitstreamError, match="made by a gc2018 model, not a hific one"):
        model.decompress(gc2018.compress(x))
    with pytest.raises(BitstreamError, match="made by a hific model, not a gc2018 one"):
        gc2018.decompress(model.compress(x))


def test_capabilities_replace_questions_about_the_class(model: HiFiC, gc2018: GC2018) -> None:
    assert model.capabilities == gc2018.capabilities == Capabilities()
    mric = HiFiC(
        ArchConfig(**{**ArchConfig().to_dict(), **HiFiC.presets["tiny"].to_dict(), "realism_conditioning": True})
    )
    assert mric.capabilities.realism == RealismRange(beta_max=2.56, default_beta=2.56)
    assert mric.realism_beta(0.5) == pytest.approx(1.28) and mric.realism_beta(None) is None
    with pytest.raises(SettingError, match=r"outside 0\.\.1"):
        mric.realism_beta(1.5)
    mric.set_default_beta(1.0)
    assert mric.capabilities.realism.default_beta == 1.0
    for plain in (model, gc2018):
        with pytest.raises(CheckpointError, match="not realism-conditioned"):
            plain.realism_beta(0.5)
        with pytest.raises(CheckpointError, match="not realism-conditioned"):
            plain.set_default_beta(1.0)
    with pytest.raises(SettingError, match="not realism-conditioned"):
        gc2018.decompress(b"", beta=1.0)


def test_the_registry_builds_every_kind_and_names_the_known_ones() -> None:
    assert set(registry.CODECS) == {"hific", "gc2018"}
    assert isinstance(registry.codec_from_preset("gc2018_tiny"), GC2018)
    assert isinstance(registry.build_codec("hific", HiFiC.presets["tiny"].to_dict()), HiFiC)
    with pytest.raises(CheckpointError, match=r"unknown model kind 'jpeg'.*known: hific, gc2018"):
        registry.codec_class("jpeg")
    with pytest.raises(CheckpointError, match="stored architecture is invalid"):
        registry.build_codec("hific", {"latent_channels": 0})
    with pytest.raises(ValueError, match="unknown architecture preset 'huge'"):
        registry.codec_from_preset("huge")


def test_the_fingerprint_rule_hashes_bytes_in_the_stated_type() -> None:
    weight = torch.linspace(-1, 1, 12).reshape(3, 4)
    as_bf16 = fingerprint_digest({"a": 1}, [("w", weight, torch.bfloat16)])
    assert as_bf16 == fingerprint_digest({"a": 1}, [("w", weight.double(), torch.bfloat16)])
    assert as_bf16 != fingerprint_digest({"a": 1}, [("w", weight, None)])
    assert as_bf16 != fingerprint_digest({"a": 2}, [("w", weight, torch.bfloat16)])
    ints = torch.arange(6).reshape(2, 3)
    assert fingerprint_digest({}, [("i", ints, torch.float64)]) == fingerprint_digest({}, [("i", ints, None)])
    assert len(as_bf16) == 8


def test_a_section_the_model_does_not_read_is_refused(model: HiFiC, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SECTION_TAGS, 203, "unread")
    header, z_stream, y_stream, _ = unpack(model.compress(torch.from_numpy(_photo()).permute(2, 0, 1)))
    with pytest.raises(BitstreamError, match="holds a 'unread' section, which this hific model does not read"):
        model.decompress(pack(header, z_stream, y_stream, {"unread": b"1"}))


def test_a_header_check_names_what_is_wrong(model: HiFiC) -> None:
    data = model.compress(torch.from_numpy(_photo()).permute(2, 0, 1))
    header = unpack(data)[0]
    fields = dict(vars(header))
    wrong_size = Header(**{**fields, "height": 300})
    with pytest.raises(BitstreamError, match="do not fit a 300x150 image"):
        model.check_header(wrong_size)
    wrong_model = Header(**{**fields, "fingerprint": bytes(8)})
    with pytest.raises(BitstreamError, match="made by another model"):
        model.check_header(wrong_model)
