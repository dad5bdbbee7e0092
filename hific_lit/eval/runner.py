"""The evaluation loop: code every image with a checkpoint through real bitstreams, then the baselines.

For each image: compress, write the .hfc file, read it back from disk, decompress, and measure the
reconstruction against the original; bpp is the file's size. Each baseline is then encoded at that
bpp (closest at or above), written, read back and measured the same way. FID and KID are computed
per method over the 256² patches of all images.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import hific_lit.eval.baselines as baselines
from hific_lit.eval.fid import PatchEmbedder, fid_kid
from hific_lit.eval.lossless import bounded_encodings
from hific_lit.eval.metrics import LpipsScorer, colour_error, ms_ssim, psnr_uint8
from hific_lit.eval.plots import method_label
from hific_lit.eval.records import ImageResult, means
from hific_lit.eval.viewer import ViewerImage, ViewerVariant, write_viewer
from hific_lit.io.container import read_hfc, unpack
from hific_lit.io.files import atomic_write_bytes, bits_per_pixel
from hific_lit.io.images import DEFAULT_MAX_PIXELS, encode_image, load_image, to_uint8
from hific_lit.models.base import Codec
from hific_lit.models.rate import rate_of_steps, section_rate_steps


@dataclass
class Scorers:
    """LPIPS and the FID/KID patch features (None when unavailable); MS-SSIM runs on ``device``."""

    lpips: LpipsScorer | None = None
    embed: PatchEmbedder | None = None
    kid_subset_size: int = 1000
    device: torch.device | str = "cpu"


@dataclass
class CheckpointResults:
    """What one checkpoint's pass produced: per-image rows, per-method means (and FID/KID), the viewer."""

    rows: list[ImageResult]
    results: dict[str, dict]
    viewer: Path | None


