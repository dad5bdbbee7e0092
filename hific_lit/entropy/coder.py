"""Entropy coding of integer symbols with torchac and frozen tables, in bounded memory.

Symbols are coded chunk by chunk (``CHUNK_SYMBOLS`` at a time, in flat order). Inside a chunk
they are sorted by table row width, then cut into runs whose gathered int16 CDF rows stay
within ``ROW_BYTES_BUDGET``; each run is one torchac stream (int16 path, rows gathered from the
tables with ``index_select``). A symbol outside its row's range is coded as the overflow bin and
its exact value follows as an escape: with ``m = |s| - (radius + 1)`` beyond the nearest bound,
the unsigned LEB128 varint of ``2 * m + (s < 0)``. Any int64 decodes exactly.

Byte layout of one chunk (see docs/hfc-format.md)::

    varint len(run_1) ... varint len(run_r)  run_1 ... run_r  varint len(escapes)  escapes

The number of runs and their symbols follow from the indexes alone, which the decoder
recomputes, so they are not stored.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from types import ModuleType

import torch

from hific_lit.entropy.tables import CodingTables
from hific_lit.errors import BitstreamError

CHUNK_SYMBOLS = 1 << 20
ROW_BYTES_BUDGET = 64 << 20
"""At most 64 MiB of gathered CDF rows per run; with the per-chunk index tensors the extra
memory of coding stays well under 256 MB at any image size."""
_PAD_SLACK = 1 << 20


@functools.cache
def torchac_module() -> ModuleType:
    """Import torchac (building its C++ extension on first use) without its build chatter.

    torchac compiles with ``verbose=True`` and torch warns about CUDA on CPU-only machines; both
    would clutter the command line's output, so stdout and stderr are muted during the import.
    """
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            os.dup2(devnull.fileno(), 2)
            with contextlib.redirect_stdout(devnull), contextlib.redirect_stderr(devnull):
                import torchac
    except Exception as exc:
        raise RuntimeError(
            f"torchac's C++ extension failed to load ({exc}); run `python -c 'import torchac'` to see the "
            "compiler output (it needs g++ and ninja)"
        ) from exc
    finally:
        for fd, saved_fd in zip((1, 2), saved, strict=True):
            os.dup2(saved_fd, fd)
            os.close(saved_fd)
    return torchac


def chunk_bounds(n: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each chunk of ``n`` symbols coded together."""
    for start in range(0, n, CHUNK_SYMBOLS):
        yield start, min(n, start + CHUNK_SYMBOLS)


