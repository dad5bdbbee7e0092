"""What the :class:`~hific_lit.models.base.Codec` interface declares, takes and returns, for every model: its
capabilities (realism at decode, rate at encode), the checks of the images it codes, a latent's code as a .hfc file
holds it (:class:`LatentCode`), and a file's bytes or size with the model's estimate (:class:`Compressed`,
:class:`FileEstimate`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import NamedTuple

import torch

from hific_lit.errors import SettingError
from hific_lit.models.rate import RateRange


@dataclasses.dataclass(frozen=True)
class RealismRange:
    """Realism chosen at decode time (MRIC, Agustsson et al. 2023): β in [0, ``beta_max``], ``default_beta``
    when none is asked for. The same file decodes at any β."""

    beta_max: float
    default_beta: float

    def beta(self, realism: float) -> float:
        """The β of a realism in 0..1 (0: lowest distortion, 1: ``beta_max``)."""
        if not 0.0 <= realism <= 1.0:
            raise SettingError(f"realism {realism} is outside 0..1 (0: beta 0, the lowest distortion; 1: beta_max)")
        return realism * self.beta_max


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What a model can do beyond coding at its one operating point; callers ask this, never the model's class.

    ``realism``: the decode-time realism range of a realism-conditioned model (``None``: one operating point);
    ``rate``: the encode-time rate range of a rate-conditioned model (``None``: one rate).
    """

    realism: RealismRange | None = None
    rate: RateRange | None = None


class Compressed(bytes):
    """What :meth:`Codec.compress` returns: the bytes of a .hfc file, carrying the model's rate estimate.

    ``estimated_bits`` is -log2 of the likelihoods of the coded symbols under the entropy models, the
    size an ideal entropy coder would reach (the file adds its header, CRCs and the coder's overhead). A
    rate-capable model also says the rate R it coded at (``rate``) and, when a target was out of reach, why
    (``note``, one line).
    """

    estimated_bits: float
    rate: float | None
    note: str | None

    def __new__(
        cls, data: bytes, estimated_bits: float, rate: float | None = None, note: str | None = None
    ) -> Compressed:
        obj = super().__new__(cls, data)
        obj.estimated_bits, obj.rate, obj.note = estimated_bits, rate, note
        return obj


class FileEstimate(float):
    """What :meth:`Codec.compress_to_file` returns: the model's estimate of the file in bits (a float), with the
    ``rate`` and ``note`` of :class:`Compressed`."""

    rate: float | None
    note: str | None

    def __new__(cls, bits: float, rate: float | None = None, note: str | None = None) -> FileEstimate:
        obj = super().__new__(cls, bits)
        obj.rate, obj.note = rate, note
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


def as_image_batch(x: torch.Tensor) -> torch.Tensor:
    """Check that ``x`` is one or more RGB images (3, H, W) / (B, 3, H, W), float in [0, 1] or uint8; return it 4-D."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected an image tensor, got {type(x).__name__}")
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or x.shape[1] != 3 or x.shape[-1] < 1 or x.shape[-2] < 1:
        raise ValueError(f"expected an RGB image of shape (3, H, W) or (B, 3, H, W), got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x
    if not x.is_floating_point():
        raise ValueError(f"expected a float image in [0, 1] or a uint8 image, got dtype {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("the image contains NaN or infinite values")
    return x


def one_image(x: torch.Tensor) -> torch.Tensor:
    """:func:`as_image_batch` of a single image: (1, 3, H, W)."""
    x = as_image_batch(x)
    if x.shape[0] != 1:
        raise ValueError(f"compress codes one image; got a batch of {x.shape[0]} (use compress_batch)")
    return x
