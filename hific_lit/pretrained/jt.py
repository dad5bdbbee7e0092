"""Import a model of the JT port (HIFIC-low/med/high) as an ordinary hific-lit inference checkpoint.

The port (github.com/Justin-Tan/high-fidelity-generative-compression) differs from this package's
defaults in ways that change what the networks compute; :func:`port_arch` switches on the
``ArchConfig`` options that reproduce each of them (docs/pretrained-jt.md lists them all):

- reflection padding in g_a and g_s, and g_a's stride-2 convolutions padded
  (left 0, right 1, top 1, bottom 0) rather than 1 on every side;
- reflection padding in h_a's two 5x5 stride-2 convolutions;
- ``--normalize_input_image``: g_a sees ``2x - 1`` and the image is ``(tanh(g_s) + 1) / 2``;
- ``--likelihood_type logistic``: a logistic rather than a Gaussian conditional for y;
- its factorized density gates the last layer too (``x + tanh(a) tanh(x)``);
- z is rounded to integers with no offset: the median slot of the quantiles is set to 0;
- the image is padded to a multiple of 16 and then y to a multiple of 4, not the image to 64.

The discriminator, when the checkpoint has one, is kept beside the codec for fine-tuning.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import torch
from torch import nn

from hific_lit.entropy import FactorizedPrior
from hific_lit.errors import CheckpointError
from hific_lit.io.checkpoint import save_inference_checkpoint
from hific_lit.models.hific.arch import ArchConfig, arch_preset
from hific_lit.models.hific.model import HiFiC
from hific_lit.nn import Discriminator
from hific_lit.pretrained.jt_checkpoint import PortCheckpoint, PortModel, read_port_checkpoint
from hific_lit.pretrained.jt_weights import (
    HYPER_ANALYSIS,
    HYPER_SYNTHESIS,
    density_tensors,
    encoder_layers,
    generator_layers,
    map_discriminator,
    map_network,
)

SOURCE = "jt-port"


def port_arch(port: PortModel) -> ArchConfig:
    """The architecture that computes what the port's model computes: the ``jt`` preset (``arch=jt``, the
    port's padding, density and D) with the model's own sizes, norm, image range and likelihood."""
    return dataclasses.replace(
        arch_preset("jt"),
        latent_channels=port.latent_channels,
        residual_blocks=port.residual_blocks,
        norm="channel" if port.channel_norm else "instance",
        image_range="tanh" if port.normalize_input else "unit",
        latent_likelihood=port.likelihood,
    )


def _density_state(port: PortCheckpoint, prior: FactorizedPrior) -> dict[str, torch.Tensor]:
    tensors = density_tensors(port.state)
    if len(tensors["H"]) != len(prior.matrices) or len(tensors["a"]) != len(prior.factors):
        raise CheckpointError(
            f"the JT port's hyperlatent density has {len(tensors['H'])} layers with {len(tensors['a'])} gates; "
            f"this model's has {len(prior.matrices)} with {len(prior.factors)}"
        )
    state = {}
    for k, (h, a, b) in enumerate(zip(tensors["H"], tensors["a"], tensors["b"], strict=True)):
        state |= {f"matrices.{k}": h, f"factors.{k}": a, f"biases.{k}": b}
    return state


@torch.no_grad()
def solve_logits(prior: FactorizedPrior, target: float, iterations: int = 64) -> torch.Tensor:
    """Per channel, the x where the density's cumulative logit equals ``target`` (bisection; it is increasing).

    Ballé et al. 2018 (App. 6.1): softplus weights and gates ``x + tanh(a) tanh(x)`` with
    ``|tanh(a)| < 1`` keep every layer monotone, so the bracket found by doubling is unique.
    """
    channels = prior.matrices[0].shape[0]
    lo = torch.full((channels, 1, 1), -1.0)
    hi = torch.full((channels, 1, 1), 1.0)

    def f(x: torch.Tensor) -> torch.Tensor:
        return prior.logits_cumulative(x, stop_gradient=True)

    for _ in range(40):
        below, above = f(lo) > target, f(hi) < target
        if not (below.any() or above.any()):
            break
        lo = torch.where(below, lo * 2, lo)
        hi = torch.where(above, hi * 2, hi)
    for _ in range(iterations):
        mid = (lo + hi) / 2
        up = f(mid) < target
        lo, hi = torch.where(up, mid, lo), torch.where(up, hi, mid)
    return ((lo + hi) / 2).reshape(channels)


PORT_TAIL_MASS = 2.0**-8
"""The port's ``TAIL_MASS`` (``src/compression/entropy_models.py``): its z tables end where this mass is left."""