def plan_runs(widths: torch.Tensor) -> list[tuple[int, int, int]]:
    """Cut row widths sorted ascending into runs ``(start, end, width)``, each one torchac call.

    A run's gathered rows (all as wide as its widest) stay within ``ROW_BYTES_BUDGET``; a run
    takes in wider rows only while its padded bytes stay within four times (plus 1 MiB) what its
    rows would take unpadded, so that a chunk needs few streams without gathering much padding.
    """
    values, counts = torch.unique_consecutive(widths, return_counts=True)
    runs: list[tuple[int, int, int]] = []
    start = end = exact = width = 0
    for w, n in zip(values.tolist(), counts.tolist(), strict=True):
        capacity = max(1, ROW_BYTES_BUDGET // (2 * w))
        while n:
            take = min(n, capacity - (end - start))
            padded = (end - start + take) * w * 2
            if end > start and (take <= 0 or padded > 4 * (exact + take * w * 2) + _PAD_SLACK):
                runs.append((start, end, width))
                start, exact = end, 0
                continue
            end, exact, n, width = end + take, exact + take * w * 2, n - take, w
    if end > start:
        runs.append((start, end, width))
    return runs


def write_varint(value: int, out: bytearray) -> None:
    """Append the unsigned LEB128 encoding of ``value`` (>= 0) to ``out``."""
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


class _SortedChunk:
    """A chunk's indexes in coding order (stable by row width) and its runs."""

    def __init__(self, indexes: torch.Tensor, tables: CodingTables) -> None:
        widths = (tables.length.index_select(0, indexes) + 1).to(torch.int16)
        self.order = torch.argsort(widths, stable=True)
        self.indexes = indexes.index_select(0, self.order)
        self.low = tables.offset.index_select(0, self.indexes)
        self.last = tables.length.index_select(0, self.indexes) - 1
        self.runs = plan_runs(widths.index_select(0, self.order))
        self.tables = tables

    def rows(self, start: int, end: int, width: int) -> torch.Tensor:
        """The int16 CDF rows of the symbols ``start:end`` (in coding order), ``width`` wide."""
        return self.tables.cdf[:, :width].contiguous().index_select(0, self.indexes[start:end])


def _escape_codes(symbols: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> list[int]:
    """``2 * m + (s < low)`` where m counts the steps beyond the nearest bound."""
    below = symbols < low
    m = torch.where(below, low - 1 - symbols, symbols - high - 1)
    return (2 * m + below.long()).tolist()


class StreamWriter:
    """Encode chunks of (symbol, table index) pairs into one byte stream."""

    def __init__(self, tables: CodingTables) -> None:
        self.tables = _cpu(tables)
        self.out = bytearray()

    def add_chunk(self, symbols: torch.Tensor, indexes: torch.Tensor) -> None:
        """Code int64 ``symbols`` with the rows ``indexes`` (both flat, on any device)."""
        chunk = _SortedChunk(indexes.cpu().long(), self.tables)
        symbols = symbols.cpu().long().index_select(0, chunk.order)
        v = symbols - chunk.low
        overflow = (v < 0) | (v >= chunk.last)
        v = torch.where(overflow, chunk.last, v)
        v = torch.where(v >= 1 << 15, v - (1 << 16), v).to(torch.int16)
        tac = torchac_module()
        streams = [tac.encode_int16_normalized_cdf(chunk.rows(*run), v[run[0] : run[1]]) for run in chunk.runs]
        escapes = bytearray()
        high = chunk.low + chunk.last - 1
        for code in _escape_codes(symbols[overflow], chunk.low[overflow], high[overflow]):
            write_varint(code, escapes)
        for stream in streams:
            write_varint(len(stream), self.out)
        for stream in streams:
            self.out += stream
        write_varint(len(escapes), self.out)
        self.out += escapes

    def getvalue(self) -> bytes:
        """The stream so far."""
        return bytes(self.out)


class StreamReader:
    """Decode what :class:`StreamWriter` wrote, chunk by chunk, given the same indexes."""

    def __init__(self, data: bytes, tables: CodingTables, name: str) -> None:
        self.data = data
        self.pos = 0
        self.tables = _cpu(tables)
        self.name = name

    def _fail(self, what: str) -> BitstreamError:
        return BitstreamError(f"{self.name} stream: {what}")

    def read_varint(self) -> int:
        """Read one unsigned LEB128 varint."""
        value = shift = 0
        while True:
            if self.pos >= len(self.data):
                raise self._fail("ends inside a length or escape code (truncated or corrupt)")
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
            if shift > 70:
                raise self._fail("a length or escape code is longer than 10 bytes (corrupt)")

    def take(self, size: int) -> bytes:
        """The next ``size`` bytes."""
        if size > len(self.data) - self.pos:
            raise self._fail(f"needs {size} more bytes but only {len(self.data) - self.pos} are left (truncated)")
        self.pos += size
        return self.data[self.pos - size : self.pos]

    def read_chunk(self, indexes: torch.Tensor) -> torch.Tensor:
        """Decode one chunk's int64 symbols (CPU) for the table rows ``indexes``."""
        chunk = _SortedChunk(indexes.cpu().long(), self.tables)
        sizes = [self.read_varint() for _ in chunk.runs]
        v = torch.empty(chunk.order.numel(), dtype=torch.int64)
        tac = torchac_module()
        for (start, end, width), size in zip(chunk.runs, sizes, strict=True):
            decoded = tac.decode_int16_normalized_cdf(chunk.rows(start, end, width), self.take(size))
            v[start:end] = decoded.long() & 0xFFFF
        if bool((v > chunk.last).any()):
            raise self._fail("decoded a symbol no table contains: the decoder is out of step with the encoder")
        symbols = v + chunk.low
        overflow = (v == chunk.last).nonzero().flatten()
        symbols[overflow] = self._read_escapes(overflow, chunk)
        out = torch.empty_like(symbols)
        out[chunk.order] = symbols
        return out

    def _read_escapes(self, positions: torch.Tensor, chunk: _SortedChunk) -> torch.Tensor:
        size = self.read_varint()
        end = self.pos + size
        if end > len(self.data):
            raise self._fail("escape codes run past the end (truncated)")
        low = chunk.low.index_select(0, positions).tolist()
        high = (chunk.low + chunk.last - 1).index_select(0, positions).tolist()
        values: list[int] = []
        for lo, hi in zip(low, high, strict=True):
            code = self.read_varint()
            value = lo - 1 - (code >> 1) if code & 1 else hi + 1 + (code >> 1)
            if not -(1 << 62) <= value < 1 << 62:
                raise self._fail("an escaped value is out of range (corrupt)")
            values.append(value)
        if self.pos != end:
            raise self._fail("escape codes do not fill their block: the decoder is out of step")
        return torch.tensor(values, dtype=torch.int64)

    def finish(self) -> None:
        """Check that the whole stream was consumed."""
        if self.pos != len(self.data):
            raise self._fail(f"{len(self.data) - self.pos} bytes left over after decoding (corrupt)")


def _cpu(tables: CodingTables) -> CodingTables:
    if tables.cdf.device.type == "cpu":
        return tables
    copy = CodingTables()
    copy.assign(tables.cdf.cpu(), tables.length.cpu(), tables.offset.cpu(), tables.scales.cpu())
    return copy