def unique_names(paths: list[Path]) -> list[str]:
    """File stems, with the parent folder prepended where stems collide (and a count where that is not enough)."""
    stems = [p.stem for p in paths]
    names = [f"{p.parent.name}_{p.stem}" if stems.count(p.stem) > 1 else p.stem for p in paths]
    return [f"{n}_{i}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def measure(original: np.ndarray, reconstruction: np.ndarray, scorers: Scorers) -> dict[str, float | None]:
    """PSNR, MS-SSIM, LPIPS (None when unavailable) and colour error of a reconstruction against its original."""
    return {
        "psnr": psnr_uint8(original, reconstruction),
        "delta_e": colour_error(original, reconstruction) if min(original.shape[:2]) >= 8 else None,
        "ms_ssim": ms_ssim(original, reconstruction, scorers.device),
        "lpips": scorers.lpips(original, reconstruction) if scorers.lpips is not None else None,
    }


@torch.no_grad()
def code_with_model(
    model: Codec, original: np.ndarray, hfc_path: Path, beta: float | None = None, max_error: int | None = None,
    coding: Mapping | None = None,
) -> tuple[np.ndarray, float, float]:  # fmt: skip
    """Compress ``original`` to ``hfc_path`` (within ``max_error`` with the error bound; with the rate options
    ``coding`` of a rate-conditioned model, ``rate`` or ``target_bpp``), decompress what is on disk (at realism
    ``beta``, for a realism-conditioned model); (uint8 image, encode s, decode s)."""
    x = torch.from_numpy(original).permute(2, 0, 1).float().div(255.0).to(next(model.parameters()).device)
    start = time.perf_counter()
    data = model.compress(x, max_error=max_error, **(coding or {}))
    encode_s = time.perf_counter() - start
    atomic_write_bytes(hfc_path, data)
    start = time.perf_counter()
    x_hat = model.decompress_file(hfc_path, beta=beta)
    decode_s = time.perf_counter() - start
    return to_uint8(x_hat), encode_s, decode_s


def file_rate(hfc_path: Path) -> float | None:
    """The rate R a .hfc file was coded at (its ``rate`` section), or None (a model with one rate)."""
    steps = section_rate_steps(unpack(read_hfc(hfc_path)).sections)
    return None if steps is None else rate_of_steps(steps)


def realism_method(beta: float) -> str:
    """The method name of our rows decoded at realism ``beta`` (``hific_beta0``, ``hific_beta2.56``)."""
    return f"hific_beta{beta:g}"


@torch.no_grad()
def decode_at_betas(
    model: Codec, checkpoint: str, image: str, original: np.ndarray, hfc: Path, out_dir: Path, betas: list[float],
    scorers: Scorers,
) -> tuple[list[ImageResult], list[ViewerVariant], dict[str, np.ndarray]]:  # fmt: skip
    """The file ``hfc`` decoded once per β (MRIC: one bitstream, any realism): rows, viewer variants, images."""
    rows, variants, decoded = [], [], {}
    for beta in betas:
        start = time.perf_counter()
        recon = to_uint8(model.decompress_file(hfc, beta=beta))
        decode_s, method = time.perf_counter() - start, realism_method(beta)
        png = encode_image(recon)
        atomic_write_bytes(out_dir / "reconstructions" / f"{image}_beta{beta:g}.png", png)
        row = _result(checkpoint, image, method, original, recon, hfc, scorers, decode_s=decode_s, beta=beta)
        rows.append(row)
        variants.append(ViewerVariant(f"HiFiC β={beta:g}", png, "image/png", asdict(row)))
        decoded[method] = recon
    return rows, variants, decoded


class FidFeatures:
    """FID/KID features of the originals and of each method's reconstructions, in image order.

    ``cache`` keeps the originals' features across checkpoints (they do not change).
    """

    def __init__(self, embed: PatchEmbedder, cache: dict[str, torch.Tensor]) -> None:
        self.embed = embed
        self.cache = cache
        self.real: list[torch.Tensor] = []
        self.fake: dict[str, list[torch.Tensor]] = defaultdict(list)

    def add_original(self, name: str, original: np.ndarray) -> None:
        if name not in self.cache:
            self.cache[name] = self.embed(original)
        self.real.append(self.cache[name])

    def add(self, method: str, reconstruction: np.ndarray) -> None:
        self.fake[method].append(self.embed(reconstruction))

    def compute(self, method: str, kid_subset_size: int) -> dict[str, float | int]:
        """FID/KID of ``method``; empty when the images gave fewer than two patches."""
        real = [f for f in self.real if len(f)]
        fake = [f for f in self.fake[method] if len(f)]
        if sum(map(len, real)) < 2:
            return {}
        return fid_kid(torch.cat(real), torch.cat(fake), kid_subset_size)


def _result(
    checkpoint: str, image: str, method: str, original: np.ndarray, decoded: np.ndarray, file: Path, scorers: Scorers,
    **extra: object,
) -> ImageResult:  # fmt: skip
    height, width = original.shape[:2]
    size = file.stat().st_size
    return ImageResult(
        checkpoint, image, method, width, height, size, bits_per_pixel(size, height, width),
        **measure(original, decoded, scorers), file=str(file), **extra,
    )  # fmt: skip


def evaluate_image(
    model: Codec,
    checkpoint: str,
    image: str,
    original: np.ndarray,
    out_dir: Path,
    codecs: list[str],
    scorers: Scorers,
    with_viewer: bool = True,
    betas: list[float] | None = None,
    max_error: int | None = None,
    coding: Mapping | None = None,
) -> tuple[list[ImageResult], list[ViewerVariant], dict[str, np.ndarray]]:
    """Ours, then each baseline at our bpp, on one image: result rows, viewer variants (none unless
    ``with_viewer``), decoded images by method. With ``betas`` (a realism-conditioned model), our file is
    also decoded at each β: one row each (``hific_beta<β>``), same file and bpp, and a viewer button each.
    With ``max_error`` K, our file keeps every pixel value within K, and the library codecs that do too
    (lossless and near-lossless, :mod:`hific_lit.eval.lossless`) follow, each row with its measured max error.
    ``coding``: the rate options of a rate-conditioned model (:func:`code_with_model`)."""
    hfc = out_dir / "bitstreams" / f"{image}.hfc"
    recon, encode_s, decode_s = code_with_model(model, original, hfc, max_error=max_error, coding=coding)
    recon_png = encode_image(recon)
    atomic_write_bytes(out_dir / "reconstructions" / f"{image}.png", recon_png)
    measured = None if max_error is None else int(np.abs(recon.astype(np.int16) - original.astype(np.int16)).max())
    ours = _result(
        checkpoint, image, "hific", original, recon, hfc, scorers, encode_s=encode_s, decode_s=decode_s,
        max_error=measured, rate=file_rate(hfc),
    )  # fmt: skip
    rows, decoded = [ours], {"hific": recon}
    variants = [
        ViewerVariant("Original", encode_image(original), "image/png"),
        ViewerVariant("HiFiC (ours)", recon_png, "image/png", asdict(ours)),
    ] if with_viewer else []  # fmt: skip
    if betas:
        beta_rows, beta_variants, beta_decoded = decode_at_betas(
            model, checkpoint, image, original, hfc, out_dir, betas, scorers
        )
        rows += beta_rows
        decoded |= beta_decoded
        variants += beta_variants if with_viewer else []
    for bounded in [] if max_error is None else bounded_encodings(original, max_error):
        method = f"{bounded.codec}_k{max_error}"
        file = out_dir / method / f"{image}{bounded.suffix}"
        atomic_write_bytes(file, bounded.data)
        decoded[method] = bounded.decoded
        rows.append(_result(checkpoint, image, method, original, bounded.decoded, file, scorers,
                            max_error=bounded.measured_error))  # fmt: skip
    for codec in codecs:
        match = baselines.match_bpp(original, codec, ours.bpp)
        file = out_dir / codec / f"{image}{baselines.suffix(codec)}"
        atomic_write_bytes(file, match.data)
        data = file.read_bytes()
        decoded[codec] = baselines.decode(data)
        row = _result(
            checkpoint,
            image,
            codec,
            original,
            decoded[codec],
            file,
            scorers,
            quality=match.quality,
            matched=match.matched,
        )
        rows.append(row)
        if with_viewer:
            label = f"{method_label(codec)} q={match.quality}"
            variants.append(ViewerVariant(label, data, baselines.mime_type(codec), asdict(row)))
    return rows, variants, decoded


def evaluate_checkpoint(
    model: Codec,
    name: str,
    images: list[Path],
    out_dir: Path,
    codecs: list[str],
    scorers: Scorers,
    viewer_images: int = 24,
    feature_cache: dict[str, torch.Tensor] | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    betas: list[float] | None = None,
    max_error: int | None = None,
    coding: Mapping | None = None,
) -> CheckpointResults:
    """Evaluate one checkpoint, and the baselines at its rates, on ``images``; files go under ``out_dir``.

    Writes ``bitstreams/*.hfc``, ``reconstructions/*.png``, ``<codec>/*`` and ``viewer.html`` (the
    first ``viewer_images`` images). ``feature_cache`` keeps the originals' FID features across calls.
    An image of more than ``max_pixels`` pixels stops the evaluation with an ImageTooLargeError.
    ``betas``: also decode each file at these realism weights (realism-conditioned models; see :func:`evaluate_image`).
    ``max_error``: code with the error bound K, next to the library codecs that keep it (:func:`evaluate_image`).
    ``coding``: the rate options every image is coded with (rate-conditioned models: one point of the RD curve).
    """
    rows: list[ImageResult] = []
    viewer: list[ViewerImage] = []
    fid = FidFeatures(scorers.embed, {} if feature_cache is None else feature_cache) if scorers.embed else None
    for image, path in tqdm(list(zip(unique_names(images), images, strict=True)), desc=f"eval {name}", unit="img"):
        original = to_uint8(load_image(path, max_pixels=max_pixels, option="max_pixels=N"))
        with_viewer = len(viewer) < viewer_images
        image_rows, variants, decoded = evaluate_image(
            model, name, image, original, out_dir, codecs, scorers, with_viewer, betas, max_error, coding
        )
        rows += image_rows
        if fid is not None:
            fid.add_original(image, original)
            for method, pixels in decoded.items():
                fid.add(method, pixels)
        if with_viewer:
            viewer.append(ViewerImage(image, variants))
    results = {}
    for method in dict.fromkeys(r.method for r in rows):
        results[method] = means([r for r in rows if r.method == method])
        if fid is not None:
            results[method].update(fid.compute(method, scorers.kid_subset_size))
    viewer_path = write_viewer(viewer, out_dir / "viewer.html", title=f"hific-lit: {name}") if viewer else None
    return CheckpointResults(rows, results, viewer_path)
