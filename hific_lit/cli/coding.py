"""``hific compress`` and ``hific decompress``: real .hfc files from the command line (``hific info``: :mod:`.info`)."""

from __future__ import annotations

import argparse
import collections
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import torch
from tqdm import tqdm

from hific_lit.cli.common import add_command, option_type, parse_realism
from hific_lit.cli.models import add_model_options, compress_checkpoint, decompress_checkpoint
from hific_lit.cli.rate_options import add_rate_options, checked_rate_options, rate_text
from hific_lit.errors import SOME_FAILED, CheckpointError, HificError, SettingError
from hific_lit.io.checkpoint import load_inference_checkpoint
from hific_lit.io.container import SUFFIX, read_hfc, unpack
from hific_lit.io.files import bits_per_pixel
from hific_lit.io.images import DEFAULT_MAX_PIXELS, load_image, save_image
from hific_lit.models.base import Codec
from hific_lit.models.error_bound import RESIDUAL_SECTION
from hific_lit.pretrained.registry import BUNDLED
from hific_lit.runtime.allocator import LARGE_IMAGE_PIXELS, release_memory_for
from hific_lit.runtime.device import resolve_device
from hific_lit.runtime.precision import PRECISIONS
from hific_lit.tiling import DEFAULT_MAX_MEMORY, parse_memory_budget

OUTPUT_FORMATS = ("png", "webp", "tiff", "jpg")
LOSSY_SUFFIXES = (".jpg", ".jpeg", ".webp")


def _load_model(args: argparse.Namespace, ckpt: Path, note: str | None) -> Codec:
    if note and not args.quiet:
        print(note)
    return load_inference_checkpoint(ckpt, map_location=resolve_device(args.device), precision=args.precision)


AUTO_BUDGET = "auto"
LARGE_IMAGE_MAX_MEMORY = 128 * 2**20
"""``--max-memory auto`` (the default) from :data:`~hific_lit.runtime.allocator.LARGE_IMAGE_PIXELS` on: 144 MP with the
``small`` model then peaks at 1.28 GiB (compress) and 1.31 GiB (decompress) instead of 1.45 and 1.67 GiB at 384M,
within 1 GB + the 8-bit image + the model, and takes about as long (``scripts/bench_inference.py``, part 4)."""


def _budget(text: str) -> int | str | None:
    """``--max-memory``: ``auto``, or a budget as :func:`~hific_lit.tiling.parse_memory_budget` reads it."""
    return AUTO_BUDGET if text.strip().lower() == AUTO_BUDGET else parse_memory_budget(text)


def _tiling(args: argparse.Namespace, pixels: int) -> dict[str, object]:
    """The tiling arguments of compress / decompress for an image of ``pixels``: the memory budget (``auto``:
    :data:`DEFAULT_MAX_MEMORY`, or :data:`LARGE_IMAGE_MAX_MEMORY` for large images) and the progress bar."""
    budget = args.max_memory
    if budget == AUTO_BUDGET:
        budget = LARGE_IMAGE_MAX_MEMORY if pixels >= LARGE_IMAGE_PIXELS else DEFAULT_MAX_MEMORY
    return {"max_memory": budget, "progress": False if args.quiet else None}


def output_paths(inputs: list[Path], output: str | None, suffix: str) -> list[Path]:
    """Where each input's result goes: next to it, into the folder ``output``, or the file ``output``.

    ``output`` is taken as a file only for a single input and when it has a suffix.
    """
    if output is not None and Path(output).suffix and not Path(output).is_dir():
        if len(inputs) == 1:
            return [Path(output)]
        raise HificError(f"-o {output} names a file, but {len(inputs)} inputs need a folder")
    folder = Path(output) if output is not None else None
    paths = [(folder or p.parent) / (p.stem + suffix) for p in inputs]
    seen: dict[Path, Path] = {}
    for src, dst in zip(inputs, paths, strict=True):
        if dst in seen:
            raise HificError(f"{seen[dst]} and {src} would both be written to {dst}; use -o DIR per group or rename")
        seen[dst] = src
    return paths


