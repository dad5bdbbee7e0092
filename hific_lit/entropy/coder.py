"""Entropy coding of integer symbols with torchac and frozen tables, in bounded memory.

Symbols are coded chunk by chunk (``CHUNK_SYMBOLS`` at a time, in flat order). Inside a chunk
they are sorted (stably) by table row width, then cut into runs whose gathered int16 CDF rows
stay within ``ROW_BYTES_BUDGET``; each run is one torchac stream (int16 path, one row per
symbol gathered from the tables). A symbol outside its row's range is coded as the overflow
bin and its exact value follows as an escape, in flat order: with ``m`` the number of steps
beyond the nearest bound of the row's range, the unsigned LEB128 varint of
``2 * m + (below the range)``. Any int64 below 2**62 in magnitude decodes exactly. The
per-symbol work runs in numpy (single-threaded, radix-sorted), which is faster here than torch.

Byte layout of one chunk (see docs/hfc-format.md)::

    varint len(run_1) ... varint len(run_r)  run_1 ... run_r  varint len(escapes)  escapes

The number of runs and their symbols follow from the indexes alone, which the decoder
recomputes, so they are not stored.
"""

from __future__ import annotations

import contextlib
import functools
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from types import ModuleType

import numpy as np
import torch

from hific_lit.entropy.tables import CodingTables
from hific_lit.errors import BitstreamError

CHUNK_SYMBOLS = 1 << 20
ROW_BYTES_BUDGET = 32 << 20
"""At most 32 MiB of gathered CDF rows per run; with the per-chunk arrays the extra memory of
coding stays well under 256 MB at any image size, and torchac's int row offsets (symbols x row
width) stay far below 2**31. These constants and :func:`plan_runs` are part of .hfc version 1."""
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


