"""The one interface of every compression model: :class:`Codec` (after CompressAI's ``CompressionModel``).

A model builds from an architecture config or a preset name, trains through ``forward``, builds its coding
tables with :meth:`Codec.update`, compresses an image to the bytes of a .hfc file or straight into a file,
decompresses bytes or a file, has a fingerprint (a hash of what decoding depends on) and declares what it can
do (:class:`Capabilities`). Everything above the models (the CLI, evaluation, checkpoints, export) uses only
this interface; nothing there asks which model it holds. Each model supplies its transforms and its latent
coding; the container, the checks of a file against the model and the fingerprint rule live here, once::

    compress:    x ─► analysis (g_a, tiled) ─► latent ─► code_latent ─► LatentCode ─► write_container ─► .hfc
    decompress:  .hfc ─► unpack ─► check_header ─► decode_latent ─► y_hat ─► synthesis (g_s, tiled) ─► crop ─► x̂
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, BinaryIO, ClassVar, NamedTuple

import torch
from torch import nn

from hific_lit.errors import BitstreamError, CheckpointError
from hific_lit.io.container import MODEL_KINDS, Header, Unpacked, read_hfc, unpack, write_container
from hific_lit.io.files import atomic_file
from hific_lit.models.capabilities import Capabilities
from hific_lit.models.error_bound import RESIDUAL_SECTION, ErrorBounded, add_residual
from hific_lit.models.fingerprint import Fingerprinted
from hific_lit.models.inputs import as_image_batch, one_image
from hific_lit.models.rate import FileEstimate, RateControlled, rate_of_steps, rate_request
from hific_lit.nn.padding import crop
from hific_lit.nn.realism import not_conditioned_error
from hific_lit.tiling import DEFAULT_MAX_MEMORY, RowSource

MAX_SYMBOLS_PER_BYTE = 1 << 18
"""A symbol costs at least -log2(65534 / 65536) bits with 16-bit tables: < 181,000 symbols per byte.
A header claiming more is corrupt; checking it avoids allocating latents for a bogus image size."""


class Compressed(bytes):
    """What :meth:`Codec.compress` returns: the bytes of a .hfc file, carrying the model's rate estimate.

    ``estimated_bits`` is -log2 of the likelihoods of the coded symbols under the entropy models, the
    size an ideal entropy coder would reach (the file adds its header, CRCs and the coder's overhead). A
    rate-conditioned model's also says the rate R coded (``rate``) and, for a target out of reach, why (``note``).
    """

    estimated_bits: float

    def __new__(
        cls, data: bytes, estimated_bits: float, rate: float | None = None, note: str | None = None
    ) -> Compressed:
        obj = super().__new__(cls, data)
        obj.estimated_bits, obj.rate, obj.note = estimated_bits, rate, note
        return obj


class LatentCode(NamedTuple):
    """What a .hfc file holds for one image's latent, the latent stream not yet coded.

    The shapes of the latent y and the hyperlatent z ((0, 0, 0) for a model without one), the hyperlatent
    stream, ``write_y(write)`` which codes the latent stream into ``write`` piece by piece (so that a large
    image's stream never exists whole in memory), the ideal size in bits, the latent likelihood's code, and the
    file's sections by name (what the file holds beyond the latent, e.g. an encode-time setting; none: a
    version-2 file).
    """

    y_shape: tuple[int, int, int]
    z_shape: tuple[int, int, int]
    z_stream: bytes
    write_y: Callable[[Callable[[bytes], None]], None]
    bits: float
    likelihood: int = 0
    sections: Mapping[str, bytes] | None = None


class Codec(Fingerprinted, ErrorBounded, RateControlled, nn.Module):
    """A compression model with real bitstreams: what every model implements and every caller uses.

    A subclass sets :attr:`kind` (its name in checkpoints and .hfc headers), :attr:`arch_class` and
    :attr:`presets`, builds its networks from an architecture in ``__init__`` (at least ``g_a`` and ``g_s``,
    the transforms whose precision may be reduced), and implements ``forward``, :meth:`update`,
    :attr:`coding_ready`, :meth:`analysis`, :meth:`code_latent`, :meth:`expected_shapes`, :meth:`decode_latent`,
    :meth:`synthesis` and :meth:`fingerprint_parts`. Realism-conditioned models override :attr:`capabilities`
    and :meth:`set_default_beta`, rate-conditioned ones :attr:`capabilities` and :meth:`rate_coder`.
    """

    kind: ClassVar[str]
    arch_class: ClassVar[type]
    presets: ClassVar[Mapping[str, Any]]
    file_sections: ClassVar[frozenset[str]] = frozenset({RESIDUAL_SECTION})
    """The .hfc sections this model reads (:data:`~hific_lit.io.container.SECTION_TAGS`); others are refused. Every
    model reads the error bound's residual (:mod:`~hific_lit.models.error_bound`)."""
    arch: Any
    g_a: nn.Module
    g_s: nn.Module

    @classmethod
    def from_preset(cls, name: str) -> Codec:
        """A fresh model of the named preset, with an error that lists the known ones."""
        if name not in cls.presets:
            raise ValueError(f"unknown {cls.kind} architecture {name!r}; known: {', '.join(cls.presets)}")
        return cls(cls.presets[name])

    @classmethod
    def from_arch(cls, arch: Mapping[str, Any] | Any) -> Codec:
        """A fresh model of ``arch``: an instance of :attr:`arch_class` or its fields as a mapping."""
        return cls(arch if isinstance(arch, cls.arch_class) else cls.arch_class(**arch))

    @property
    def kind_code(self) -> int:
        """This model's code in byte 15 of a .hfc header (:data:`~hific_lit.io.container.MODEL_KINDS`)."""
        return {name: code for code, name in MODEL_KINDS.items()}[self.kind]

    @property
    def capabilities(self) -> Capabilities:
        """What this model can do beyond its one operating point: by default the error bound, with a residual coder."""
        return Capabilities(error_bound=self.error_bound)

    # What each model implements.
    def update(self, force: bool = False) -> None:
        """Build the coding tables (buffers that travel in the state dict), once unless ``force``."""
        raise NotImplementedError

    @property
    def coding_ready(self) -> bool:
        """Whether :meth:`update` has built everything compress and decompress need."""
        raise NotImplementedError

    def analysis(self, x: torch.Tensor, max_memory: int | None, progress: bool | None) -> torch.Tensor:
        """The latent of images (B, 3, H, W), float in [0, 1] or uint8, on tiles within ``max_memory``."""
        raise NotImplementedError

    def code_latent(self, latent: torch.Tensor) -> LatentCode:
        """What the file holds for one latent (1, ...) from :meth:`analysis`."""
        raise NotImplementedError

    def expected_shapes(self, height: int, width: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """(latent shape, hyperlatent shape) of a ``height`` x ``width`` image coded by this model."""
        raise NotImplementedError

    def decode_latent(self, unpacked: Unpacked, by_rows: bool) -> torch.Tensor | RowSource:
        """The decoded latent of a checked file, as :meth:`synthesis` takes it (``by_rows``: in bands if it can)."""
        raise NotImplementedError

    def synthesis(
        self,
        latent: torch.Tensor | RowSource,
        max_memory: int | None,
        progress: bool | None,
        uint8: bool,
        beta: float | torch.Tensor | None,
    ) -> torch.Tensor:
        """The padded reconstruction: float32 in [0, 1] (not yet clamped) or, with ``uint8``, 8-bit."""
        raise NotImplementedError

    def set_default_beta(self, beta: float) -> None:
        """Decode at realism ``beta`` when none is asked for (realism-conditioned models only)."""
        raise self.not_realism_conditioned()

    def settle_tails(self, steps: int) -> None:
        """Before building the coding tables after a short run: finish fitting what bounds them (HiFiC's
        hyperprior tails); a model whose tables have no learned bounds (GC2018's categorical prior) has none."""

    # What the interface provides.
    def not_realism_conditioned(self) -> CheckpointError:
        """The refusal of a realism for a model that has one operating point."""
        return CheckpointError("this model is not realism-conditioned (no MRIC training); drop --realism")

    def realism_beta(self, realism: float | None) -> float | None:
        """The β of a realism in 0..1 (``None``: the model's default), refused by a model without realism."""
        if realism is None:
            return None
        if self.capabilities.realism is None:
            raise self.not_realism_conditioned()
        return self.capabilities.realism.beta(realism)

    def require_coding(self) -> None:
        """Raise :class:`CheckpointError` unless :attr:`coding_ready`."""
        if not self.coding_ready:
            raise CheckpointError(
                "this model has no coding tables: call model.update() after training, or load a checkpoint "
                "exported with hific_lit.io.checkpoint.save_inference_checkpoint"
            )

    def write_code(self, code: LatentCode, height: int, width: int, f: BinaryIO) -> int:
        """Write the .hfc file of ``code`` for a ``height`` x ``width`` image at ``f``'s position; the bytes written."""
        header = Header(
            self.fingerprint(), height, width, code.y_shape, code.z_shape, 0, 0, likelihood=code.likelihood,
            kind=self.kind_code,
        )  # fmt: skip
        return write_container(f, header, code.z_stream, code.write_y, code.sections)

    @torch.no_grad()
    def compress(
        self, x: torch.Tensor, max_memory: int | None = DEFAULT_MAX_MEMORY, progress: bool | None = False,
        max_error: int | None = None, *, rate: float | None = None, target_bpp: float | None = None,
        max_bytes: int | None = None,
    ) -> Compressed:  # fmt: skip
        """One image (3, H, W) or (1, 3, H, W), float in [0, 1] or uint8 -> the bytes of a .hfc file and the
        rate estimate. ``max_memory`` and ``progress`` go to the transforms' tiling; the file does not depend on them.
        ``max_error`` K: every 8-bit value of the decoding within K of the image's (``capabilities.error_bound``).
        A rate-conditioned model (``capabilities.rate``) takes one of ``rate`` (R in 0..1), ``target_bpp`` (a file
        within ±2 % of it, or the reachable end with a note) and ``max_bytes`` (the highest rate that fits), all
        but ``rate`` without ``max_error`` (:mod:`hific_lit.models.rate`); a model with one rate refuses them.
        """
        x = one_image(x)
        self.require_coding()
        self.check_max_error(max_error)
        rate_request(self.capabilities.rate, rate, target_bpp, max_bytes, max_error)  # refused before g_a runs
        latent = self.analysis(x, max_memory, progress)
        plain = self.compress_latent(latent, *x.shape[-2:], rate=rate, target_bpp=target_bpp, max_bytes=max_bytes)
        if max_error is None:
            return plain
        bounded = self.with_residual(plain, x, max_error, max_memory, progress)
        return Compressed(bounded, plain.estimated_bits + 8 * (len(bounded) - len(plain)), plain.rate)

    @torch.no_grad()
    def compress_latent(
        self, latent: torch.Tensor, height: int, width: int, *, rate: float | None = None,
        target_bpp: float | None = None, max_bytes: int | None = None,
    ) -> Compressed:  # fmt: skip
        """The .hfc bytes of one latent (1, ...) of :meth:`analysis`, of an image of ``height`` x ``width`` (the rate
        options as :meth:`compress`)."""
        self.require_coding()
        request = rate_request(self.capabilities.rate, rate, target_bpp, max_bytes)
        if request is None:
            code = self.code_latent(latent)
            return Compressed(self.file_bytes(code, height, width), code.bits)
        choice = self.rate_choice(latent, height, width, request)
        return Compressed(choice.data, choice.bits, rate_of_steps(choice.steps), choice.note)

    def file_bytes(self, code: LatentCode, height: int, width: int) -> bytes:
        """The bytes of the .hfc file of ``code`` (:meth:`write_code` into memory)."""
        out = io.BytesIO()
        self.write_code(code, height, width, out)
        return out.getvalue()

    def compress_to_file(
        self, x: torch.Tensor, path: str | os.PathLike, max_memory: int | None = DEFAULT_MAX_MEMORY,
        progress: bool | None = False, max_error: int | None = None, **rate: float | None,
    ) -> FileEstimate:  # fmt: skip
        """:meth:`compress` of one image written to the .hfc file ``path`` (atomically: a failure leaves no file, and
        an existing one untouched); the model's estimate of its size in bits, with the rate and note of
        :class:`Compressed`. The same bytes as :meth:`compress`, whose ``rate``, ``target_bpp``, ``max_bytes`` it takes.

        Nothing here keeps ``x`` once the analysis has run, nor the float latent once its symbols exist: when the
        caller passes its only reference as a plain argument (a call through ``*args`` or ``**kwargs`` holds its
        arguments until it returns), the image is freed while the latent is coded.
        """
        request = rate_request(self.capabilities.rate, **rate)
        if max_error is not None or (request is not None and request.steps is None):  # held whole, then written
            data = self.compress(x, max_memory, progress, max_error, **rate)
            with atomic_file(path) as f:
                f.write(data)
            return FileEstimate(data.estimated_bits, data.rate, data.note)
        x = one_image(x)
        self.require_coding()
        height, width = x.shape[-2:]
        with torch.no_grad():  # not a decorator: its wrapper would hold the image until the call returns
            latent = self.analysis(x, max_memory, progress)
            del x
            code = self.code_latent(latent) if request is None else self.rate_coder(latent).code(request.steps)
            del latent
            with atomic_file(path) as f:
                self.write_code(code, height, width, f)
        return FileEstimate(code.bits, None if request is None else rate_of_steps(request.steps))

    def compress_batch(
        self, x: torch.Tensor, max_memory: int | None = DEFAULT_MAX_MEMORY, progress: bool | None = False, **rate: Any
    ) -> list[Compressed]:
        """A batch (B, 3, H, W) -> one .hfc file per image (the analysis runs on the whole batch); ``rate``: the rate
        options of :meth:`compress`, for each image."""
        x = as_image_batch(x)
        self.require_coding()
        height, width = x.shape[-2:]
        with torch.no_grad():
            latent = self.analysis(x, max_memory, progress)
        return [self.compress_latent(latent[i : i + 1], height, width, **rate) for i in range(x.shape[0])]

    def check_header(self, header: Header, sections: Iterable[str] = ()) -> None:
        """Refuse (:class:`BitstreamError`) a file this model did not make or whose header cannot be right: its
        model kind, its latent shapes for its image size, stream lengths too short for them, sections this model
        does not read, and (format 2 on) its fingerprint."""
        if header.kind != self.kind_code:
            found = MODEL_KINDS.get(header.kind, f"unknown ({header.kind})")
            raise BitstreamError(
                f"the file was made by a {found} model, not a {self.kind} one; decode it with its checkpoint"
            )
        expected_y, expected_z = self.expected_shapes(header.height, header.width)
        if header.y_shape != expected_y or header.z_shape != expected_z:
            raise BitstreamError(
                f"the header's latent shapes {header.y_shape} / {header.z_shape} do not fit a "
                f"{header.height}x{header.width} image coded by this model ({expected_y} / {expected_z})"
            )
        for name, shape, length in (
            ("hyperlatent", expected_z, header.z_length),
            ("latent", expected_y, header.y_length),
        ):
            if math.prod(shape) > MAX_SYMBOLS_PER_BYTE * length:
                raise BitstreamError(
                    f"the header claims a {header.height}x{header.width} image, but its {name} stream of {length} "
                    f"bytes cannot hold {math.prod(shape)} symbols (corrupt header)"
                )
        for name in sections:
            if name not in self.file_sections:
                raise BitstreamError(
                    f"the file holds a {name!r} section, which this {self.kind} model does not read; decode it with "
                    "the checkpoint that encoded it"
                )
        if header.version < 2:
            return  # a version-1 file's fingerprint is checked by the model's reader of that format
        expected = self.fingerprint()
        if header.fingerprint != expected:
            raise BitstreamError(
                f"the file was made by another model (fingerprint {header.fingerprint.hex()}, "
                f"this model's is {expected.hex()}); decode it with the checkpoint that encoded it"
            )

    @torch.no_grad()
    def decompress_latent(self, data: bytes, by_rows: bool = False) -> tuple[Header, torch.Tensor | RowSource]:
        """Check ``data`` against this model and decode its latent (``by_rows``: in bands for :meth:`synthesis`,
        each let go once used, where the model can)."""
        return self._decode_latent(unpack(data), by_rows)

    def _decode_latent(self, unpacked: Unpacked, by_rows: bool) -> tuple[Header, torch.Tensor | RowSource]:
        self.require_coding()
        self.check_header(unpacked.header, unpacked.sections)
        return unpacked.header, self.decode_latent(unpacked, by_rows)

    def decompress(
        self,
        data: bytes,
        max_memory: int | None = DEFAULT_MAX_MEMORY,
        progress: bool | None = False,
        uint8: bool = False,
        beta: float | torch.Tensor | None = None,
        residual: bool = True,
    ) -> torch.Tensor:
        """.hfc bytes -> the image (1, 3, H, W), float in [0, 1] or, with ``uint8``, 8-bit (rounded tile by tile:
        large images in little memory); malformed input raises :class:`BitstreamError`. ``beta``: the realism of a
        realism-conditioned model's reconstruction (the file does not depend on it). The bytes are let go once the
        latent is decoded (when the caller passes its only reference as a plain argument). An error-bounded file
        decodes within its K, or is refused if this x_hat is not the encoder's; ``residual=False``: x_hat alone."""
        if beta is not None and self.capabilities.realism is None:
            raise not_conditioned_error()
        with torch.no_grad():  # not a decorator: its wrapper would hold the bytes until the call returns
            unpacked = unpack(data)
            del data
            section = unpacked.sections.get(RESIDUAL_SECTION) if residual else None
            header, latent = self._decode_latent(unpacked, by_rows=True)
            del unpacked
            bits8 = uint8 or section is not None
            x_hat = crop(self.synthesis(latent, max_memory, progress, bits8, beta), header.height, header.width)
            if section is not None:
                x_hat = add_residual(self.residual_coder, section, x_hat)
                return x_hat if uint8 else x_hat.float().div_(255.0)
        return x_hat if uint8 else x_hat.clamp_(0.0, 1.0)

    def decompress_file(
        self,
        path: str | os.PathLike,
        max_memory: int | None = DEFAULT_MAX_MEMORY,
        progress: bool | None = False,
        uint8: bool = False,
        beta: float | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """:meth:`decompress` of the .hfc file ``path`` (a missing or unreadable file is a :class:`BitstreamError`)."""
        return self.decompress(read_hfc(path), max_memory=max_memory, progress=progress, uint8=uint8, beta=beta)

    def decompress_batch(
        self, data: list[bytes], max_memory: int | None = DEFAULT_MAX_MEMORY, progress: bool | None = False, **kw: Any
    ) -> list[torch.Tensor]:
        """Decode each byte string (images may differ in size); ``kw``: :meth:`decompress`'s ``beta`` and ``uint8``."""
        return [self.decompress(d, max_memory, progress, **kw) for d in data]
