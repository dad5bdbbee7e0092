"""The training crops and the deterministic validation crops, on (3, H, W) float tensors.

The authors' pipeline (tensorflow/compression ``models/hific/model.py`` ``_get_dataset``), the default:

* a scale ``s`` is drawn uniformly from ``[lo, hi]`` with ``lo = max(0.75, crop / short side)`` and
  ``hi = max(lo, 0.95)``: a downscale that removes JPEG artefacts, never below the crop; an image whose
  shorter side is below the crop is **upscaled** to exactly the crop;
* the whole image is resized to ``ceil(s·H) x ceil(s·W)``, bilinear without antialiasing
  (``tf.image.resize_images``);
* a random ``crop x crop`` window is cut; no flip.

The resize-then-crop is computed as crop-then-resize with the same numbers: only the rows and columns of the
original that the output window reads are converted and interpolated (separable bilinear weights), so a
4000x3000 photo costs no more than a 256x256 crop. Pixel centres follow torch's ``align_corners=False``
(TF1's ``resize_images`` used ``half_pixel_centers=False``, a sub-pixel shift; see docs/fidelity.md).

``interpolation="bicubic_antialias"`` with ``flip=True`` is this project's earlier pipeline: a square of side
``crop / s`` resized with antialiased bicubic, then a random horizontal flip (the paper's text mentions flips).
Given a PIL image, only the window is converted to float (by :func:`pil_to_tensor`, which also applies
EXIF orientation: a window of the stored image is a window of the oriented one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image

from hific_lit.io.images import pil_to_tensor


@dataclass(frozen=True)
class Crops:
    """What a training batch is made of: ``batch_size`` crops (the global batch) of ``crop_size``², each cut from
    the image resized by a scale drawn from ``scale_range`` with ``interpolation``, flipped or not, its hue turned
    or not.

    The defaults are the authors' (tensorflow/compression ``models/hific``: ``train.py`` ``--batch_size 8``
    ``--crop_size 256``; ``model.py`` ``_get_dataset``: scale 0.75..0.95, ``tf.image.resize_images`` bilinear,
    no flip, no colour change): :data:`AUTHORS_CROPS`, the data modules' defaults and Hydra's ``crops=default`` node
    (:mod:`hific_lit.config.store`), which every ``data`` config starts from.
    """

    batch_size: int = 8
    crop_size: int = 256
    scale_range: tuple[float, float] = (0.75, 0.95)
    interpolation: str = "bilinear"
    flip: bool = False
    hue_rotation: bool = False


AUTHORS_CROPS = Crops()
ImageLike = Image.Image | torch.Tensor
"""A PIL image or a (3, H, W) float tensor in [0, 1]."""


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _randint(high: int, generator: torch.Generator | None) -> int:
    """A uniform integer in [0, high] (inclusive)."""
    return int(torch.randint(0, high + 1, (), generator=generator))


def as_tensor(image: Image.Image | torch.Tensor) -> torch.Tensor:
    """A PIL image as a (3, H, W) float tensor in [0, 1]; a tensor passes through."""
    return pil_to_tensor(image) if isinstance(image, Image.Image) else image


def _size(image: Image.Image | torch.Tensor) -> tuple[int, int]:
    """(height, width) of a PIL image or a (3, H, W) tensor."""
    return (image.height, image.width) if isinstance(image, Image.Image) else tuple(image.shape[-2:])


def _window_rect(image: Image.Image | torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    if isinstance(image, Image.Image):
        return pil_to_tensor(image.crop((left, top, left + width, top + height)))
    return image[:, top : top + height, left : left + width]


def _resize_square(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    out = F.interpolate(x[None], size=(size, size), mode="bicubic", align_corners=False, antialias=True)[0]
    return out.clamp_(0.0, 1.0)


def bilinear_rows(in_size: int, out_size: int, start: int, count: int) -> tuple[int, torch.Tensor]:
    """Rows ``start .. start+count`` of the bilinear resize matrix ``in_size -> out_size``, on the inputs they read.

    The weights of ``F.interpolate(mode="bilinear", align_corners=False, antialias=False)`` along one axis:
    output ``i`` samples input ``max(0, (i + 0.5)·in/out - 0.5)`` between its two neighbours. Returns the
    first input index read and the ``(count, span)`` weight matrix over the ``span`` inputs read.
    """
    dst = torch.arange(start, start + count, dtype=torch.float64)
    src = ((dst + 0.5) * (in_size / out_size) - 0.5).clamp_(min=0.0)
    low = src.floor().long().clamp_(max=in_size - 1)
    frac = (src - low).to(torch.float32)
    high = (low + 1).clamp_(max=in_size - 1)
    first, last = int(low.min()), int(high.max())
    weights = torch.zeros(count, last - first + 1)
    rows = torch.arange(count)
    weights.index_put_((rows, low - first), 1.0 - frac, accumulate=True)
    weights.index_put_((rows, high - first), frac, accumulate=True)
    return first, weights


INTERPOLATIONS = ("bilinear", "bicubic_antialias")

RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]])


def rotate_hue(x: torch.Tensor, angle: float) -> torch.Tensor:
    """Turn the colours of a (3, H, W) image in [0, 1] by ``angle`` radians around the grey axis (YIQ),
    keeping luma; results outside [0, 1] are clipped."""
    cos, sin = math.cos(angle), math.sin(angle)
    rotation = torch.tensor([[1.0, 0.0, 0.0], [0.0, cos, -sin], [0.0, sin, cos]])
    matrix = torch.linalg.inv(RGB_TO_YIQ) @ rotation @ RGB_TO_YIQ
    return torch.einsum("ij,jhw->ihw", matrix, x).clamp_(0.0, 1.0)


class RandomScaleCrop:
    """Random scale (the authors' range), random ``crop x crop`` window, optional horizontal flip.

    Args:
        crop_size: side of the square output (the authors use 256).
        scale_range: ``(0.75, 0.95)`` in the authors' code; the scale is drawn from
            ``[max(low, crop / short side), max(that, high)]``.
        interpolation: ``"bilinear"`` (authors: whole-image bilinear resize without antialiasing) or
            ``"bicubic_antialias"`` (this project's earlier crop-then-resize).
        flip: flip horizontally with probability 1/2 (authors: no flip).
        hue_rotation: with probability 1/2 turn the crop's colours by a uniform random angle
            (:func:`rotate_hue`), so that a few training photos still cover every hue (authors: no).
    """

    def __init__(
        self,
        crop_size: int = AUTHORS_CROPS.crop_size,
        scale_range: tuple[float, float] = AUTHORS_CROPS.scale_range,
        interpolation: str = AUTHORS_CROPS.interpolation,
        flip: bool = AUTHORS_CROPS.flip,
        hue_rotation: bool = AUTHORS_CROPS.hue_rotation,
    ) -> None:
        low, high = scale_range
        if not 0 < low <= high:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {scale_range}")
        if crop_size < 1:
            raise ValueError(f"crop_size must be positive, got {crop_size}")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"unknown interpolation {interpolation!r}; known: {', '.join(INTERPOLATIONS)}")
        self.crop_size = crop_size
        self.scale_range = (float(low), float(high))
        self.interpolation = interpolation
        self.flip = flip
        self.hue_rotation = hue_rotation

    def draw_scale(self, short_side: int, generator: torch.Generator | None = None) -> float:
        """The authors' scale: uniform on ``[max(low, crop/short), max(that, high)]`` (>= 1 upscales)."""
        low = max(self.scale_range[0], self.crop_size / short_side)
        return _uniform(low, max(low, self.scale_range[1]), generator)

    def __call__(self, image: Image.Image | torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """PIL image or (3, H, W) float in [0, 1] -> (3, crop, crop) float in [0, 1]."""
        height, width = _size(image)
        scale = self.draw_scale(min(height, width), generator)
        if self.interpolation == "bilinear":
            out = self._bilinear_crop(image, height, width, scale, generator)
        else:
            out = self._bicubic_crop(image, height, width, scale, generator)
        if self.flip and float(torch.rand((), generator=generator)) < 0.5:
            out = out.flip(-1)
        if self.hue_rotation and float(torch.rand((), generator=generator)) < 0.5:
            out = rotate_hue(out, _uniform(-math.pi, math.pi, generator))
        return out.contiguous()

    def _bilinear_crop(
        self,
        image: Image.Image | torch.Tensor,
        height: int,
        width: int,
        scale: float,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """Resize to ``ceil(scale·H) x ceil(scale·W)`` (bilinear, no antialias), then a random crop: computed on
        the window of the original that the crop reads."""
        crop = self.crop_size
        new_h, new_w = max(crop, math.ceil(scale * height)), max(crop, math.ceil(scale * width))
        top, left = _randint(new_h - crop, generator), _randint(new_w - crop, generator)
        row0, rows = bilinear_rows(height, new_h, top, crop)
        col0, cols = bilinear_rows(width, new_w, left, crop)
        window = _window_rect(image, row0, col0, rows.shape[1], cols.shape[1])
        return (rows @ window @ cols.T).clamp_(0.0, 1.0)

    def _bicubic_crop(
        self,
        image: Image.Image | torch.Tensor,
        height: int,
        width: int,
        scale: float,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """A square of side ``crop / scale`` at a random place, resized to the crop (antialiased bicubic)."""
        window = min(height, width, max(1, round(self.crop_size / scale)))
        top, left = _randint(height - window, generator), _randint(width - window, generator)
        return _resize_square(_window_rect(image, top, left, window, window), self.crop_size)


class CenterCrop:
    """Deterministic validation crop: upscale if the shorter side is below the crop, then cut the centre."""

    def __init__(self, crop_size: int = 256) -> None:
        self.crop_size = crop_size

    def __call__(self, image: Image.Image | torch.Tensor) -> torch.Tensor:
        """PIL image or (3, H, W) float in [0, 1] -> (3, crop, crop) float in [0, 1]."""
        x = upscale_to_cover(as_tensor(image), self.crop_size)
        height, width = x.shape[-2:]
        top, left = (height - self.crop_size) // 2, (width - self.crop_size) // 2
        return x[:, top : top + self.crop_size, left : left + self.crop_size].contiguous()


def upscale_to_cover(x: torch.Tensor, size: int) -> torch.Tensor:
    """Upscale (bicubic, aspect kept) so that the shorter side is at least ``size``; larger images pass through."""
    height, width = x.shape[-2:]
    short = min(height, width)
    if short >= size:
        return x
    new = (max(size, round(height * size / short)), max(size, round(width * size / short)))
    return F.interpolate(x[None], size=new, mode="bicubic", align_corners=False)[0].clamp_(0.0, 1.0)


def grid_tiles(x: torch.Tensor, size: int, limit: int | None = None) -> list[torch.Tensor]:
    """Non-overlapping ``size x size`` tiles of a (3, H, W) image in raster order (after upscale_to_cover)."""
    x = upscale_to_cover(x, size)
    height, width = x.shape[-2:]
    tiles = [
        x[:, top : top + size, left : left + size].contiguous()
        for top in range(0, height - size + 1, size)
        for left in range(0, width - size + 1, size)
    ]
    return tiles if limit is None else tiles[:limit]