def port_quantiles(prior: FactorizedPrior, tail_mass: float = PORT_TAIL_MASS) -> torch.Tensor:
    """Quantiles (C, 1, 3) for an imported density: its tails at ``tail_mass``, and 0 in the median slot.

    The port codes ``floor(z + 0.5)`` (``HyperpriorEntropyModel.compress``, quantization offset 0),
    so rounding must be centred on 0. The tails bound the z coding tables (values beyond are
    escape-coded) and the range the integer h_s is sized for; the port's own tail mass keeps both
    as tight as the port's tables.
    """
    target = math.log(2.0 / tail_mass - 1.0)
    lower, upper = solve_logits(prior, -target), solve_logits(prior, target)
    return torch.stack([torch.minimum(lower, torch.zeros(())), torch.zeros_like(lower), upper.clamp_min(0.0)], -1)[
        :, None, :
    ]


def build_model(port: PortCheckpoint) -> HiFiC:
    """A :class:`HiFiC` holding the port's codec weights (eval mode, coding tables built)."""
    model = HiFiC(port_arch(port.model))
    state = model.state_dict()
    blocks = port.model.residual_blocks
    mapped = map_network(port.state, "Encoder.", encoder_layers(), model.g_a, "g_a.")
    mapped |= map_network(port.state, "Generator.", generator_layers(blocks), model.g_s, "g_s.")
    mapped |= map_network(port.state, "Hyperprior.analysis_net.", HYPER_ANALYSIS, model.h_a, "h_a.")
    mapped |= map_network(port.state, "Hyperprior.synthesis_mu.", HYPER_SYNTHESIS, model.h_s_mu, "h_s_mu.")
    mapped |= map_network(port.state, "Hyperprior.synthesis_std.", HYPER_SYNTHESIS, model.h_s_sigma, "h_s_sigma.")
    prior = model.entropy_bottleneck
    mapped |= {f"entropy_bottleneck.{k}": v for k, v in _density_state(port, prior).items()}
    for key, value in mapped.items():
        if key not in state or state[key].shape != value.shape:
            raise CheckpointError(f"internal mapping error: {key} {tuple(value.shape)} does not fit this model")
    model.load_state_dict(mapped, strict=False)
    with torch.no_grad():
        prior.quantiles.copy_(port_quantiles(prior))
    model.eval()
    model.update(force=True)
    return model


def build_discriminator(port: PortCheckpoint, arch: ArchConfig) -> nn.Module | None:
    """The port's discriminator in this package's :class:`Discriminator` (``discriminator_style="jt"``), or None."""
    if not port.discriminator:
        return None
    disc = Discriminator.from_arch(arch)
    mapped = map_discriminator(port.discriminator, disc)
    own = disc.state_dict()
    bad = sorted(k for k in own if k not in mapped or mapped[k].shape != own[k].shape)
    if bad:
        raise CheckpointError(f"the JT port's discriminator does not fit {len(bad)} tensors of ours, e.g. {bad[:3]}")
    disc.load_state_dict(mapped)
    return disc.eval()


def import_jt(path: str | os.PathLike, out: str | os.PathLike, keep_discriminator: bool = True) -> PortModel:
    """Read the port's checkpoint ``path`` and write an inference checkpoint to ``out``; return what was found."""
    port = read_port_checkpoint(path)
    model = build_model(port)
    disc = build_discriminator(port, model.arch) if keep_discriminator else None
    info = port.model
    config = {
        "imported": {
            "from": SOURCE,
            "file": Path(path).name,
            "regime": info.regime,
            "model_type": info.model_type,
            "likelihood": info.likelihood,
            "normalize_input_image": info.normalize_input,
            "steps": info.steps,
            "epoch": info.epoch,
        }
    }
    save_inference_checkpoint(model, out, config=config, discriminator=disc)
    return info
