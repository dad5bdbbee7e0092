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

import hashlib
import io
import json
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any, BinaryIO, ClassVar

import torch
from torch import nn

from hific_lit.errors import BitstreamError, CheckpointError
from hific_lit.io.container import FINGERPRINT_SIZE, MODEL_KINDS, Header, Unpacked, read_hfc, unpack, write_container
from hific_lit.io.files import atomic_file, atomic_write_bytes
from hific_lit.models.rate import RateCoder, rate_of_steps, rate_request, search_rate
from hific_lit.models.values import Capabilities, Compressed, FileEstimate, LatentCode, as_image_batch, one_image
from hific_lit.nn.padding import crop
from hific_lit.nn.realism import not_conditioned_error
from hific_lit.tiling import DEFAULT_MAX_MEMORY, RowSource

MAX_SYMBOLS_PER_BYTE = 1 << 18
"""A symbol costs at least -log2(65534 / 65536) bits with 16-bit tables: < 181,000 symbols per byte.
A header claiming more is corrupt; checking it avoids allocating latents for a bogus image size."""

FingerprintPart = tuple[str, torch.Tensor, torch.dtype | None]
"""A named tensor that decoding depends on, and the float type it is hashed in (``None``: as stored)."""


def fingerprint_digest(arch: Mapping[str, Any], parts: Iterable[FingerprintPart]) -> bytes:
    """The fingerprint rule: an 8-byte BLAKE2b of the architecture (JSON, sorted keys), then of each part's name
    and bytes, floats converted to the part's type first. Tensors are hashed row by row (small copies); the bytes
    are those of the whole tensor in that type, so a bf16 or float64 copy of a model shares its fingerprint."""
    digest = hashlib.blake2b(digest_size=FINGERPRINT_SIZE)
    digest.update(json.dumps(dict(arch), sort_keys=True).encode())
    for name, tensor, dtype in parts:
        digest.update(name.encode())
        tensor = tensor.detach().cpu()
        for piece in tensor.unbind(0) if tensor.dim() > 1 else (tensor,):
            piece = piece.to(dtype) if dtype is not None and piece.is_floating_point() else piece
            digest.update(piece.contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.digest()


class Codec(nn.Module):
    """A compression model with real bitstreams: what every model implements and every caller uses.

    A subclass sets :attr:`kind` (its name in checkpoints and .hfc headers), :attr:`arch_class` and
    :attr:`presets`, builds its networks from an architecture in ``__init__`` (at least ``g_a`` and ``g_s``,
    the transforms whose precision may be reduced), and implements ``forward``, :meth:`update`,
    :attr:`coding_ready`, :meth:`analysis`, :meth:`code_latent`, :meth:`expected_shapes`, :meth:`decode_latent`,
    :meth:`synthesis` and :meth:`fingerprint_parts`. Realism-conditioned models override :attr:`capabilities`
    and :meth:`set_default_beta`; rate-conditioned ones :attr:`capabilities` and :meth:`rate_coder`.
    """

    kind: ClassVar[str]
    arch_class: ClassVar[type]
    presets: ClassVar[Mapping[str, Any]]
    file_sections: ClassVar[frozenset[str]] = frozenset()
    """The .hfc sections this model reads (:data:`~hific_lit.io.container.SECTION_TAGS`); others are refused."""
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
        """What this model can do beyond its one operating point (none by default)."""
        return Capabilities()

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

    def fingerprint_parts(self) -> tuple[dict[str, Any], list[FingerprintPart]]:
        """(architecture as JSON-able dict, tensors) that :meth:`fingerprint` hashes: what decoding depends on."""
        raise NotImplementedError

    def set_default_beta(self, beta: float) -> None:
        """Decode at realism ``beta`` when none is asked for (realism-conditioned models only)."""
        raise self.not_realism_conditioned()

    def rate_coder(self, latent: torch.Tensor) -> RateCoder:
        """One latent (1, ...) of :meth:`analysis` ready to be coded at any rate (rate-conditioned models only)."""
        raise NotImplementedError(f"this {self.kind} model has one rate")

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

    def fingerprint(self) -> bytes:
        """8 bytes identifying what decoding depends on (:func:`fingerprint_digest` of :meth:`fingerprint_parts`);
        cached until a tensor changes."""
        arch, parts = self.fingerprint_parts()
        key = (
            json.dumps(arch, sort_keys=True),
            [(n, t.data_ptr(), t._version, t.dtype, str(t.device)) for n, t, _ in parts],
        )
        cached = self.__dict__.get("_fingerprint_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        digest = fingerprint_digest(arch, parts)
        self.__dict__["_fingerprint_cache"] = (key, digest)
        return digest

    def write_code(self, code: LatentCode, height: int, width: int, f: BinaryIO) -> int:
        """Write the .hfc file of ``code`` for a ``height`` x ``width`` image at ``f``'s position; the bytes written."""
        header = Header(
            self.fingerprint(), height, width, code.y_shape, code.z_shape, 0, 0, likelihood=code.likelihood,
            kind=self.kind_code,
        )  # fmt: skip
        return write_container(f, header, code.z_stream, code.write_y, code.sections)

    @torch.no_grad()
    def compress(
        self,
        x: torch.Tensor,
        max_memory: int | None = DEFAULT_MAX_MEMORY,
        progress: bool | None = False,
        *,
        rate: float | None = None,
        target_bpp: float | None = None,
        max_bytes: int | None = None,
    ) -> Compressed:
        """One image (3, H, W) or (1, 3, H, W), float in [0, 1] or uint8 -> the bytes of a .hfc file and the
        rate estimate. ``max_memory`` and ``progress`` go to the transforms' tiling; the file does not depend on them.
        A rate-capable model (:attr:`Capabilities.rate`) takes one of ``rate`` (R in 0..1), ``target_bpp`` (a file
        within ±2 % of it, or the reachable end with a note) and ``max_bytes`` (the highest rate that fits;
        :mod:`hific_lit.models.rate`); a model with one rate refuses them (:class:`SettingError`).
        """
        x = one_image(x)
        self.require_coding()
        rate_request(self.capabilities.rate, rate, target_bpp, max_bytes)  # refuse a bad setting before g_a runs
        latent = self.analysis(x, max_memory, progress)
        return self.compress_latent(latent, *x.shape[-2:], rate=rate, target_bpp=target_bpp, max_bytes=max_bytes)

    @torch.no_grad()
    def compress_latent(
        self,
        latent: torch.Tensor,
        height: int,
        width: int,
        *,
        rate: float | None = None,
        target_bpp: float | None = None,
        max_bytes: int | None = None,
    ) -> Compressed:
        """The .hfc bytes of one latent (1, ...) of :meth:`analysis`, of an image of ``height`` x ``width`` (the rate
        options as :meth:`compress`)."""
        self.require_coding()
        request = rate_request(self.capabilities.rate, rate, target_bpp, max_bytes)
        if request is None:
            code = self.code_latent(latent)
            return Compressed(self._file_bytes(code, height, width), code.bits)
        coder = self.rate_coder(latent)

        def encode(steps: int) -> tuple[bytes, float]:
            code = coder.code(steps)
            return self._file_bytes(code, height, width), code.bits

        choice = search_rate(request, coder.estimate_bits, encode, height * width)
        return Compressed(choice.data, choice.bits, rate_of_steps(choice.steps), choice.note)

    def _file_bytes(self, code: LatentCode, height: int, width: int) -> bytes:
        out = io.BytesIO()
        self.write_code(code, height, width, out)
        return out.getvalue()

    def compress_to_file(
        self,
        x: torch.Tensor,
        path: str | os.PathLike,
        max_memory: int | None = DEFAULT_MAX_MEMORY,
        progress: bool | None = False,
        *,
        rate: float | None = None,
        target_bpp: float | None = None,
        max_bytes: int | None = None,
    ) -> FileEstimate:
        """:meth:`compress` of one image written to the .hfc file ``path`` (atomically: a failure leaves no file, and
        an existing one untouched); the model's estimate of its size in bits, with the rate and note of
        :class:`Compressed`. The same bytes as :meth:`compress`.

        Nothing here keeps ``x`` once the analysis has run, nor the float latent once its symbols exist: when the
        caller passes its only reference as a plain argument (a call through ``*args`` or ``**kwargs`` holds its
        arguments until it returns), the image is freed while the latent is coded.
        """
        x = one_image(x)
        self.require_coding()
        request = rate_request(self.capabilities.rate, rate, target_bpp, max_bytes)
        height, width = x.shape[-2:]
        with torch.no_grad():  # not a decorator: its wrapper would hold the image until the call returns
            latent = self.analysis(x, max_memory, progress)
            del x
            if request is not None and request.steps is None:  # a search: the candidates are coded in memory
                found = self.compress_latent(latent, height, width, target_bpp=target_bpp, max_bytes=max_bytes)
                atomic_write_bytes(path, found)
                return FileEstimate(found.estimated_bits, found.rate, found.note)
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
        unpacked = unpack(data)
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
    ) -> torch.Tensor:
        """.hfc bytes -> the image (1, 3, H, W), float in [0, 1] or, with ``uint8``, 8-bit (rounded tile by tile:
        large images in little memory); malformed input raises :class:`BitstreamError`. ``beta``: the realism of a
        realism-conditioned model's reconstruction (the file does not depend on it). The bytes are let go once the
        latent is decoded (when the caller passes its only reference as a plain argument)."""
        if beta is not None and self.capabilities.realism is None:
            raise not_conditioned_error()
        with torch.no_grad():  # not a decorator: its wrapper would hold the bytes until the call returns
            header, latent = self.decompress_latent(data, by_rows=True)
            del data
            x_hat = crop(self.synthesis(latent, max_memory, progress, uint8, beta), header.height, header.width)
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
