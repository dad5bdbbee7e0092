"""The exceptions hific-lit raises for bad input; each message says what is wrong and what to do.

Catch :class:`HificError` to handle all of them; the ``hific`` command prints its message on one
line and exits non-zero, without a traceback.
"""

import sys
from collections.abc import Callable


class HificError(Exception):
    """Base class of every user-facing error of hific-lit."""


class BitstreamError(HificError):
    """A .hfc file or byte string is malformed, truncated, corrupt, of a newer format or of another model."""


class CheckpointError(HificError):
    """A checkpoint is missing, unreadable, not a hific-lit checkpoint, or lacks what is asked of it."""


class ImageReadError(HificError):
    """An image file is missing, unreadable or of an unsupported kind."""


class DatasetError(HificError):
    """A data set is missing, incomplete, or fails its checksum."""


class WeightsUnavailableError(HificError):
    """Pretrained weights (LPIPS backbone, Inception) are not cached and cannot be downloaded."""


def exit_status(action: Callable[[], object], prog: str) -> int:
    """Run a command-line action: 0 when it succeeds; a :class:`HificError` is printed on one line
    (``PROG: error: ...``) to stderr, without a traceback, and gives 1."""
    try:
        action()
    except HificError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    return 0
