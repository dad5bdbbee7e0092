"""Files on disk: atomic writes, sizes written as ``256M`` / ``1G``, and bits per pixel from a file's bytes."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from hific_lit.errors import SettingError

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file open for writing that becomes ``path`` only when the ``with`` block ends without error.

    It is a temporary file in the same folder, synced and renamed over ``path`` at the end (and the
    folder synced, so that the rename survives a power loss), so a crash or error midway never leaves a
    half-written file nor destroys an existing one. The file gets the permissions of an ordinary new
    file (0666 less the umask), not mkstemp's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """fsync ``folder``, making a rename in it durable (POSIX); a file system or OS that refuses is left as it is."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Write ``path`` by calling ``write(f)`` on an :func:`atomic_file`; the one atomic writer of the package
    (images, .hfc files, checkpoints, shards, JSON and CSV records)."""
    with atomic_file(path) as f:
        write(f)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda f: f.write(data))


def parse_size(text: str | int) -> int:
    """Bytes in ``text``: a number with an optional binary unit, e.g. ``"512M"``, ``"2GiB"``, ``"1.5g"``, ``"64k"``.

    Raises :class:`SettingError` (a ``ValueError``) for anything else, or a size that is not positive.
    """
    if isinstance(text, int):
        size = text
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", text)
        if match is None:
            raise SettingError(f"cannot read the size {text!r}: use a number with a unit, e.g. 512M or 2G")
        size = int(float(match[1]) * _UNITS[match[2].upper()])
    if size <= 0:
        raise SettingError(f"a size must be positive, got {text!r}")
    return size


def bits_per_pixel(num_bytes: int, height: int, width: int) -> float:
    """The rate of a file of ``num_bytes`` bytes holding a ``height`` x ``width`` image: 8 * bytes / pixels.

    Every bpp hific-lit reports (``hific compress``, ``hific info``, evaluation, the demo) is this,
    from the bytes on disk, headers included (Mentzer et al. 2020, Sec. 5: bpp of the real bitstream).
    """
    return 8 * num_bytes / (height * width)
