"""Map the JT port's tensors onto this package's networks, layer by layer in the order they compute.

The port names layers by block (``Encoder.conv_block2.1``, ``Generator.resblock_3.norm1``, ...);
ours are ``nn.Sequential`` stacks. Both run the same convolutions and norms in the same order, so
each network is mapped by walking its convolutions and norms in order and checking kind and
shape at every step: a mismatch is an architecture this package does not represent, and is
reported, never loaded half-way. The port's last hyper-synthesis layer is a stride-1
``ConvTranspose2d(3, padding=1)``, the same map as our ``Conv2d(3, padding=1)`` with the kernel
transposed (in/out channels) and flipped.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.utils import parametrize

from hific_lit.errors import CheckpointError
from hific_lit.nn.layers import ChannelNorm2d

CONV, CONV_T, CONV_T_S1, NORM = "conv", "conv_t", "conv_t_s1", "norm"
"""Layer kinds: convolution, transposed convolution, stride-1 transposed convolution (loads into a
convolution), normalisation."""


def encoder_layers() -> list[tuple[str, str]]:
    """The port's ``Encoder`` (src/network/encoder.py): 7x7 conv, four stride-2 3x3 convs, 3x3 conv out."""
    layers = [("conv_block1.1", CONV), ("conv_block1.2", NORM)]
    for i in range(2, 6):
        layers += [(f"conv_block{i}.1", CONV), (f"conv_block{i}.2", NORM)]
    return [*layers, ("conv_block_out.1", CONV)]


def generator_layers(blocks: int) -> list[tuple[str, str]]:
    """The port's ``Generator`` (src/network/generator.py): norm-conv-norm, residual blocks, 4 upsamplings, 7x7 conv."""
    layers = [("conv_block_init.0", NORM), ("conv_block_init.2", CONV), ("conv_block_init.3", NORM)]
    for m in range(blocks):
        layers += [(f"resblock_{m}.conv1", CONV), (f"resblock_{m}.norm1", NORM)]
        layers += [(f"resblock_{m}.conv2", CONV), (f"resblock_{m}.norm2", NORM)]
    for j in range(1, 5):
        layers += [(f"upconv_block{j}.0", CONV_T), (f"upconv_block{j}.1", NORM)]
    return [*layers, ("conv_block_out.1", CONV)]


HYPER_ANALYSIS = [("conv1", CONV), ("conv2", CONV), ("conv3", CONV)]
"""The port's ``HyperpriorAnalysis`` (src/network/hyper.py)."""
HYPER_SYNTHESIS = [("conv1", CONV_T), ("conv2", CONV_T), ("conv3", CONV_T_S1)]
"""The port's ``HyperpriorSynthesis``: three transposed convolutions, the last of stride 1."""


_LOADS_INTO = {CONV: (CONV,), CONV_T: (CONV_T,), CONV_T_S1: (CONV, CONV_T), NORM: (NORM,)}


def _own_layers(module: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    for name, m in module.named_modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | ChannelNorm2d | nn.InstanceNorm2d):
            yield name, m


def _kind(m: nn.Module) -> str:
    if isinstance(m, nn.ConvTranspose2d):
        return CONV_T
    return CONV if isinstance(m, nn.Conv2d) else NORM


def _port_tensors(state: dict[str, torch.Tensor], name: str, kind: str) -> list[torch.Tensor]:
    if kind == NORM:
        keys = (f"{name}.gamma", f"{name}.beta") if f"{name}.gamma" in state else (f"{name}.weight", f"{name}.bias")
    else:
        keys = (f"{name}.weight", f"{name}.bias")
    missing = [k for k in keys if k not in state]
    if missing:
        raise CheckpointError(f"the JT-port checkpoint lacks {missing[0]}")
    return [state[k] for k in keys]


def _converted(tensors: list[torch.Tensor], port_kind: str, own: nn.Module) -> list[torch.Tensor]:
    weight, bias = tensors
    if port_kind == CONV_T_S1 and isinstance(own, nn.Conv2d):
        weight = weight.transpose(0, 1).flip(-1, -2)
    elif isinstance(own, ChannelNorm2d):
        weight, bias = weight.reshape(1, -1, 1, 1), bias.reshape(1, -1, 1, 1)
    elif isinstance(own, nn.InstanceNorm2d):
        weight, bias = weight.reshape(-1), bias.reshape(-1)
    return [weight, bias]


