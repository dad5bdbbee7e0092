"""The error bound on top of any model: every pixel value within K of the original (``compress(max_error=K)``).

After the latent is coded, the encoder decodes the file exactly as :meth:`~hific_lit.models.base.Codec.decompress`
does (8-bit x_hat), codes the residual quantized with step 2K + 1 with the model's residual coder
(:class:`~hific_lit.entropy.residual.ResidualCoder`, trained on that model's residuals by
``scripts/train_residual.py`` and stored in its checkpoint) and appends it as the residual section of a
version-3 .hfc file (:mod:`hific_lit.entropy.residual_section`). The decoder checks that its x_hat is the
encoder's (CRC32) and that it holds the same residual coder before it adds the residual; otherwise it refuses
in one line that says how to decode instead. docs/error-bound.md has the measurements.
"""

from __future__ import annotations

import io

import torch

from hific_lit.entropy.residual import ResidualCoder, residual_step
from hific_lit.entropy.residual_section import check_x_hat, pack_section, unpack_section, x_hat_checksum
from hific_lit.entropy.residual_tables import MAX_ERROR_LIMIT
from hific_lit.errors import BitstreamError, SettingError
from hific_lit.io.container import register_section, unpack, write_container

RESIDUAL_SECTION = "residual"
"""The name of the residual's section in a version-3 .hfc file (tag 1); every model reads it."""
register_section(1, RESIDUAL_SECTION)

NO_CODER = (
    "this checkpoint has no residual coder, so it cannot bound the error: train one on its residuals "
    "(python scripts/train_residual.py --ckpt CKPT --out BOUNDED.ckpt, docs/error-bound.md)"
)


def check_max_error(coder: ResidualCoder | None, max_error: int) -> None:
    """Refuse (:class:`SettingError`) a bound that is not an integer in 0..127, or a model without a residual coder."""
    try:
        residual_step(max_error)
    except ValueError as exc:
        raise SettingError(f"--max-error: {exc}") from None
    if coder is None:
        raise SettingError(NO_CODER)


def as_pixels(x: torch.Tensor) -> torch.Tensor:
    """One image (1, 3, H, W), uint8 or float in [0, 1], as the (3, H, W) 8-bit pixels the bound is kept on."""
    x = x[0]
    return x.cpu() if x.dtype == torch.uint8 else x.float().mul(255.0).round_().clamp_(0, 255).to(torch.uint8).cpu()


class ErrorBounded:
    """What the :class:`~hific_lit.models.base.Codec` interface gets for the error bound: the residual coder (kept
    beside the model's weights, not in its state dict) and the two steps of coding with it."""

    @property
    def residual_coder(self) -> ResidualCoder | None:
        """The residual coder of the error bound (trained on this model's residuals), or ``None``."""
        return self.__dict__.get("_residual_coder")

    def attach_residual_coder(self, coder: ResidualCoder | None) -> None:
        """Give this model a frozen residual coder (``None``: take it away)."""
        if coder is not None and not coder.built:
            raise ValueError("freeze the residual coder with update() before attaching it")
        self.__dict__["_residual_coder"] = coder

    @property
    def error_bound(self) -> int | None:
        """The largest K this model keeps (``None``: no residual coder)."""
        return None if self.residual_coder is None else MAX_ERROR_LIMIT

    def check_max_error(self, max_error: int | None) -> None:
        """Refuse a bound that is not an integer in 0..127, or any bound without a residual coder."""
        if max_error is not None:
            check_max_error(self.residual_coder, max_error)

    def with_residual(self, plain: bytes, x: torch.Tensor, max_error: int, max_memory, progress) -> bytes:
        """The version-3 file: ``plain`` (this model's .hfc bytes for ``x``) with the residual section added.

        x_hat is decoded from ``plain`` by ``decompress`` itself, as any decoder will.
        """
        coder = self.residual_coder
        x_hat = self.decompress(plain, max_memory=max_memory, progress=progress, uint8=True)[0].cpu()
        stream = coder.encode(as_pixels(x), x_hat, max_error)
        weight = next(self.g_s.parameters())
        crc = x_hat_checksum(x_hat)
        section = pack_section(max_error, weight.dtype, weight.device, coder.fingerprint(), crc, stream)
        unpacked = unpack(plain)
        out = io.BytesIO()
        sections = {**unpacked.sections, RESIDUAL_SECTION: section}
        write_container(out, unpacked.header, unpacked.z_stream, lambda write: write(unpacked.y_stream), sections)
        return out.getvalue()


def residual_info(sections: dict[str, bytes], total_bytes: int) -> dict[str, object]:
    """What ``hific info`` shows of a file's residual section (nothing for a file without one)."""
    if RESIDUAL_SECTION not in sections:
        return {}
    section = unpack_section(sections[RESIDUAL_SECTION])
    return {
        "max_error": section.max_error,
        "residual": f"{100 * len(sections[RESIDUAL_SECTION]) / total_bytes:.1f} % of the file",
        "x_hat_from": f"{section.precision} on {section.device} (decode so)",
    }


def add_residual(coder: ResidualCoder | None, section_bytes: bytes, x_hat: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) uint8 within K of the original: ``x_hat`` (the decoder's, 8-bit) plus the section's residual."""
    section = unpack_section(section_bytes)
    if coder is None:
        raise BitstreamError(
            f"the file is error-bounded (K={section.max_error}) but this checkpoint has no residual coder: decode it "
            "with the checkpoint that encoded it, or pass --no-residual for the model's decoding without the bound"
        )
    if section.coder_fingerprint != coder.fingerprint():
        raise BitstreamError(
            f"the file's residual was coded by another residual coder (fingerprint {section.coder_fingerprint.hex()}, "
            f"this checkpoint's is {coder.fingerprint().hex()}): decode it with the checkpoint that encoded it"
        )
    check_x_hat(section, x_hat[0])
    return coder.decode(section.stream, x_hat[0].cpu(), section.max_error)[None]
