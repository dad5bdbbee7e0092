"""Convolution kernels trained as real-DFT coefficients: tfc's ``RDFTParameterizer``.

tensorflow/compression 1.3's ``SignalConv2D`` trains a kernel ``k`` (kh, kw, in, out) through its coefficients
``c`` in the orthonormal inverse real-DFT basis ``M`` of ``spectral_ops.irdft_matrix((kh, kw))``: the variable
is ``c = Mᵀ k0`` (``layers/parameterizers.py`` ``RDFTParameterizer``, ``rdft_initializer``) and the kernel is
``k = M c`` (``reparam``). The function is a plain convolution's; Adam's per-coordinate steps are taken on ``c``,
so they spread over the kernel's taps as Fourier modes.

Here the trained tensor is the coefficients' change since a stored origin kernel,
``k = k0 + M Δc`` with ``Δc = c - Mᵀ k0`` starting at zero: the gradients, Adam's moments and so every step are
those of ``c`` (no weight decay acts on h_a), while the initial kernel, and a plain kernel loaded from a
checkpoint, is the kernel bit for bit (``M Mᵀ k0`` differs from ``k0`` by float round-off). The state dict holds
both tensors (``weight_origin``, ``weight_rdft``), so saving and loading are exact;
:func:`convert_kernel_state` turns a plain kernel into them (``Δc = 0``, exact) and them into a plain kernel
(the kernel the forward pass computes).
"""

from __future__ import annotations

import functools
import math
from collections.abc import MutableMapping

import torch
from torch import nn

from hific_lit.nn.port_layers import ReflectConv2d

ORIGIN, STEPS, KERNEL = "weight_origin", "weight_rdft", "weight"
"""State-dict names: the origin kernel and the trained coefficient steps (RDFT), the kernel (plain)."""


def irdft_basis(size: int) -> torch.Tensor:
    """(size, size) float64 matrix of tfc's ``irdft_matrix((size,))``: row ``t`` is the tap, column ``j`` the
    coefficient, in the order of ``scipy.fftpack.rfft`` (the constant; the real and imaginary parts,
    ``cos`` and ``-sin``, of frequencies 1 .. (size - 1) / 2; the alternating vector for even sizes), scaled to be
    orthonormal (every column but the constant and the alternating one by ``sqrt(2)``, all by ``1 / sqrt(size)``).
    """
    t = torch.arange(size, dtype=torch.float64)
    columns = [torch.ones(size, dtype=torch.float64)]
    for k in range(1, (size + 1) // 2):
        angle = 2.0 * math.pi * k * t / size
        columns += [angle.cos() * math.sqrt(2.0), -angle.sin() * math.sqrt(2.0)]
    if size % 2 == 0:
        columns.append(torch.cos(math.pi * t))
    return torch.stack(columns, dim=1) / math.sqrt(size)


@functools.lru_cache(maxsize=32)
def irdft_matrix(shape: tuple[int, int], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """tfc's ``irdft_matrix(shape)`` for a 2-D kernel ((kh kw, kh kw), taps row-major): the Kronecker product of
    the two axes' bases, made in float64 and rounded to ``dtype`` once, on ``device``."""
    return torch.kron(irdft_basis(shape[0]), irdft_basis(shape[1])).to(device, dtype)


def rdft_kernel(origin: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """The kernel ``origin + M steps`` (out, in, kh, kw) of an :class:`RDFTConv2d`; ``origin`` itself, bit for bit,
    while ``steps`` is zero."""
    basis = irdft_matrix(tuple(origin.shape[-2:]), steps.device, steps.dtype)
    return origin + (steps.flatten(2) @ basis.T).view_as(origin)


def rdft_coefficients(kernel: torch.Tensor) -> torch.Tensor:
    """The coefficients ``Mᵀ kernel`` of a kernel (out, in, kh, kw) in the basis (same shape)."""
    basis = irdft_matrix(tuple(kernel.shape[-2:]), kernel.device, kernel.dtype)
    return (kernel.flatten(2) @ basis).view_as(kernel)


class RDFTConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose kernel is trained as real-DFT coefficients (module docstring): the parameter
    ``weight_rdft`` holds the coefficient steps, the buffer ``weight_origin`` the kernel they start from (the one
    the convolution was initialised with); :meth:`kernel` is what the convolution applies."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        kernel = self._parameters.pop(KERNEL).detach()
        self.register_buffer(ORIGIN, kernel)
        self.weight_rdft = nn.Parameter(torch.zeros_like(kernel))

    def kernel(self) -> torch.Tensor:
        """The convolution kernel (out, in, kh, kw)."""
        return rdft_kernel(self.weight_origin, self.weight_rdft)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.kernel(), self.bias)


class RDFTReflectConv2d(ReflectConv2d, RDFTConv2d):
    """:class:`~hific_lit.nn.port_layers.ReflectConv2d` (the JT port's h_a padding) with an RDFT kernel."""


RDFT_CLASSES: dict[type[nn.Conv2d], type[RDFTConv2d]] = {nn.Conv2d: RDFTConv2d, ReflectConv2d: RDFTReflectConv2d}
"""The RDFT counterpart of each convolution class that h_a builds."""


def convert_kernel_state(module: nn.Module, state: MutableMapping[str, torch.Tensor], prefix: str = "") -> list[str]:
    """Rewrite ``state`` (a state dict for ``module``, keys under ``prefix``) in place so that each convolution's
    kernel is stored as ``module`` trains it; returns the names of the convolutions converted.

    A plain kernel for an :class:`RDFTConv2d` becomes its origin with zero steps (exact: the same kernel bit for
    bit); an origin and steps for a plain convolution become the kernel the RDFT forward pass computes. Entries
    already in ``module``'s form, and everything else, are left alone.
    """
    converted = []
    for name, conv in module.named_modules(prefix=prefix.rstrip(".")):
        if not isinstance(conv, nn.Conv2d):
            continue
        key = f"{name}." if name else ""
        kernel, origin, steps = key + KERNEL, key + ORIGIN, key + STEPS
        if isinstance(conv, RDFTConv2d) and kernel in state and origin not in state and steps not in state:
            plain = state.pop(kernel)
            state[origin], state[steps] = plain, torch.zeros_like(plain)
        elif not isinstance(conv, RDFTConv2d) and kernel not in state and origin in state and steps in state:
            state[kernel] = rdft_kernel(state.pop(origin), state.pop(steps))
        else:
            continue
        converted.append(name)
    return converted