def map_network(
    state: dict[str, torch.Tensor], port_prefix: str, layers: list[tuple[str, str]], own: nn.Module, own_prefix: str
) -> dict[str, torch.Tensor]:
    """Our state-dict entries (``own_prefix``-qualified) for ``own``, from the port's ``port_prefix`` layers."""
    ours = list(_own_layers(own))
    if len(ours) != len(layers):
        raise CheckpointError(
            f"the JT port's {port_prefix.rstrip('.')} has {len(layers)} convolutions and norms, "
            f"this package's {own_prefix.rstrip('.')} {len(ours)}: not the same architecture"
        )
    mapped: dict[str, torch.Tensor] = {}
    for (port_name, port_kind), (own_name, module) in zip(layers, ours, strict=True):
        if _kind(module) not in _LOADS_INTO[port_kind]:
            raise CheckpointError(
                f"{port_prefix}{port_name} is a {port_kind} layer but {own_prefix}{own_name} is a {_kind(module)}"
            )
        tensors = _converted(_port_tensors(state, port_prefix + port_name, port_kind), port_kind, module)
        params = [p for _, p in module.named_parameters(recurse=False)]
        names = [n for n, _ in module.named_parameters(recurse=False)]
        for param_name, param, value in zip(names, params, tensors, strict=True):
            if param.shape != value.shape:
                raise CheckpointError(
                    f"{port_prefix}{port_name}: shape {tuple(value.shape)} does not fit "
                    f"{own_prefix}{own_name}.{param_name} {tuple(param.shape)}"
                )
            key = f"{own_prefix}{own_name}.{param_name}" if own_name else f"{own_prefix}{param_name}"
            mapped[key] = value.detach().to(torch.float32).contiguous()
    return mapped


def density_tensors(state: dict[str, torch.Tensor], prefix: str = "Hyperprior.hyperlatent_likelihood.") -> dict:
    """The port's factorized density (``HyperpriorDensity``): lists of H_k, a_k and b_k, k = 0, 1, ..."""
    out: dict[str, list[torch.Tensor]] = {"H": [], "a": [], "b": []}
    for name, values in out.items():
        k = 0
        while f"{prefix}{name}_{k}" in state:
            values.append(state[f"{prefix}{name}_{k}"].detach().float())
            k += 1
    if not out["H"] or not (len(out["H"]) == len(out["a"]) == len(out["b"])):
        raise CheckpointError(f"the JT-port checkpoint lacks its hyperlatent density ({prefix}H_k, a_k, b_k)")
    return out


def map_discriminator(state: dict[str, torch.Tensor], disc: nn.Module) -> dict[str, torch.Tensor]:
    """Our D's state dict (``discriminator_style="jt"``) from the port's ``Discriminator`` tensors.

    The port's convs are ``context_conv``, ``conv1`` .. ``convN`` and ``conv_out``; the spectrally
    normalised ones were saved by ``nn.utils.spectral_norm`` (``weight_orig``, ``weight_u``, ``weight_v``),
    ours are ``torch.nn.utils.parametrizations.spectral_norm`` (``original``, ``_u``, ``_v``): the same
    vectors and the same eval-mode weight ``W / (u . W v)``.
    """
    convs = [(name, m) for name, m in disc.named_modules() if isinstance(m, nn.Conv2d)]
    port_names = ["context_conv", *(f"conv{i}" for i in range(1, len(convs) - 1)), "conv_out"]
    mapped: dict[str, torch.Tensor] = {}
    for port_name, (own_name, conv) in zip(port_names, convs, strict=True):
        spectral = f"{port_name}.weight_orig" in state
        if spectral != parametrize.is_parametrized(conv, "weight"):
            raise CheckpointError(
                f"the port's Discriminator.{port_name} {'has' if spectral else 'lacks'} spectral norm, "
                f"this discriminator's {own_name} does not match"
            )
        if spectral:
            sn = f"{own_name}.parametrizations.weight"
            for suffix, own in (("weight_orig", "original"), ("weight_u", "0._u"), ("weight_v", "0._v")):
                mapped[f"{sn}.{own}"] = state[f"{port_name}.{suffix}"]
        elif f"{port_name}.weight" in state:
            mapped[f"{own_name}.weight"] = state[f"{port_name}.weight"]
        if f"{port_name}.bias" in state:
            mapped[f"{own_name}.bias"] = state[f"{port_name}.bias"]
    return {k: v.detach().float().contiguous() for k, v in mapped.items()}
