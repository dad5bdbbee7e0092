"""Weight initialisation as in the authors' training code (tensorflow/compression ``models/hific``).

Each network keeps the default initialiser of the TensorFlow layer it was built from:

* g_a and g_s are ``tf.keras.layers.Conv2D`` / ``Conv2DTranspose``: Glorot-uniform kernels
  (Glorot & Bengio 2010), zero biases;
* h_a and h_s are ``tfc.SignalConv2D``: ``variance_scaling()`` kernels, i.e. a normal of standard
  deviation ``sqrt(1 / fan_in)`` truncated at two standard deviations, zero biases;
* the discriminator is ``compare_gan``'s ``arch_ops.conv2d``: normal kernels of standard deviation
  0.02, zero biases.

PyTorch's own defaults (Kaiming-uniform with a = sqrt(5), uniform biases) differ from all three.
"""

from __future__ import annotations

import math

import torch
from torch import nn

CONVS = (nn.Conv2d, nn.ConvTranspose2d)
TRUNCATED_NORMAL_STD = 0.87962566103423978
"""Standard deviation of a unit normal truncated to [-2, 2]; variance scaling divides by it."""


def _convs(module: nn.Module) -> list[nn.Conv2d | nn.ConvTranspose2d]:
    return [m for m in module.modules() if isinstance(m, CONVS)]


def _fan_in(conv: nn.Conv2d | nn.ConvTranspose2d) -> int:
    """Inputs that feed one output of ``conv``: ``kernel area x input channels`` (TF's kernel-shape convention)."""
    return conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]


@torch.no_grad()
def glorot_uniform_(module: nn.Module) -> nn.Module:
    """Keras' default: kernels uniform in ``±sqrt(6 / (fan_in + fan_out))``, zero biases."""
    for conv in _convs(module):
        area = conv.kernel_size[0] * conv.kernel_size[1]
        limit = math.sqrt(6.0 / (area * (conv.in_channels + conv.out_channels)))
        conv.weight.uniform_(-limit, limit)
        if conv.bias is not None:
            conv.bias.zero_()
    return module


@torch.no_grad()
def variance_scaling_(module: nn.Module) -> nn.Module:
    """TF 1's ``variance_scaling()``: truncated normal, standard deviation ``sqrt(1 / fan_in)``, zero biases."""
    for conv in _convs(module):
        std = math.sqrt(1.0 / _fan_in(conv)) / TRUNCATED_NORMAL_STD
        nn.init.trunc_normal_(conv.weight, std=std, a=-2.0 * std, b=2.0 * std)
        if conv.bias is not None:
            conv.bias.zero_()
    return module


@torch.no_grad()
def normal_(module: nn.Module, std: float = 0.02) -> nn.Module:
    """compare_gan's default: normal kernels of standard deviation ``std``, zero biases."""
    for conv in _convs(module):
        conv.weight.normal_(0.0, std)
        if conv.bias is not None:
            conv.bias.zero_()
    return module
