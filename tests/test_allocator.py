"""The large-image allocator setting: only from LARGE_IMAGE_PIXELS on, and only through glibc's mallopt."""

from __future__ import annotations

import pytest

from hific_lit.runtime import allocator


class _FakeLibc:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return 1


def test_the_mmap_threshold_is_fixed_for_large_images_only(monkeypatch: pytest.MonkeyPatch) -> None:
    libc = _FakeLibc()
    monkeypatch.setattr(allocator, "_glibc", lambda: libc)
    assert not allocator.release_memory_for(allocator.LARGE_IMAGE_PIXELS - 1)
    assert libc.calls == []
    assert allocator.release_memory_for(12000 * 12000)
    assert libc.calls == [(-3, 4 << 20)]  # M_MMAP_THRESHOLD (glibc malloc.h), 4 MiB


def test_without_glibc_nothing_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "_glibc", lambda: None)
    assert not allocator.release_memory_for(12000 * 12000)
