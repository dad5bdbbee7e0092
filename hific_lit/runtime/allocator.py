"""Freed working memory goes back to the system at once while very large images are coded (glibc only).

glibc serves blocks below its mmap threshold from its heap and keeps them resident after they are
freed; the threshold grows with the blocks freed, up to 32 MiB, so the tiles of a large image leave
hundreds of MB resident that the next stage does not reuse (measured: 36 MP with the ``small``
model, peak 1.16 GiB by default, 0.99 GiB with a fixed 4 MiB threshold). A fixed threshold costs
ordinary photos ~7 % in time (their activations are then mapped afresh on every call), so it is set
only from :data:`LARGE_IMAGE_PIXELS` on, and only by the command line (the library never changes it).
"""

from __future__ import annotations

import ctypes
import functools

LARGE_IMAGE_PIXELS = 16_000_000
MMAP_THRESHOLD = 4 << 20
_M_MMAP_THRESHOLD = -3
"""mallopt's parameter number for M_MMAP_THRESHOLD (glibc's malloc.h)."""


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") else None
    except OSError:
        return None


def release_memory_for(pixels: int) -> bool:
    """For an image of ``pixels`` at or above :data:`LARGE_IMAGE_PIXELS`, fix glibc's mmap threshold at
    :data:`MMAP_THRESHOLD` for the rest of the process; whether it was set (False: small image, or no glibc)."""
    libc = _glibc()
    return pixels >= LARGE_IMAGE_PIXELS and libc is not None and libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
