"""scripts/rate_control.py: the held-out set is the astronaut plus the photos of a pattern, at the training scale."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from PIL import Image


def test_held_out_set_is_the_astronaut_and_the_photos_shrunk_as_the_training_photos(
    load_script: Callable[[str], ModuleType], tmp_path: Path
) -> None:
    script = load_script("rate_control")
    Image.new("RGB", (1200, 600), (10, 200, 30)).save(tmp_path / "wide.png")
    Image.new("RGB", (300, 200), (200, 10, 30)).save(tmp_path / "small.png")
    photos = script.held_out_photos(str(tmp_path / "*.png"))
    assert list(photos) == ["astronaut", "small", "wide"]
    assert photos["astronaut"].shape == (1, 3, 512, 512)  # scikit-image's astronaut, never trained on
    assert photos["wide"].shape == (1, 3, 512, 1024)  # shorter side brought down to 512, as data.max_short_side
    assert photos["small"].shape == (1, 3, 200, 300)  # smaller photos stay as they are


def test_a_missing_held_out_set_says_how_to_install_it(
    load_script: Callable[[str], ModuleType], tmp_path: Path
) -> None:
    script = load_script("rate_control")
    with pytest.raises(SystemExit, match="apt-get install mate-backgrounds"):
        script.held_out_photos(str(tmp_path / "*.jpg"))
