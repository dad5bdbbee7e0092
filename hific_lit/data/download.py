"""Resumable, verified HTTP downloads: the evaluation sets and the released models (one code path).

A download goes to ``<file>.part`` and resumes from its size with an HTTP ``Range`` request (a
server that ignores the range restarts it from zero); the file gets its final name only once it is
complete. A web page served instead of the file (a sign-in, quota or "confirm" page, as Google Drive
sends for large files) is refused before anything is written, and so is a file whose size is not the
expected one. Any failure becomes one error (:class:`DatasetError` unless told another) naming the URL
and what to do.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from hific_lit.errors import DatasetError, HificError

CHUNK = 1 << 20
DIGESTS = ("sha256", "sha1", "md5")


def file_digests(path: Path, names: tuple[str, ...] = DIGESTS) -> dict[str, str]:
    """Hex digests of ``path`` for each algorithm in ``names``, reading it once."""
    hashes = {name: hashlib.new(name) for name in names}
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            for h in hashes.values():
                h.update(block)
    return {name: h.hexdigest() for name, h in hashes.items()}


def verify_digests(path: Path, expected: dict[str, str]) -> dict[str, str]:
    """Check ``path`` against every digest in ``expected``; return all its digests.

    A mismatch moves the file aside to ``<name>.corrupt`` (so that a new download can start) and raises
    :class:`DatasetError` naming both values.
    """
    unknown = set(expected) - set(DIGESTS)
    if unknown:
        raise DatasetError(f"{path.name}: unsupported checksum type(s) {sorted(unknown)}; use {', '.join(DIGESTS)}")
    actual = file_digests(path)
    for name, value in expected.items():
        if actual[name] != value.lower():
            aside = path.with_name(path.name + ".corrupt")
            os.replace(path, aside)
            raise DatasetError(
                f"{path.name}: {name} checksum mismatch (expected {value}, got {actual[name]}); "
                f"moved it to {aside.name}; run again to download it afresh"
            )
    return actual


def _manual_hint(url: str, path: Path) -> str:
    return f"download {url} by hand and put it at {path} (folder {path.parent}); then run again"


HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<!--", b"<?xml")


def looks_like_html(content_type: str | None, head: bytes) -> bool:
    """Whether a response is a web page: its ``Content-Type`` says so, or its first bytes are HTML."""
    if content_type and content_type.split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml"):
        return True
    return head.lstrip()[:16].lower().startswith(HTML_STARTS)


def _bar(total: int | None, start: int, name: str, progress: bool) -> tqdm:
    return tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=name, disable=not progress)


def fetch(
    url: str,
    path: Path,
    progress: bool = True,
    timeout: float = 30.0,
    expected_size: int | None = None,
    error: type[HificError] = DatasetError,
) -> None:
    """Download ``url`` to ``path``, resuming a ``path.part`` left by an interrupted run.

    Refuses (raising ``error``) a web page served instead of the file and, when ``expected_size`` is
    given, a file of any other size; a download cut short keeps its ``.part`` and says to run again.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "hific-lit"} | ({"Range": f"bytes={start}-"} if start else {})
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # the part file already holds the whole file
            _check_size(part, expected_size, url, path, error)
            os.replace(part, path)
            return
        raise error(f"cannot download {url}: HTTP {exc.code} {exc.reason}; {_manual_hint(url, path)}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise error(f"cannot download {url} ({reason}); offline? {_manual_hint(url, path)}") from None
    with response:
        if start and response.status != 206:
            start = 0  # the server ignored the range: start again
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        first = response.read(CHUNK)
        if not start and looks_like_html(response.headers.get("Content-Type"), first):
            raise error(
                f"{url} sent a web page, not the file (a sign-in, quota or confirm page?); nothing was kept; "
                f"{_manual_hint(url, path)}"
            )
        if expected_size is not None and total is not None and total != expected_size:
            raise error(
                f"{url} offers {total} bytes where the file has {expected_size}: not the expected file; "
                f"{_manual_hint(url, path)}"
            )
        written = start
        try:
            with open(part, "ab" if start else "wb") as out, _bar(total, start, path.name, progress) as bar:
                block = first
                while block:
                    out.write(block)
                    written += len(block)
                    bar.update(len(block))
                    block = response.read(CHUNK)
        except OSError as exc:
            raise error(f"download of {url} interrupted after {written} bytes ({exc}); run again to resume") from None
    if total is not None and written != total:
        raise error(f"download of {url} stopped at {written} of {total} bytes; run again to resume")
    _check_size(part, expected_size, url, path, error)
    os.replace(part, path)


def _check_size(part: Path, expected_size: int | None, url: str, path: Path, error: type[HificError]) -> None:
    """A complete download of the wrong size is removed (a resume cannot mend it) and refused."""
    size = part.stat().st_size
    if expected_size is not None and size != expected_size:
        part.unlink()
        raise error(
            f"{url} gave {size} bytes where the file has {expected_size}: not the expected file (removed); "
            f"{_manual_hint(url, path)}"
        )
