"""Reading Qt resource archives (GCompris keeps its photos in them), pinned on archives made by Qt's own rcc."""

from __future__ import annotations

from pathlib import Path

import pytest

from hific_lit.data.qt_resources import resource_files
from hific_lit.errors import DatasetError

FIXTURES = Path(__file__).parent / "fixtures" / "qt"
NOTES = b"hific " * 200


@pytest.mark.parametrize("name", ["v1.rcc", "v2.rcc", "v3.rcc"])
def test_every_format_version_gives_back_the_files_rcc_was_given(name: str) -> None:
    files = dict(resource_files(FIXTURES / name))
    assert files == {"demo/photos/sea/reef.png": (FIXTURES / "reef.png").read_bytes(), "demo/notes.txt": NOTES}
    assert (FIXTURES / name).stat().st_size < len(NOTES)  # notes.txt was stored zlib-compressed and inflated here


def test_a_zstd_file_a_foreign_file_and_a_cut_archive_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"demo/notes\.txt is zstd-compressed"):
        list(resource_files(FIXTURES / "v3_zstd.rcc"))
    with pytest.raises(DatasetError, match="not a Qt resource archive"):
        list(resource_files(FIXTURES / "reef.png"))
    data = (FIXTURES / "v3.rcc").read_bytes()
    for keep in (40, 600, len(data) - 10):
        cut = tmp_path / f"cut{keep}.rcc"
        cut.write_bytes(data[:keep])
        with pytest.raises(DatasetError, match=r"truncated|damaged"):
            list(resource_files(cut))
