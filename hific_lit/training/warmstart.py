"""Warm start: initialise a stage from a checkpoint (Mentzer et al. 2020, Sec. 4.2: stage 2 starts from stage 1).

The source is a Lightning checkpoint of a hific-lit run (``last.ckpt``, ``best.ckpt``) or an
inference checkpoint (``hific`` exports and imported pretrained models). The codec (g_a, g_s, h_a,
h_s, entropy models) is always copied; the coding tables are not (they are rebuilt from the
trained densities at export). A discriminator is copied when the source holds one and the stage
has one (fine-tuning a GAN-stage model); otherwise D starts fresh, as in the paper.

A realism-conditioned model (MRIC, ``arch.realism_conditioning``) may start from a plain HiFiC
checkpoint: its β-embedding and FiLM maps, which the source lacks, keep their initialisation (FiLM
zero: the model computes the plain one at every β). Likewise a rate-conditioned model (``arch.rate_conditioning``)
may start from a fixed-rate checkpoint, an imported JT model included: its gains start at 1 (the source model at
every rate) and training spreads the anchors. The reverse of either, which would drop a trained conditioning, is
refused.

h_a's kernels may be stored plain or as RDFT coefficients (``arch.hyper_analysis_kernel``); a warm start
converts them to the stage's form (:func:`~hific_lit.nn.rdft.convert_kernel_state`): plain into RDFT exactly
(the same kernels, zero coefficient steps), RDFT into plain as the kernels the source computes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from torch import nn

from hific_lit.entropy.tables import CodingBuffers
from hific_lit.errors import CheckpointError
from hific_lit.io.checkpoint import DISCRIMINATOR_KEY, check_inference_payload, is_inference_payload
from hific_lit.io.torch_load import guarded_load
from hific_lit.models.base import Codec
from hific_lit.nn.rdft import convert_kernel_state
from hific_lit.nn.realism import FiLMChannelNorm2d
from hific_lit.training.base import ARCH_KEY

log = logging.getLogger(__name__)

MODEL_PREFIX = "model."
DISCRIMINATOR_PREFIX = "discriminator."
REALISM_FIELDS = ("realism_conditioning", "beta_max", "realism_width")
"""The architecture fields of the realism conditioning (MRIC), which a plain HiFiC source does not constrain."""
REALISM_PREFIX = "g_s.realism."
RATE_FIELDS = ("rate_conditioning", "rate_anchors")
"""The architecture fields of the rate conditioning, which a fixed-rate source does not constrain."""
RATE_PREFIX = "rate_gains."
TRAINING_FIELDS = ("train_beta_max", "hyper_analysis_kernel", "rate_gain_spread")
"""Architecture fields that change how a model trains, not the function it computes: a warm start may change them
(h_a's kernels are converted between plain and RDFT form; a source with gains replaces their starting spread)."""


class CheckpointWeights(NamedTuple):
    """What a warm start takes from a checkpoint of either kind."""

    codec: dict
    discriminator: dict | None
    arch: dict | None


def is_inference_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a hific-lit inference checkpoint (else a training one); :class:`CheckpointError` if neither
    can be read."""
    return is_inference_payload(guarded_load(path))


def _require_lightning(loaded: object, path: Path) -> dict:
    if is_inference_payload(loaded):
        raise CheckpointError(
            f"{path} is a hific-lit inference checkpoint, not a Lightning training checkpoint "
            "(it is already what `hific compress` loads; `hific export --precision bf16` converts it)"
        )
    if not isinstance(loaded, dict) or not isinstance(loaded.get("state_dict"), dict):
        raise CheckpointError(
            f"{path} is neither a Lightning training checkpoint (no 'state_dict') nor a hific-lit inference "
            "checkpoint; pass last.ckpt or best.ckpt of a run, or an exported / imported model"
        )
    return loaded


def read_lightning_checkpoint(path: str | Path) -> dict:
    """A Lightning training checkpoint of a hific-lit run (weights only, memory-mapped), nothing else.

    The reader of inference checkpoints is :func:`hific_lit.io.checkpoint.read_inference_checkpoint`;
    handed one, this raises :class:`CheckpointError` saying so.
    """
    path = Path(path)
    return _require_lightning(guarded_load(path), path)


def lightning_weights(checkpoint: dict) -> CheckpointWeights:
    """The codec's and the discriminator's tensors of a Lightning checkpoint (their module prefixes removed)."""
    state = checkpoint["state_dict"]
    codec = {k[len(MODEL_PREFIX) :]: v for k, v in state.items() if k.startswith(MODEL_PREFIX)}
    disc = {k[len(DISCRIMINATOR_PREFIX) :]: v for k, v in state.items() if k.startswith(DISCRIMINATOR_PREFIX)}
    return CheckpointWeights(codec, disc or None, checkpoint.get(ARCH_KEY))


def read_checkpoint_weights(path: str | Path) -> CheckpointWeights:
    """The weights of either checkpoint kind, read once (an inference checkpoint's version is checked)."""
    path = Path(path)
    loaded = guarded_load(path)
    if is_inference_payload(loaded):
        payload = check_inference_payload(loaded, path)
        return CheckpointWeights(payload["state_dict"], payload.get(DISCRIMINATOR_KEY), payload.get("arch"))
    return lightning_weights(_require_lightning(loaded, path))


def _require_same_arch(model: Codec, stored: dict | None, path: str | Path, ignored: tuple[str, ...] = ()) -> None:
    """Refuse a checkpoint whose stored architecture differs (outside ``ignored``), naming the overrides to match it."""
    if stored is None:
        return
    own = model.arch.to_dict()
    differing = {k: v for k, v in stored.items() if own.get(k) != v and k not in ignored + TRAINING_FIELDS}
    if differing:
        overrides = " ".join(f"arch.{k}={json.dumps(v, separators=(',', ':'))}" for k, v in sorted(differing.items()))
        raise CheckpointError(f"{path} was trained with another architecture; to start from it, add: {overrides}")


def _source_conditioned(weights: CheckpointWeights) -> bool:
    """Whether the checkpoint holds a realism-conditioned g_s (by its tensors, or by its stored architecture)."""
    stored = weights.arch or {}
    return bool(stored.get("realism_conditioning")) or any(k.startswith(REALISM_PREFIX) for k in weights.codec)


def _fresh_realism(model: Codec, weights: CheckpointWeights) -> tuple[str, ...]:
    """Prefixes of the tensors that stay as initialised: the β-embedding and every FiLM map of a conditioned
    ``model`` started from a plain HiFiC checkpoint; none otherwise."""
    if model.capabilities.realism is None or _source_conditioned(weights):
        return ()
    films = (f"{name}.film." for name, m in model.named_modules() if isinstance(m, FiLMChannelNorm2d))
    return (REALISM_PREFIX, *films)


def _source_rate_conditioned(weights: CheckpointWeights) -> bool:
    """Whether the checkpoint holds a rate-conditioned model (by its tensors, or by its stored architecture)."""
    stored = weights.arch or {}
    return bool(stored.get("rate_conditioning")) or any(k.startswith(RATE_PREFIX) for k in weights.codec)


def _fresh_rate(model: Codec, weights: CheckpointWeights) -> tuple[str, ...]:
    """The gains of a rate-conditioned ``model`` started from a fixed-rate checkpoint (they stay at 1); none
    otherwise."""
    if model.capabilities.rate is None or _source_rate_conditioned(weights):
        return ()
    return (RATE_PREFIX,)


def _load_matching(module: nn.Module, source: Mapping, path: str | Path, what: str, skipped: tuple = ()) -> None:
    """Load ``source`` into ``module``, requiring every own tensor (except ``skipped``) with the same shape."""
    own = {k: v for k, v in module.state_dict().items() if not k.startswith(skipped)}
    missing = sorted(set(own) - set(source))
    mismatched = sorted(k for k in set(own) & set(source) if own[k].shape != source[k].shape)
    if missing or mismatched:
        raise CheckpointError(
            f"{path} does not hold this architecture's {what}: "
            f"{len(missing)} missing tensors {missing[:3]}, {len(mismatched)} of another shape {mismatched[:3]}; "
            "was it trained with the same arch=?"
        )
    module.load_state_dict({k: source[k] for k in own}, strict=False)


def load_codec_weights(model: Codec, path: str | Path, weights: CheckpointWeights | None = None) -> None:
    """Copy g_a, g_s, h_a, h_s and the entropy models from a checkpoint (either kind) into ``model``.

    ``weights``: the checkpoint's, when already read. The coding tables are left as they are (rebuilt
    from the trained densities at export). Every other tensor must be present with the same shape;
    otherwise :class:`CheckpointError` says which. A realism-conditioned ``model`` takes a plain HiFiC
    checkpoint: the β-embedding and FiLM maps it lacks stay as initialised (the plain model at every β); a
    rate-conditioned one a fixed-rate checkpoint: its gains stay at 1 (the source model at every rate).
    """
    weights = weights or read_checkpoint_weights(path)
    fresh_realism, fresh_rate = _fresh_realism(model, weights), _fresh_rate(model, weights)
    fresh = fresh_realism + fresh_rate
    ignored = (REALISM_FIELDS if fresh_realism else ()) + (RATE_FIELDS if fresh_rate else ())
    _require_same_arch(model, weights.arch, path, ignored)
    if _source_conditioned(weights) and model.capabilities.realism is None:  # no stored arch named it
        raise CheckpointError(
            f"{path} holds a realism-conditioned g_s (MRIC); a plain model would drop its conditioning: "
            "add arch.realism_conditioning=true"
        )
    if _source_rate_conditioned(weights) and model.capabilities.rate is None:
        raise CheckpointError(
            f"{path} holds a rate-conditioned model; a fixed-rate one would drop its gains: "
            "add arch.rate_conditioning=true"
        )
    tables = tuple(f"{name}." for name, m in model.named_modules() if isinstance(m, CodingBuffers))
    codec = dict(weights.codec)
    converted = convert_kernel_state(model, codec)
    _load_matching(model, codec, path, "codec", tables + fresh)
    log.info("warm start: codec weights loaded from %s", path)
    if converted:
        log.info("warm start: kernels of %s converted between plain and RDFT form: %s", path, ", ".join(converted))
    if fresh_realism:
        kept = sum(k.startswith(fresh_realism) for k in model.state_dict())
        log.info(
            "warm start: %s is plain HiFiC; the realism conditioning (%d tensors: g_s.realism.*, *.film.*) starts "
            "fresh, FiLM at zero: the plain model at every beta",
            path,
            kept,
        )
    if fresh_rate:
        log.info("warm start: %s has one rate; the rate gains start at 1: that model at every rate", path)


def warm_start(module: nn.Module, path: str | Path) -> None:
    """Initialise a training stage (``module.model`` and, if it has one, ``module.discriminator``) from ``path``."""
    weights = read_checkpoint_weights(path)
    load_codec_weights(module.model, path, weights)
    discriminator = getattr(module, "discriminator", None)
    if discriminator is None:
        return
    if weights.discriminator is None:
        log.info("warm start: %s holds no discriminator; D starts fresh", path)
        return
    _load_matching(discriminator, weights.discriminator, path, "discriminator")
    log.info("warm start: discriminator loaded from %s", path)
