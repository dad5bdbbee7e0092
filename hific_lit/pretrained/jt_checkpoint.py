"""What a checkpoint of the JT port holds, read from its ``args`` and weights, without running it.

The port (github.com/Justin-Tan/high-fidelity-generative-compression) saves, in
``src/helpers/utils.py::save_model``, a dict with ``model_state_dict`` (keys ``Encoder.*``,
``Generator.*``, ``Hyperprior.*`` and, for GAN models, ``Discriminator.*``), the optimizer states,
``epoch``, ``steps`` and ``args`` (a plain dict of its command-line and default settings).
Its released models (``HIFIC-low/med/high``) are such files.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from hific_lit.errors import CheckpointError
from hific_lit.io.torch_load import guarded_load

LIKELIHOODS = ("gaussian", "logistic")
ALLOWED_GLOBALS: tuple[type, ...] = (argparse.Namespace,)
"""Classes a JT-port checkpoint may name beyond torch's weights-only defaults: its ``args`` may be a
``Namespace``, the plain attribute holder of a training script (a dict of attributes, no code of its own)."""
_MIXTURE_PREFIX = "Hyperprior.synthesis_DLMM_params."


@dataclass(frozen=True)
class PortModel:
    """The settings of a JT-port model that decide what it computes (from its ``args`` and weights)."""

    latent_channels: int
    residual_blocks: int
    likelihood: str
    normalize_input: bool
    channel_norm: bool
    regime: str | None
    model_type: str | None
    steps: int | None
    epoch: int | None
    has_discriminator: bool

    def summary(self) -> str:
        """One line for the command line: regime, likelihood, blocks, steps trained."""
        steps = f"{self.steps:,} steps trained" if self.steps is not None else "steps trained unknown"
        return (
            f"JT-port HiFiC, regime {self.regime or '?'} ({self.model_type or '?'}), {self.likelihood} likelihood, "
            f"{self.residual_blocks} residual blocks, C={self.latent_channels}, "
            f"{'channel' if self.channel_norm else 'instance'} norm, "
            f"inputs in {'[-1, 1] (tanh output)' if self.normalize_input else '[0, 1]'}, {steps}, "
            f"discriminator: {'yes' if self.has_discriminator else 'no'}"
        )


@dataclass(frozen=True)
class PortCheckpoint:
    """A JT-port checkpoint: its settings and the tensors of its codec and discriminator."""

    model: PortModel
    state: dict[str, torch.Tensor]
    discriminator: dict[str, torch.Tensor]


def _args_dict(args: object, path: str | os.PathLike) -> Mapping:
    if isinstance(args, argparse.Namespace):
        return vars(args)
    if isinstance(args, Mapping):
        return args
    raise CheckpointError(f"{path}: not a checkpoint of the JT port ('args' is a {type(args).__name__}, not a dict)")


def _int_or_none(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _refuse(path: str | os.PathLike, what: str) -> CheckpointError:
    return CheckpointError(f"{path}: cannot import this JT-port model: {what}; hific-lit cannot represent it")


def describe(checkpoint: object, path: str | os.PathLike) -> PortCheckpoint:
    """Check that ``checkpoint`` is a JT-port model this package can represent and say what it is.

    Refuses (one :class:`CheckpointError` line each) the latent mixture model (``-LMM``), generator
    noise (``sample_noise``), unknown likelihoods and files that are not the port's.
    """
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("model_state_dict"), Mapping):
        raise CheckpointError(f"{path}: not a checkpoint of the JT port (no 'model_state_dict')")
    if "args" not in checkpoint:
        raise CheckpointError(f"{path}: not a checkpoint of the JT port (no 'args' with its settings)")
    args = _args_dict(checkpoint["args"], path)
    state = {k: v for k, v in checkpoint["model_state_dict"].items() if isinstance(v, torch.Tensor)}
    if state and all(k.startswith("module.") for k in state):  # saved from a DataParallel wrapper
        state = {k.removeprefix("module."): v for k, v in state.items()}
    if not any(k.startswith("Encoder.") for k in state) or not any(k.startswith("Generator.") for k in state):
        raise CheckpointError(f"{path}: not a checkpoint of the JT port (no Encoder.* / Generator.* weights)")
    if args.get("use_latent_mixture_model") or any(k.startswith(_MIXTURE_PREFIX) for k in state):
        raise _refuse(path, "it uses the discretized logistic mixture latent model (-LMM)")
    if args.get("sample_noise"):
        raise _refuse(path, "its generator samples noise (sample_noise=True), so decoding is not deterministic")
    likelihood = str(args.get("likelihood_type", "gaussian"))
    if likelihood not in LIKELIHOODS:
        raise _refuse(path, f"its latent likelihood is {likelihood!r} (known: {', '.join(LIKELIHOODS)})")
    blocks = sum(1 for k in state if k.startswith("Generator.resblock_") and k.endswith(".conv1.weight"))
    latent = state.get("Encoder.conv_block_out.1.weight")
    if latent is None:
        raise CheckpointError(f"{path}: not a checkpoint of the JT port (no Encoder.conv_block_out.1.weight)")
    disc = {k[len("Discriminator.") :]: v for k, v in state.items() if k.startswith("Discriminator.")}
    if not disc and isinstance(checkpoint.get("discriminator_state_dict"), Mapping):
        disc = dict(checkpoint["discriminator_state_dict"])
    model = PortModel(
        latent_channels=int(latent.shape[0]),
        residual_blocks=blocks,
        likelihood=likelihood,
        normalize_input=bool(args.get("normalize_input_image", False)),
        channel_norm="Encoder.conv_block1.2.gamma" in state,
        regime=str(args["regime"]) if "regime" in args else None,
        model_type=str(args["model_type"]) if "model_type" in args else None,
        steps=_int_or_none(checkpoint.get("steps")),
        epoch=_int_or_none(checkpoint.get("epoch")),
        has_discriminator=bool(disc),
    )
    codec = {k: v for k, v in state.items() if k.startswith(("Encoder.", "Generator.", "Hyperprior."))}
    return PortCheckpoint(model, codec, disc)


def read_port_checkpoint(path: str | os.PathLike) -> PortCheckpoint:
    """Load (weights only, nothing executed) and describe a JT-port checkpoint."""
    return describe(guarded_load(path, "JT-port checkpoint", allowed_globals=ALLOWED_GLOBALS), path)
