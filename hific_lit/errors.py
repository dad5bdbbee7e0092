"""The exceptions hific-lit raises for bad input, and the exit status of every command.

Catch :class:`HificError` to handle all of them; each message says what is wrong and what to do.
Every entry point (``hific ...``, ``scripts/*.py``, ``make``) prints it on one line, without a
traceback, and exits with one rule (:func:`exit_status`):

- 0 (:data:`OK`): everything ran;
- 1 (:data:`SOME_FAILED`): some inputs failed (files, data sets, sweep jobs), each reported on one line;
- 2 (:data:`NOTHING_RAN`): nothing could run (a bad checkpoint, setting or data set), or a bad command line;
- 75 (:data:`REQUEUE`): training stopped on a scheduler's signal after writing a checkpoint; run the same
  command again to resume.
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


class SettingError(HificError, ValueError):
    """A setting (command-line option or config value) is malformed: a size, a device, a choice."""


class WeightsUnavailableError(HificError):
    """Pretrained weights (LPIPS backbone, Inception) are not cached and cannot be downloaded."""


OK, SOME_FAILED, NOTHING_RAN = 0, 1, 2
"""The exit statuses of every entry point (module docstring)."""
INTERRUPTED = 130
"""Ctrl-C, as a shell reports a command killed by SIGINT."""
REQUEUE = 75
"""Stopped for a scheduler (SIGTERM, SIGUSR1) with a checkpoint written: ``EX_TEMPFAIL`` of sysexits.h, "a temporary
failure; the user is invited to retry" (SLURM's ``RequeueExit``, Kubernetes' pod failure policies and HTCondor's
``on_exit_remove`` can act on it)."""


def exit_status(action: Callable[[], int | None], prog: str) -> int:
    """Run a command-line action and return its exit status by the rule of this module.

    ``action`` returns :data:`OK` (or ``None``) or :data:`SOME_FAILED`, having reported each failed
    input itself. A :class:`HificError` it raises is printed on one line (``PROG: error: ...``) to
    stderr, without a traceback, and gives :data:`NOTHING_RAN`; other exceptions are bugs and propagate.
    """
    try:
        status = action()
    except HificError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return NOTHING_RAN
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return INTERRUPTED
    return OK if status is None else int(status)
