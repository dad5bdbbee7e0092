""".hfc files (format version 2) written as they are coded, into any seekable binary file.

:meth:`HiFiC.compress_latent` writes into memory through :func:`write_hfc_to`;
:func:`compress_to_file` (what ``hific compress`` runs) writes straight into the output file. The
header goes first in the file but is written last, over a placeholder, once the stream lengths and
the payload's CRC32 are known. So a very large image's y-stream (~60 MB for a 144-megapixel photo
with the ``small`` model) never exists whole in memory, nor do the copies that joining the header
and the streams into one ``bytes`` makes; and :func:`compress_to_file` lets go of the image once g_a
has run and of the float latent y once its symbols exist. The bytes are those of :func:`hific_lit.bitstream.pack`.
"""

from __future__ import annotations

import os
import zlib
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

import torch

from hific_lit.bitstream import HEADER_SIZE, Header, pack_header
from hific_lit.entropy.coder import write_stream
from hific_lit.files import atomic_file
from hific_lit.latent_bands import hyper_analysis, quantize_latent
from hific_lit.tiling import DEFAULT_MAX_MEMORY

if TYPE_CHECKING:
    from hific_lit.codec import HiFiC


class LatentCode(NamedTuple):
    """What a .hfc file holds for a latent y, the y-stream not yet coded: the shapes of y and z, the z-stream,
    y's symbols and table indexes (see :func:`hific_lit.latent_bands.quantize_latent`) and the ideal size in bits
    of z_hat and y_hat under the entropy models."""

    y_shape: tuple[int, ...]
    z_shape: tuple[int, ...]
    z_stream: bytes
    symbols: torch.Tensor
    indexes: torch.Tensor
    bits: float


def code_latent(model: HiFiC, y: torch.Tensor) -> LatentCode:
    """h_a, the z-stream, and the symbols of ``y`` (1, C, h, w) given z_hat (Mentzer et al. 2020, Fig. 2)."""
    prior = model.entropy_bottleneck
    z = hyper_analysis(model, y)
    z_stream = prior.compress(z)
    z_hat = prior.dequantize(prior.symbols(z))
    symbols, indexes, y_bits = quantize_latent(model, y, z_hat)
    bits = prior.estimate_bits(z_hat) + y_bits
    return LatentCode(tuple(y.shape[1:]), tuple(z.shape[1:]), z_stream, symbols, indexes, bits)


class _Payload:
    """Passes bytes on to a file, counting them and their CRC32."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.size, self.crc = f, 0, 0

    def write(self, data: bytes) -> None:
        self.f.write(data)
        self.size += len(data)
        self.crc = zlib.crc32(data, self.crc)


def write_hfc_to(model: HiFiC, code: LatentCode, height: int, width: int, f: BinaryIO) -> int:
    """Write the .hfc file of ``code`` for an image of ``height`` x ``width`` at ``f``'s position (``f``
    seekable; it is left at the end of the file); the bytes written. The y-stream is coded as it is written."""
    start = f.tell()
    f.write(bytes(HEADER_SIZE))
    payload = _Payload(f)
    payload.write(code.z_stream)
    write_stream(payload.write, model.conditional.tables, code.symbols, code.indexes)
    z_length = len(code.z_stream)
    shapes = (code.y_shape, code.z_shape)
    header = Header(
        model.fingerprint(),
        height,
        width,
        *shapes,
        z_length,
        payload.size - z_length,
        likelihood=model.conditional.code,
    )
    end = f.tell()
    f.seek(start)
    f.write(pack_header(header, payload.crc))
    f.seek(end)
    return end - start


def compress_to_file(
    model: HiFiC,
    x: torch.Tensor,
    path: str | os.PathLike,
    max_memory: int | None = DEFAULT_MAX_MEMORY,
    progress: bool | None = False,
) -> float:
    """:meth:`HiFiC.compress` of one image ``x`` written to the .hfc file ``path`` (atomically: a failure leaves
    no file, and an existing one untouched); the model's estimate of its size in bits.

    The file holds the same bytes as ``compress`` returns. Nothing here keeps ``x`` once g_a has run:
    when the caller passes its only reference (as a plain argument: a call through ``*args`` or
    ``**kwargs`` holds its arguments until it returns), the image is freed while the latent is coded.
    """
    from hific_lit.codec import as_image_batch

    x = as_image_batch(x)
    if x.shape[0] != 1:
        raise ValueError(f"compress codes one image; got a batch of {x.shape[0]} (use compress_batch)")
    model.require_coding()
    height, width = x.shape[-2:]
    with torch.no_grad():
        y = model.analysis(x, max_memory, progress)
        del x
        code = code_latent(model, y)
        del y
        with atomic_file(path) as f:
            write_hfc_to(model, code, height, width, f)
    return code.bits