def plan_runs(widths: np.ndarray) -> list[tuple[int, int, int]]:
    """Cut row widths sorted ascending into runs ``(start, end, width)``, each one torchac call.

    A run's gathered rows (all as wide as its widest) stay within ``ROW_BYTES_BUDGET``; a run
    takes in wider rows only while its padded bytes stay within 1.25 times (plus 1 MiB) what its
    rows would take unpadded, so that a chunk needs few streams without gathering much padding.
    """
    starts = np.concatenate([[0], np.flatnonzero(np.diff(widths)) + 1])
    counts = np.diff(np.concatenate([starts, [widths.size]]))
    runs: list[tuple[int, int, int]] = []
    start = end = exact = width = 0
    for w, n in zip(widths[starts].tolist(), counts.tolist(), strict=True):
        capacity = max(1, ROW_BYTES_BUDGET // (2 * w))
        while n:
            take = min(n, capacity - (end - start))
            padded = (end - start + take) * w * 2
            if end > start and (take <= 0 or 4 * padded > 5 * (exact + take * w * 2) + 4 * _PAD_SLACK):
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


class _Lookup:
    """Per-row constants of the tables as numpy arrays, gathered per symbol by table index."""

    def __init__(self, tables: CodingTables) -> None:
        length = tables.length.cpu().numpy()
        self.cdf = tables.cdf.cpu().numpy()
        self.low = tables.offset.cpu().numpy().astype(np.int64)
        self.last = (length - 1).astype(np.int64)
        self.width = (length + 1).astype(np.int16)
        self._narrowed: dict[int, np.ndarray] = {}

    def rows(self, width: int) -> np.ndarray:
        """All rows cut to ``width`` columns, contiguous (cached)."""
        if width not in self._narrowed:
            self._narrowed[width] = np.ascontiguousarray(self.cdf[:, :width])
        return self._narrowed[width]


class _Plan:
    """A chunk's coding order (stable by row width) and its runs; both sides derive it from the indexes."""

    def __init__(self, indexes: np.ndarray, lookup: _Lookup) -> None:
        widths = lookup.width[indexes]
        self.order = np.argsort(widths, kind="stable")
        self.sorted_indexes = indexes[self.order]
        self.runs = plan_runs(widths[self.order])
        self.lookup = lookup

    def rows(self, start: int, end: int, width: int) -> torch.Tensor:
        """The int16 CDF rows of the symbols ``start:end`` (in coding order), ``width`` wide."""
        return torch.from_numpy(self.lookup.rows(width)[self.sorted_indexes[start:end]])


def _as_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().long().numpy()


def symbols_crc(symbols: np.ndarray, crc: int = 0) -> int:
    """CRC32 of int64 symbols written little-endian, continuing from ``crc``."""
    return zlib.crc32(symbols.astype("<i8").tobytes(), crc)


class StreamWriter:
    """Encode chunks of (symbol, table index) pairs into one byte stream.

    ``crc`` is the running CRC32 of the symbols coded so far (see :func:`symbols_crc`), starting
    from the value given. The stream's bytes go to ``write`` as each chunk is coded (a file's
    ``write``: a large image's stream never exists whole in memory), or by default to ``out``.
    """

    def __init__(self, tables: CodingTables, crc: int = 0, write: Callable[[bytes], object] | None = None) -> None:
        self.lookup = _Lookup(tables)
        self.out = bytearray()
        self.write = self.out.extend if write is None else write
        self.crc = crc

    def add_chunk(self, symbols: torch.Tensor, indexes: torch.Tensor) -> None:
        """Code int64 ``symbols`` with the table rows ``indexes`` (both flat, on any device)."""
        symbols, indexes = _as_numpy(symbols), _as_numpy(indexes)
        self.crc = symbols_crc(symbols, self.crc)
        plan = _Plan(indexes, self.lookup)
        low, last = self.lookup.low[indexes], self.lookup.last[indexes]
        v = symbols - low
        overflow = np.flatnonzero((v < 0) | (v >= last))
        escapes = bytearray()
        for s, lo, hi in zip(*(a[overflow].tolist() for a in (symbols, low, low + last - 1)), strict=True):
            write_varint(2 * (lo - 1 - s) + 1 if s < lo else 2 * (s - hi - 1), escapes)
        v[overflow] = last[overflow]
        v = v.astype(np.int16)[plan.order]
        tac = torchac_module()
        streams = [
            tac.encode_int16_normalized_cdf(plan.rows(start, end, width), torch.from_numpy(v[start:end]))
            for start, end, width in plan.runs
        ]
        sizes = bytearray()
        for stream in streams:
            write_varint(len(stream), sizes)
        self.write(sizes)
        for stream in streams:
            self.write(stream)
        sizes.clear()
        write_varint(len(escapes), sizes)
        self.write(sizes + escapes)

    def getvalue(self) -> bytes:
        """The stream so far."""
        return bytes(self.out)


class StreamReader:
    """Decode what :class:`StreamWriter` wrote, chunk by chunk, given the same indexes (``crc`` as there)."""

    def __init__(self, data: bytes, tables: CodingTables, name: str, crc: int = 0) -> None:
        self.data = data
        self.pos = 0
        self.crc = crc
        self.lookup = _Lookup(tables)
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
        indexes = _as_numpy(indexes)
        plan = _Plan(indexes, self.lookup)
        sizes = [self.read_varint() for _ in plan.runs]
        decoded = np.empty(indexes.size, dtype=np.int16)
        tac = torchac_module()
        for (start, end, width), size in zip(plan.runs, sizes, strict=True):
            decoded[start:end] = tac.decode_int16_normalized_cdf(plan.rows(start, end, width), self.take(size)).numpy()
        v = np.empty(indexes.size, dtype=np.int64)
        v[plan.order] = decoded
        last = self.lookup.last[indexes]
        if bool((v > last).any() | (v < 0).any()):
            raise self._fail("decoded a symbol no table contains: the decoder is out of step with the encoder")
        symbols = v + self.lookup.low[indexes]
        overflow = np.flatnonzero(v == last)
        size = self.read_varint()
        end = self.pos + size
        if end > len(self.data):
            raise self._fail("escape codes run past the end (truncated)")
        if overflow.size:
            low, high = symbols[overflow] - last[overflow], symbols[overflow] - 1
            symbols[overflow] = self._read_escapes(low.tolist(), high.tolist())
        if self.pos != end:
            raise self._fail("escape codes do not fill their block: the decoder is out of step")
        self.crc = symbols_crc(symbols, self.crc)
        return torch.from_numpy(symbols)

    def _read_escapes(self, low: list[int], high: list[int]) -> np.ndarray:
        values: list[int] = []
        for lo, hi in zip(low, high, strict=True):
            code = self.read_varint()
            value = lo - 1 - (code >> 1) if code & 1 else hi + 1 + (code >> 1)
            if not -(1 << 62) <= value < 1 << 62:
                raise self._fail("an escaped value is out of range (corrupt)")
            values.append(value)
        return np.array(values, dtype=np.int64)

    def finish(self) -> None:
        """Check that the whole stream was consumed."""
        if self.pos != len(self.data):
            raise self._fail(f"{len(self.data) - self.pos} bytes left over after decoding (corrupt)")


def write_stream(
    write: Callable[[bytes], object], tables: CodingTables, symbols: torch.Tensor, indexes: torch.Tensor
) -> None:
    """Code integer ``symbols`` with the table rows ``indexes`` (same shape, any device) as one stream, its
    bytes passed to ``write`` chunk by chunk.

    The chunks in flat order, then the CRC32 of the symbols (uint32 little-endian): the stream
    checks itself when decoded (format version 2).
    """
    writer = StreamWriter(tables, write=write)
    flat_symbols, flat_indexes = symbols.reshape(-1), indexes.reshape(-1)
    for start, end in chunk_bounds(flat_symbols.numel()):
        writer.add_chunk(flat_symbols[start:end], flat_indexes[start:end])
    write(struct.pack("<I", writer.crc))


def encode_stream(tables: CodingTables, symbols: torch.Tensor, indexes: torch.Tensor) -> bytes:
    """The bytes of :func:`write_stream`'s stream."""
    out = bytearray()
    write_stream(out.extend, tables, symbols, indexes)
    return bytes(out)


_WIDER = {torch.int16: torch.int32, torch.int32: torch.int64}


def widened_to_hold(out: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``out`` (int16, int32 or int64), converted to the next wider of those until it can hold every one of the
    integer ``values``: symbols are kept narrow while they fit, and never lose a value."""
    if values.numel():
        low, high = int(values.min()), int(values.max())
        while out.dtype in _WIDER and not torch.iinfo(out.dtype).min <= low <= high <= torch.iinfo(out.dtype).max:
            out = out.to(_WIDER[out.dtype])
    return out


def decode_stream(
    data: bytes, tables: CodingTables, indexes: torch.Tensor, name: str, dtype: torch.dtype = torch.int64
) -> torch.Tensor:
    """Decode what :func:`encode_stream` wrote: symbols on the CPU, shaped like ``indexes``, of ``dtype``
    (int16 or int32 to save memory: the result becomes int64 if a symbol does not fit).

    A stream that does not decode exactly (truncated, corrupt, or a decoder out of step with the
    encoder) raises :class:`BitstreamError` naming the stream ``name``.
    """
    if len(data) < 4:
        raise BitstreamError(f"{name} stream: {len(data)} bytes, too short to hold its CRC32 (truncated)")
    (expected,) = struct.unpack("<I", data[-4:])
    reader = StreamReader(data[:-4], tables, name)
    flat_indexes = indexes.reshape(-1)
    symbols = torch.empty(flat_indexes.numel(), dtype=dtype)
    for start, end in chunk_bounds(symbols.numel()):
        chunk = reader.read_chunk(flat_indexes[start:end])
        symbols = widened_to_hold(symbols, chunk)
        symbols[start:end] = chunk
    reader.finish()
    if reader.crc != expected:
        raise BitstreamError(
            f"{name} stream: the decoded symbols do not match the encoder's (symbol CRC32 mismatch): the decoder "
            "went out of step with the encoder"
        )
    return symbols.view(indexes.shape)