FAILURES = (HificError, OSError, ValueError, MemoryError, RuntimeError)
"""What a single file can fail with (reported on one line; the other files go on). A RuntimeError
counts only when it is torch running out of memory; any other is a bug and keeps its traceback."""


def _out_of_memory(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or "out of memory" in text or "can't allocate memory" in text


class FileStages(NamedTuple):
    """The three stages of work on one file: ``read`` (runs ahead, in a thread), ``compute`` (the model,
    in the calling thread; given the output path too) and ``write`` (in a thread, behind; returns the line
    to print), so that image decoding and encoding overlap the model's work on the next or previous file."""

    read: Callable[[Path], Any]
    compute: Callable[[Any, Path], Any]
    write: Callable[[Path, Path, Any], str]


def _reason(exc: BaseException, src: Path, dst: Path) -> str:
    if isinstance(exc, RuntimeError | MemoryError) and not _out_of_memory(exc):
        raise exc
    reason = str(exc)
    if _out_of_memory(exc):
        reason = "out of memory; a smaller --max-memory (tiles) or --device cpu may help"
    if isinstance(exc, OSError) and exc.strerror:
        reason = f"{exc.filename or dst}: {exc.strerror}"
    return reason if reason.startswith(str(src)) else f"{src}: {reason}"


def _prefetched(pool: ThreadPoolExecutor, read: Callable[[Path], Any], inputs: list[Path]) -> Iterator[Future]:
    """Futures of ``read(path)`` for each input, keeping one read ahead of the consumer (and none behind it)."""
    pending = collections.deque(pool.submit(read, p) for p in inputs[:2])
    for i in range(len(inputs)):
        yield pending.popleft()
        if i + 2 < len(inputs):
            pending.append(pool.submit(read, inputs[i + 2]))


def _run_over_files(inputs: list[Path], outputs: list[Path], stages: FileStages, desc: str, quiet: bool) -> int:
    """Run ``stages`` over each (input, output) pair with a progress bar; report failures, one line each.

    Reading the next input and writing the previous output happen in background threads while the
    model works; with several files, the throughput (files/s) is printed at the end.
    """
    failures = 0

    def report(src: Path, dst: Path, exc: BaseException) -> None:
        nonlocal failures
        failures += 1
        tqdm.write(f"hific {desc}: error: {_reason(exc, src, dst)}", file=sys.stderr)

    def finish(src: Path, dst: Path, done: Future) -> None:
        try:
            message = done.result()
        except FAILURES as exc:
            report(src, dst, exc)
            return
        if not quiet:
            tqdm.write(message)

    start = time.perf_counter()
    bar = tqdm(total=len(inputs), desc=desc, unit="file", disable=True if quiet or len(inputs) < 2 else None)
    with ThreadPoolExecutor(1, "hific-read") as reader, ThreadPoolExecutor(1, "hific-write") as writer:
        written: list[tuple[Path, Path, Future]] = []
        for src, dst, loaded in zip(inputs, outputs, _prefetched(reader, stages.read, inputs), strict=True):
            try:
                result = stages.compute(loaded.result(), dst)
            except FAILURES as exc:
                report(src, dst, exc)
            else:
                written.append((src, dst, writer.submit(stages.write, src, dst, result)))
            while written and written[0][2].done():
                finish(*written.pop(0))
            bar.update()
        for item in written:
            finish(*item)
    bar.close()
    seconds = time.perf_counter() - start
    if not quiet and len(inputs) > 1:
        print(
            f"hific {desc}: {len(inputs) - failures} of {len(inputs)} files in {seconds:.1f} s "
            f"({len(inputs) / seconds:.2f} files/s)"
        )
    return SOME_FAILED if failures else 0


class _Handed:
    """What reading hands on to the model: the model takes it (:meth:`take`), so that nothing else keeps it alive
    once the model is done with it (an image once g_a has run, a file's bytes once its latent is decoded)."""

    def __init__(self, value: Any, notes: list[str] | None = None) -> None:
        self.value = value
        self.notes = notes or []

    def take(self) -> Any:
        value, self.value = self.value, None
        assert value is not None, "taken already"
        return value


def run_compress(args: argparse.Namespace) -> int:
    """Compress images into .hfc files.

    Images (PNG, JPEG, WebP, TIFF; grayscale, RGBA, 16-bit and EXIF-rotated inputs are converted to
    RGB, with a note) become .hfc files. Prints each file's size, its bpp from the bytes on disk and
    the model's estimate. A rate-conditioned model (hific info CKPT says) codes at --rate, or per image at
    --target-bpp or within --max-bytes.
    """
    inputs = [Path(p) for p in args.images]
    outputs = output_paths(inputs, args.output, SUFFIX)
    model = _load_model(args, *compress_checkpoint(args))
    model.check_max_error(args.max_error)  # before any file: a bound the model cannot keep runs nothing
    rate = checked_rate_options(model, args)  # likewise a rate option the model cannot take

    def read(src: Path) -> _Handed:
        notes: list[str] = []
        return _Handed(load_image(src, notes, args.max_pixels, uint8=True), notes)

    def compute(loaded: _Handed, dst: Path) -> tuple[int, int, list[str], float]:
        height, width = loaded.value.shape[-2:]
        release_memory_for(height * width)
        tiling = _tiling(args, height * width)  # by name: a call with **kwargs holds the image until it returns
        # the file is written as it is coded, and the image freed once the analysis has run
        bits = model.compress_to_file(
            loaded.take(), dst, max_memory=tiling["max_memory"], progress=tiling["progress"], max_error=args.max_error,
            **rate,
        )  # fmt: skip
        return height, width, loaded.notes, bits

    def write(src: Path, dst: Path, result: tuple[int, int, list[str], float]) -> str:
        height, width, notes, estimated_bits = result
        size = dst.stat().st_size
        notes = notes + ([estimated_bits.note] if estimated_bits.note else [])
        note = f" ({'; '.join(notes)})" if notes else ""
        if args.max_error is not None:
            residual = len(unpack(dst.read_bytes()).sections[RESIDUAL_SECTION])
            note = f", max error {args.max_error} (residual {100 * residual / size:.1f} % of the file){note}"
        return (
            f"{src} -> {dst}: {width}x{height}, {size} bytes, {bits_per_pixel(size, height, width):.4f} bpp"
            f"{rate_text(estimated_bits)} (model estimate {estimated_bits / (height * width):.4f} bpp){note}"
        )

    return _run_over_files(inputs, outputs, FileStages(read, compute, write), "compress", args.quiet)


def run_decompress(args: argparse.Namespace) -> int:
    """Decode .hfc files into images.

    Decodes with the checkpoint that made the files: --ckpt, --model NAME, or else the model whose
    fingerprint the first file records, found in the model cache or among the bundled models. A file
    from another model, truncated or corrupt fails with a one-line error. A realism-conditioned model
    (MRIC) decodes the same file at any --realism.
    """
    inputs = [Path(p) for p in args.files]
    outputs = output_paths(inputs, args.output, f".decoded.{args.format}")
    ckpt, note = decompress_checkpoint(args, inputs[0])
    model = _load_model(args, ckpt, note)
    try:
        beta = model.realism_beta(args.realism)
    except CheckpointError as exc:
        raise CheckpointError(f"{ckpt}: {exc}") from None
    realism_range = model.capabilities.realism
    shown = "" if realism_range is None else realism_range.default_beta if beta is None else beta
    realism = f", realism {shown / realism_range.beta_max:.2f} (beta {shown:.3g})" if shown != "" else ""

    def write(src: Path, dst: Path, x_hat: torch.Tensor) -> str:
        save_image(x_hat, dst)
        return f"{src} -> {dst}: {x_hat.shape[-1]}x{x_hat.shape[-2]}{realism}"

    def compute(loaded: _Handed, dst: Path) -> torch.Tensor:
        unpacked = unpack(loaded.value)
        if RESIDUAL_SECTION in unpacked.sections and not args.no_residual and dst.suffix.lower() in LOSSY_SUFFIXES:
            raise SettingError(
                f"{dst}: the file is error-bounded; a lossy {dst.suffix} would break the bound: write PNG or TIFF"
            )
        header = unpacked.header
        del unpacked
        pixels = header.height * header.width
        release_memory_for(pixels)
        tiling = _tiling(args, pixels)  # a plain call: the file's bytes go once its latent is decoded
        return model.decompress(
            loaded.take(), max_memory=tiling["max_memory"], progress=tiling["progress"], uint8=True, beta=beta,
            residual=not args.no_residual,
        )  # fmt: skip

    stages = FileStages(lambda src: _Handed(read_hfc(src)), compute, write)
    return _run_over_files(inputs, outputs, stages, "decompress", args.quiet)


def _add_common_options(parser: argparse.ArgumentParser, output: str) -> None:
    """-o, --device, --max-memory, --precision and --quiet, shared by compress and decompress."""
    parser.add_argument(
        "-o", "--output", metavar="FILE|DIR", help=f"output {output} (one input) or folder; default: next to each input"
    )
    parser.add_argument(
        "--device", default="cpu", help="device to run the model on: cpu (default), cuda, cuda:N or auto"
    )
    parser.add_argument(
        "--max-memory",
        type=option_type(_budget),
        default=AUTO_BUDGET,
        metavar="SIZE",
        help="working memory of the encoder and generator: they run on overlapping tiles that fit it; the .hfc "
        f"file is the same as untiled (e.g. 256M, 2G, none; default auto: {DEFAULT_MAX_MEMORY // 2**20}M, "
        f"{LARGE_IMAGE_MAX_MEMORY // 2**20}M from {LARGE_IMAGE_PIXELS // 10**6} MP on)",
    )
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=PRECISIONS,
        help="float type of the encoder and generator: fp32 (default), bf16, fp16, or auto (bf16 where the CPU "
        "computes it natively (AVX-512 BF16, AMX) or on CUDA, else fp32); about 2x faster there. What decides "
        "the symbols stays exact, so a file written in any precision decodes in any other",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only, no progress bar")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the compress and decompress subcommands."""
    compress = add_command(subparsers, "compress", run_compress, "hific compress photo.png -o out/  (--model, --ckpt)")
    compress.add_argument("images", nargs="+", metavar="IMG", help="image files")
    add_model_options(compress, f"Default: the bundled model ({BUNDLED})")
    _add_common_options(compress, "file")
    compress.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        metavar="N",
        help="refuse images of more than N pixels, without decoding them (decompression bombs: a 110 kB PNG can "
        f"claim 30000x30000 pixels); default {DEFAULT_MAX_PIXELS} (16384x16384)",
    )
    compress.add_argument(
        "--max-error",
        type=int,
        metavar="K",
        help="keep every 8-bit pixel value of the decoding within K of the image's (0 = lossless, up to 127): the "
        "residual is coded in the file (checkpoints with a residual coder; hific info CKPT says). Decode in the "
        "encoder's precision and device (docs/error-bound.md)",
    )
    add_rate_options(compress)
    example = "hific decompress photo.hfc  (writes photo.decoded.png; the model is found by the file's fingerprint)"
    decompress = add_command(subparsers, "decompress", run_decompress, example)
    decompress.add_argument("files", nargs="+", metavar="FILE.hfc", help=".hfc files")
    add_model_options(decompress, "Default: the model whose fingerprint the first file records (cache, bundled)")
    _add_common_options(decompress, "image")
    decompress.add_argument(
        "--format", default="png", choices=OUTPUT_FORMATS, help="image format of outputs named automatically"
    )
    decompress.add_argument(
        "--realism",
        type=option_type(parse_realism),
        metavar="R",
        help="models trained with realism conditioning (MRIC; hific info CKPT says): 0 = lowest distortion (beta 0) "
        "... 1 = most realistic (the model's largest beta); the same file decodes at any R. Default: the "
        "checkpoint's (1 unless it stores another)",
    )
    decompress.add_argument(
        "--no-residual",
        action="store_true",
        help="for error-bounded files: the model's decoding alone, without the residual (and without the bound)",
    )
