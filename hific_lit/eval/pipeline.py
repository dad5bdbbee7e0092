"""``evaluate(cfg)``: checkpoints (× rates) × images × (ours + baselines) → CSV/JSON, summary, RD plots, viewers.

A rate-conditioned checkpoint (``arch.rate_conditioning``) draws its whole RD curve: with ``rates`` or
``target_bpps`` each image is coded once per point, each point evaluated (baselines at its bpp, viewer, tables)
as a checkpoint of its own, ``<ckpt>@rate<R>`` or ``<ckpt>@<B>bpp``, and the points joined in the RD plots.

The config is ``conf/eval.yaml`` (``hific eval``; :func:`hific_lit.config.compose_config` outside it).
Metrics whose pretrained weights are unavailable offline (LPIPS' AlexNet, FID's Inception) are
skipped with a warning, and the summary lists them under ``missing`` with the reason.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

import hific_lit.eval.baselines as baselines
from hific_lit.errors import CheckpointError, DatasetError, SettingError, WeightsUnavailableError
from hific_lit.eval.fid import PatchEmbedder, load_inception
from hific_lit.eval.metrics import MS_SSIM_MIN_SIDE, LpipsScorer
from hific_lit.eval.plots import plot_rd, plot_realism
from hific_lit.eval.published import PUBLISHED, published_points
from hific_lit.eval.records import command_line, environment_versions, write_rows, write_summary
from hific_lit.eval.runner import Scorers, evaluate_checkpoint, realism_method, unique_names
from hific_lit.io.images import DEFAULT_MAX_PIXELS
from hific_lit.models.base import Codec
from hific_lit.models.error_bound import NO_CODER
from hific_lit.nn.realism import check_beta
from hific_lit.runtime.device import resolve_device

log = logging.getLogger(__name__)


def _as_list(value: str | list[str] | ListConfig | None) -> list[str]:
    return [] if value is None else [str(value)] if isinstance(value, str) else [str(v) for v in value]


def checkpoint_paths(
    ckpt: str | list[str] | ListConfig | None, model: str | list[str] | ListConfig | None = None
) -> dict[str, Path]:
    """Name -> path of each checkpoint (``ckpt=PATH`` or ``ckpt=[low,med,high]``) and each model named
    (``model=bundled`` or ``model=[hific-low,hific-med]``, from the model cache or the package); names are unique."""
    from hific_lit.pretrained.registry import resolve_model

    paths = [Path(p) for p in _as_list(ckpt)]
    named = {name: resolve_model(name).path for name in _as_list(model)}
    if not paths and not named:
        raise CheckpointError(
            "no checkpoint given: pass ckpt=PATH (or ckpt=[low,med,high] for an RD curve), or model=NAME"
        )
    return dict(zip(unique_names(paths), paths, strict=True)) | named


def dataset_images(eval_set: DictConfig) -> list[Path]:
    """The image files of ``eval_set``: a known set (kodak, clic2020) under ``eval_set.root``, or a folder."""
    if eval_set.name == "folder":
        from hific_lit.data.image_files import find_images

        if not eval_set.get("path"):
            raise DatasetError("eval_set=folder needs eval_set.path=/a/folder/of/images")
        return find_images(Path(eval_set.path).expanduser())
    from hific_lit.data.eval_sets import eval_set_images

    return eval_set_images(eval_set.name, eval_set.root)


def _skip(missing: dict[str, str], keys: tuple[str, ...], reason: str) -> None:
    log.warning("skipping %s: %s", "/".join(keys).upper(), reason)
    for key in keys:
        missing[key] = reason


def load_scorers(metrics: DictConfig, device: torch.device, missing: dict[str, str]) -> Scorers:
    """LPIPS and FID/KID as configured; unavailable ones are recorded in ``missing`` and left out."""
    scorers = Scorers(kid_subset_size=metrics.kid_subset_size, device=device)
    if not metrics.lpips:
        missing["lpips"] = "turned off (metrics.lpips=false)"
    else:
        from hific_lit.training.perceptual import LPIPSLoss

        try:
            scorers.lpips = LpipsScorer(LPIPSLoss(pretrained_backbone=True, download=metrics.download_weights), device)
        except WeightsUnavailableError as exc:
            _skip(missing, ("lpips",), str(exc))
    if not metrics.fid:
        missing["fid"] = missing["kid"] = "turned off (metrics.fid=false)"
    else:
        try:
            scorers.embed = PatchEmbedder(load_inception(metrics.inception_weights, metrics.download_weights), device)
        except WeightsUnavailableError as exc:
            _skip(missing, ("fid", "kid"), str(exc))
    return scorers


def available_codecs(requested: list[str], missing: dict[str, str]) -> list[str]:
    """The requested baselines this Pillow can encode; the others are recorded in ``missing``."""
    known = baselines.available_baselines()
    for codec in requested:
        if codec not in known:
            _skip(missing, (f"baseline_{codec}",), f"Pillow {baselines.pillow_version()} cannot encode {codec}")
    return [c for c in requested if c in known]


def realism_betas(models: dict[str, Codec], betas: list[float] | ListConfig | None) -> list[float] | None:
    """The configured ``realism_betas``, checked: every checkpoint must be realism-conditioned (MRIC) and every β
    within its range; else a one-line :class:`CheckpointError` / :class:`~hific_lit.errors.SettingError`."""
    if not betas:
        return None
    betas = [float(b) for b in betas]
    for name, model in models.items():
        realism = model.capabilities.realism
        if realism is None:
            raise CheckpointError(f"checkpoint {name} is not realism-conditioned; realism_betas needs MRIC checkpoints")
        check_beta(torch.tensor(betas), realism.beta_max, len(betas), torch.device("cpu"))
    return betas


def rate_points(
    models: dict[str, Codec], rates: list[float] | ListConfig | None, target_bpps: list[float] | ListConfig | None
) -> list[tuple[str, dict | None]]:
    """The points of each checkpoint's RD curve: ``("", None)`` (its default rate) unless ``rates`` (R in 0..1) or
    ``target_bpps`` are configured, then ``("@rate<R>", {"rate": R})`` and ``("@<B>bpp", {"target_bpp": B})`` for
    each; those need rate-conditioned checkpoints, else a one-line :class:`CheckpointError` / :class:`SettingError`."""
    rates, target_bpps = [float(r) for r in rates or []], [float(b) for b in target_bpps or []]
    if not rates and not target_bpps:
        return [("", None)]
    for name, model in models.items():
        if model.capabilities.rate is None:
            raise CheckpointError(f"checkpoint {name} has one rate; rates and target_bpps need rate-conditioned ones")
    bad = [r for r in rates if not 0.0 <= r <= 1.0] + [b for b in target_bpps if not b > 0]
    if bad:
        raise SettingError(f"{bad[0]:g} is out of range: rates lie in 0..1, target_bpps above 0")
    return [(f"@rate{r:g}", {"rate": r}) for r in rates] + [(f"@{b:g}bpp", {"target_bpp": b}) for b in target_bpps]


def evaluate(cfg: DictConfig, out_dir: str | Path | None = None, scorers: Scorers | None = None) -> dict:
    """Run the evaluation described by ``cfg`` and write everything under ``out_dir`` (default
    ``cfg.paths.output_dir``, the run folder); return the summary.

    ``scorers`` replaces the configured LPIPS/FID metrics (tests pass small feature extractors).
    """
    from hific_lit.io.checkpoint import load_inference_checkpoint

    out_dir = Path(cfg.paths.output_dir if out_dir is None else out_dir)
    checkpoints = checkpoint_paths(None if OmegaConf.is_missing(cfg, "ckpt") else cfg.ckpt, cfg.get("model"))
    device = resolve_device(cfg.device)
    precision = cfg.get("precision", "fp32")
    models = {
        name: load_inference_checkpoint(path, map_location=device, precision=precision)
        for name, path in checkpoints.items()
    }
    betas = realism_betas(models, cfg.get("realism_betas"))
    max_error = cfg.get("max_error")
    if max_error is not None:
        for name, model in models.items():
            bound = model.capabilities.error_bound
            if bound is None or not 0 <= max_error <= bound:
                reason = NO_CODER if bound is None else f"max_error={max_error} is outside 0..{bound}"
                raise SettingError(f"{checkpoints[name]}: {reason}")
    curve = rate_points(models, cfg.get("rates"), cfg.get("target_bpps"))
    if max_error is not None and cfg.get("target_bpps"):
        raise SettingError("max_error adds a residual on top of the file: use it with rates, not target_bpps")
    images = dataset_images(cfg.eval_set)
    missing: dict[str, str] = {}
    scorers = scorers or load_scorers(cfg.metrics, device, missing)
    if scorers.lpips is None:
        missing.setdefault("lpips", "no LPIPS network given")
    if scorers.embed is None:
        missing.setdefault("fid", "no FID feature extractor given")
        missing.setdefault("kid", "no FID feature extractor given")
    codecs = available_codecs(list(cfg.baselines), missing) if max_error is None else []
    rows, results, points, realism_points, viewers, feature_cache = [], {}, [], [], {}, {}
    for (checkpoint, model), (suffix, coding) in itertools.product(models.items(), curve):
        name = checkpoint + suffix
        res = evaluate_checkpoint(
            model.to(device).eval(), name, images, out_dir / name, codecs, scorers, cfg.viewer_images, feature_cache,
            cfg.get("max_pixels", DEFAULT_MAX_PIXELS), betas, max_error, coding,
        )  # fmt: skip
        rows += res.rows
        csv_path, json_path = write_rows(rows, out_dir)  # after each checkpoint: a later crash keeps these
        results[name] = {"path": str(checkpoints[checkpoint]), "methods": res.results} | (
            {"coding": coding} if coding else {}
        )
        points += [{"method": method, "checkpoint": name, **values} for method, values in res.results.items()]
        realism_points += [{"checkpoint": name, "beta": b, **res.results[realism_method(b)]} for b in betas or []]
        viewers[name] = str(res.viewer) if res.viewer else None
    if any(r.ms_ssim is None for r in rows):
        missing["ms_ssim"] = f"some images have a side below {MS_SSIM_MIN_SIDE} px, too small for 5-scale MS-SSIM"
    plots = plot_rd(
        points + published_points(cfg.eval_set.name), out_dir / "plots", title=f"{cfg.eval_set.name}: rate-distortion"
    )
    if realism_points:
        plots += plot_realism(realism_points, out_dir / "plots", title=f"{cfg.eval_set.name}: one bitstream, any β")
    summary = {
        "dataset": {"name": cfg.eval_set.name, "images": len(images)},
        "checkpoints": results,
        "missing": missing,
        "published": PUBLISHED.get(cfg.eval_set.name),
        "outputs": {"per_image_csv": str(csv_path), "per_image_json": str(json_path), "plots": [str(p) for p in plots],
                    "viewers": viewers},
        "command": command_line(),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "versions": environment_versions(),
    }  # fmt: skip
    write_summary(summary, out_dir)
    return summary
