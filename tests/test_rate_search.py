"""Per-image targets of a rate-capable model: ``target_bpp`` (±2 % or the reachable end, with a note) and
``max_bytes`` (never over; within 5 % below when reachable), searched on the rate and checked on the file's bytes.

The searches are tested on a synthetic model (an estimate and a coder whose file differs from it as a real one
does, by a factor and a fixed overhead, with staircase steps) and end to end on a tiny rate-conditioned HiFiC,
through ``compress``, ``compress_to_file`` and ``hific compress``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hific_lit.cli import main
from hific_lit.entropy.rate_gains import RATE_STEPS
from hific_lit.errors import SettingError
from hific_lit.io.checkpoint import save_inference_checkpoint
from hific_lit.io.container import unpack
from hific_lit.models.hific.arch import ARCH_PRESETS
from hific_lit.models.hific.model import HiFiC
from hific_lit.models.rate import (
    BUDGET_SLACK,
    MAX_CODINGS,
    TARGET_TOLERANCE,
    search_max_bytes,
    search_target_bpp,
    section_rate_steps,
)

PIXELS = 512 * 768


class Synthetic:
    """Bits growing exponentially with R (2.5 octaves over the range), a file 4 % above the estimate plus 90 bytes
    of header and CRCs, in steps of 8 rate steps (as per-channel gain steps make it); counts its codings."""

    def __init__(self) -> None:
        self.codings = 0

    def estimate(self, steps: int) -> float:
        return 8 * 4000 * 2 ** (2.5 * steps / RATE_STEPS)

    def encode(self, steps: int) -> tuple[bytes, float]:
        self.codings += 1
        size = round(1.04 * self.estimate(steps // 8 * 8) / 8 + 90)
        return bytes(size), self.estimate(steps)


@pytest.mark.parametrize("target_bpp", [0.09, 0.1, 0.2, 0.35, 0.4])
def test_a_reachable_target_is_met_within_two_percent(target_bpp: float) -> None:
    model = Synthetic()
    choice = search_target_bpp(model.estimate, model.encode, PIXELS, target_bpp)
    assert abs(8 * len(choice.data) / PIXELS / target_bpp - 1) <= TARGET_TOLERANCE and choice.note is None
    assert model.codings <= 2


@pytest.mark.parametrize(("target_bpp", "end", "word"), [(0.01, 0, "below"), (2.0, RATE_STEPS, "above")])
def test_an_unreachable_target_gives_that_end_with_a_note(target_bpp: float, end: int, word: str) -> None:
    model = Synthetic()
    choice = search_target_bpp(model.estimate, model.encode, PIXELS, target_bpp)
    assert choice.steps == end and f"is {word} this model's" in choice.note and model.codings == 1


@pytest.mark.parametrize("budget", [4500, 10_000, 12_345, 20_000, 22_000])
def test_max_bytes_is_never_exceeded_and_nearly_used(budget: int) -> None:
    model = Synthetic()
    choice = search_max_bytes(model.estimate, model.encode, budget)
    assert (1 - BUDGET_SLACK) * budget <= len(choice.data) <= budget and choice.note is None
    assert model.codings <= MAX_CODINGS


def test_max_bytes_above_the_highest_rate_and_below_the_lowest() -> None:
    model = Synthetic()
    roomy = search_max_bytes(model.estimate, model.encode, 10**6)
    assert roomy.steps == RATE_STEPS and "fits max_bytes 1000000 with room" in roomy.note
    with pytest.raises(SettingError, match=r"max_bytes 1000: the smallest file .* is 4250 bytes \(rate 0\)"):
        search_max_bytes(model.estimate, model.encode, 1000)


def test_a_wrong_estimate_is_corrected_by_the_files_bytes() -> None:
    model = Synthetic()

    def estimate(steps: int) -> float:  # 40 % low at the top of the range, right at the bottom
        return model.estimate(steps) * (1 - 0.4 * steps / RATE_STEPS)

    for target in (0.12, 0.3):
        choice = search_target_bpp(estimate, model.encode, PIXELS, target)
        assert abs(8 * len(choice.data) / PIXELS / target - 1) <= TARGET_TOLERANCE
    choice = search_max_bytes(estimate, model.encode, 15_000)
    assert 0.95 * 15_000 <= len(choice.data) <= 15_000


@pytest.fixture(scope="module")
def rate_model() -> HiFiC:
    torch.manual_seed(0)
    model = HiFiC(dataclasses.replace(ARCH_PRESETS["tiny"], rate_conditioning=True)).eval()
    with torch.no_grad():
        model.rate_gains.log_gain.copy_(torch.linspace(-2.5, 1.0, 3)[:, None] + 0.2 * torch.rand(3, 8))
    model.update()
    return model


@pytest.fixture(scope="module")
def photos(astronaut: torch.Tensor) -> list[torch.Tensor]:
    from skimage import data

    coffee = torch.from_numpy(data.coffee().copy()).permute(2, 0, 1).float().div(255)
    return [astronaut[0, :, :192, :256], coffee[:, 100:292, 200:456]]


def test_target_bpp_on_photos(rate_model: HiFiC, photos: list[torch.Tensor]) -> None:
    for photo in photos:
        pixels = photo.shape[-1] * photo.shape[-2]
        low, high = (8 * len(rate_model.compress(photo, rate=r)) / pixels for r in (0.0, 1.0))
        for target in (low * 1.3, math.sqrt(low * high), high * 0.8):
            data = rate_model.compress(photo, target_bpp=target)
            assert abs(8 * len(data) / pixels / target - 1) <= TARGET_TOLERANCE and data.note is None
            assert data.rate == section_rate_steps(unpack(data).sections) / RATE_STEPS
            assert rate_model.decompress(data).shape == photo[None].shape
        data = rate_model.compress(photo, target_bpp=low / 2)
        assert data.rate == 0.0 and "below this model's lowest rate" in data.note


def test_max_bytes_on_photos(rate_model: HiFiC, photos: list[torch.Tensor]) -> None:
    for photo in photos:
        low, high = (len(rate_model.compress(photo, rate=r)) for r in (0.0, 1.0))
        for budget in (int(low * 1.2), int(math.sqrt(low * high)), int(high * 0.9)):
            data = rate_model.compress(photo, max_bytes=budget)
            assert (1 - BUDGET_SLACK) * budget <= len(data) <= budget
        with pytest.raises(SettingError, match=f"the smallest file this model makes of this image is {low} bytes"):
            rate_model.compress(photo, max_bytes=low - 1)


def test_compress_to_file_writes_what_compress_returns(
    rate_model: HiFiC, photos: list[torch.Tensor], tmp_path: Path
) -> None:
    photo = photos[0]
    for option in ({"rate": 0.3}, {"target_bpp": 0.5}, {"max_bytes": 900}, {}):
        expected = rate_model.compress(photo, **option)
        estimate = rate_model.compress_to_file(photo, tmp_path / "a.hfc", **option)
        assert (tmp_path / "a.hfc").read_bytes() == expected
        assert (estimate, estimate.rate, estimate.note) == (expected.estimated_bits, expected.rate, expected.note)
    assert rate_model.compress(photo).rate == round(0.5 * RATE_STEPS) / RATE_STEPS  # the default rate


def test_the_command_line_takes_the_rate_options(
    rate_model: HiFiC, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ckpt = tmp_path / "rate.ckpt"
    save_inference_checkpoint(rate_model, ckpt)
    rng = np.random.default_rng(0)
    image = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(image)
    assert main(["compress", str(image), "--ckpt", str(ckpt), "--rate", "0.25", "-o", str(tmp_path / "r.hfc")]) == 0
    assert ", rate 0.2500 " in capsys.readouterr().out
    assert main(["info", str(tmp_path / "r.hfc")]) == 0
    out = capsys.readouterr().out
    assert "rate: 0.250004" in out  # 16384 / 65535 and "sections: rate" in out
    assert main(["compress", str(image), "--ckpt", str(ckpt), "--target-bpp", "0.0001", "-o", str(tmp_path)]) == 0
    assert "below this model's lowest rate for this image" in capsys.readouterr().out
    assert main(["compress", str(image), "--ckpt", str(ckpt), "--max-bytes", "10", "-o", str(tmp_path)]) == 1
    assert "the smallest file this model makes of this image is" in capsys.readouterr().err
    assert main(["info", str(ckpt)]) == 0
    assert "rate: yes (hific compress --rate 0..1" in capsys.readouterr().out


def test_a_fixed_rate_checkpoint_refuses_the_rate_options_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ckpt = tmp_path / "fixed.ckpt"
    save_inference_checkpoint(HiFiC.from_preset("tiny"), ckpt)
    image = tmp_path / "photo.png"
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(image)
    for option in (["--rate", "0.5"], ["--target-bpp", "0.3"], ["--max-bytes", "5000"]):
        assert main(["compress", str(image), "--ckpt", str(ckpt), *option]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "this model has one rate" in err[0]
    assert not list(tmp_path.glob("*.hfc"))
    with pytest.raises(SystemExit):
        main(["compress", str(image), "--ckpt", str(ckpt), "--rate", "1.5"])
    assert "--rate 1.5 is outside 0..1" in capsys.readouterr().err
