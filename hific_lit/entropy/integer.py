"""h_s in fixed point, computed exactly: the same table indexes and means on any CPU or GPU.

A float network ``x -> conv -> ReLU -> ... -> conv`` (Conv2d / ConvTranspose2d, groups 1) is frozen
into integers, after Ballé, Johnston & Minnen, "Integer Networks for Data Compression with
Latent-Variable Models" (ICLR 2019): integer weights, integer biases, and integer activations with
a fixed binary point per layer, rescaled between layers by rounding integer division. Unlike that
paper the network is not retrained: the integers are wide (15-bit weights, activations up to about
2**34), so the frozen network computes what the float one does to ~1e-4, while every product and
every partial sum is an exact integer. Summation order then cannot matter, so threads, memory
layout, convolution algorithm and device cannot change a result. docs/hfc-format.md specifies the
arithmetic; in short, for layer l with input ``q`` (F_l fractional bits)::

    W_int[o] = round(W[o] * 2**k_o)              k_o: largest with max|W_int[o]| <= 2**15 - 1
    b_int[o] = round(b[o] * 2**(F_l + k_o))
    acc[o]   = b_int[o] + sum over taps t, inputs i of W_int[o, i, t] * q[i, t]     (exact, int64)
    q'[o]    = clamp(floor((acc[o] + 2**(s_o - 1)) / 2**s_o), lo, hi)    s_o = F_l + k_o - F_l+1 >= 0

(``acc`` itself when ``s_o = 0``), with ``lo = 0`` after a ReLU. Inputs of a layer are bounded
by ``2**A - 1`` with ``A = 61 - 15 - ceil(log2(kh kw C_in))``, so ``|acc| < 2**62``. The products
are evaluated as float64 matrix products per kernel tap, the activations split into 16-bit halves
where they are wider than a tap can sum exactly: each partial sum is then an integer below 2**53,
exact in float64 whatever the order; halves and taps are combined in int64. The input is
``q_0 = clamp(round_half_even(z_hat * 2**F_0), -(2**A - 1), 2**A - 1)`` and the output has
``OUTPUT_FRACTION_BITS`` fractional bits. Each layer's binary point is chosen once, at
:meth:`IntegerConvNet.update`, from a bound of its outputs over the inputs the hyperlatent tables
cover, so that no activation saturates there, and (:data:`HEADROOM_BITS`) so that in practice no
activation needs the split: HiFiC's h_s pair then costs 0.33 s of CPU at 768x512 instead of 0.56 s.
The binary points travel with the network; decoding follows them whatever rule chose them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from hific_lit.entropy.tables import CodingBuffers

WEIGHT_BITS = 15
"""|W_int| <= 2**15 - 1."""
MANTISSA_BITS = 52
ACCUMULATOR_BITS = 61
"""Sums of products stay below 2**61 in magnitude; with the bias (< 2**60) and the rounding term, int64 holds them."""
SPLIT_BITS = 16
"""Activations wider than a tap's exact float64 sum allows are multiplied as two halves: q = hi * 2**16 + lo."""
BLOCK_BYTES = 16 << 20
"""Rows are convolved in blocks of about 16 MiB of float64 temporaries."""
OUTPUT_FRACTION_BITS = 16
"""The outputs (means and scales) are multiples of 2**-16; the scale thresholds are too."""
MAX_FRACTION_BITS = 40
HEADROOM_BITS = 6
"""Binary points put the bound of a hidden layer's inputs at 2**(exact_bits + 6), that of the first layer's
(z_hat, which fills the table range) at 2**exact_bits: the bounds from sums of |W| are loose (6.3 to 12 bits
above the activations measured in a random HiFiC h_s, the JT fixtures' and the demo model's), so the
activations stay below 2**exact_bits and each layer takes one float64 product per tap. Fewer bits of
headroom cost accuracy: at 4, the JT fixture's means were 4e-4 off the float network's (1.6e-4 at 6)."""
OUTPUT_LIMIT = (1 << MANTISSA_BITS) - 1
"""Outputs are clamped to +-(2**52 - 1) units, so that they convert to float64 exactly."""


@dataclass(frozen=True)
class _Layer:
    """The shape of one convolution of the network (the numbers come from the float module)."""

    transposed: bool
    in_channels: int
    out_channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    output_padding: tuple[int, int]
    relu: bool

    @property
    def activation_bits(self) -> int:
        """A: inputs of this layer are at most 2**A - 1 in magnitude, so that |acc| < 2**61."""
        terms = self.kernel[0] * self.kernel[1] * self.in_channels
        return ACCUMULATOR_BITS - WEIGHT_BITS - max(1, math.ceil(math.log2(terms)))

    @property
    def exact_bits(self) -> int:
        """Inputs below 2**this convolve exactly in float64, whole kernel at once: kh kw C_in 2**15 2**bits <= 2**53."""
        terms = self.kernel[0] * self.kernel[1] * self.in_channels
        return MANTISSA_BITS + 1 - WEIGHT_BITS - max(1, math.ceil(math.log2(terms)))


def _layers(net: nn.Sequential) -> list[_Layer]:
    layers: list[_Layer] = []
    for module in net:
        if isinstance(module, nn.ReLU) and layers and not layers[-1].relu:
            layers[-1] = replace(layers[-1], relu=True)
            continue
        if not isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            raise ValueError(f"an integer network takes Conv2d, ConvTranspose2d and ReLU layers, not {module}")
        if module.groups != 1 or module.dilation != (1, 1) or module.padding_mode != "zeros":
            raise ValueError(f"an integer network needs groups 1, dilation 1 and zero padding: {module}")
        transposed = isinstance(module, nn.ConvTranspose2d)
        layers.append(
            _Layer(
                transposed,
                module.in_channels,
                module.out_channels,
                tuple(module.kernel_size),
                tuple(module.stride),
                tuple(module.padding),
                tuple(module.output_padding) if transposed else (0, 0),
                False,
            )
        )
    if not layers or layers[-1].relu:
        raise ValueError("an integer network needs at least one convolution and must end with one")
    return layers


def _weight_exponents(weight: torch.Tensor, bias: torch.Tensor, fraction: int) -> torch.Tensor:
    """k_o per output channel: the largest integer with max|W[o]| * 2**k_o <= 2**15 - 1.

    Capped so that the integer bias ``b[o] * 2**(F + k_o)`` stays below 2**60 and the shift
    ``F + k_o - F'`` at 60 at most (and at ``WEIGHT_BITS`` for an all-zero row, whose exponent does
    not matter).
    """
    peak = weight.abs().amax(dim=1)
    limit = float((1 << WEIGHT_BITS) - 1)
    exponents = torch.floor(torch.log2(limit / peak.clamp_min(1e-300)))
    exponents = torch.where(peak > 0, exponents, torch.full_like(exponents, WEIGHT_BITS))
    exponents -= (torch.round(peak * torch.exp2(exponents)) > limit).double()
    bias_room = 60 - fraction - torch.ceil(torch.log2(bias.abs() + 1.0))
    return torch.minimum(torch.minimum(exponents, bias_room), torch.full_like(exponents, 60 - fraction)).long()


class IntegerConvNet(CodingBuffers):
    """A frozen fixed-point copy of a float ``nn.Sequential`` of convolutions and ReLUs.

    Built by :meth:`update` from the float network (and the range of its inputs); its integers
    are buffers that travel in checkpoints. ``forward(z_hat)`` returns float64 tensors whose
    values are exact multiples of ``2**-OUTPUT_FRACTION_BITS``, identical on every device.
    """

    def __init__(self, net: nn.Sequential) -> None:
        super().__init__()
        self.layers = _layers(net)
        for i in range(len(self.layers)):
            self.register_buffer(f"weight{i}", torch.zeros(0, dtype=torch.int32))
            self.register_buffer(f"bias{i}", torch.zeros(0, dtype=torch.int64))
            self.register_buffer(f"shift{i}", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("fraction_bits", torch.zeros(0, dtype=torch.int64))

    @property
    def built(self) -> bool:
        """Whether :meth:`update` has frozen a network into the buffers."""
        return self.fraction_bits.numel() == len(self.layers) + 1

    @torch.no_grad()
    def update(self, net: nn.Sequential, input_bound: float) -> None:
        """Freeze ``net`` (same layout as at construction), for inputs ``|z_hat| <= input_bound``."""
        if _layers(net) != self.layers:
            raise ValueError("the network's layout differs from the one this integer network was made for")
        convs = [m for m in net if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        device = self.fraction_bits.device
        first = self.layers[0].exact_bits
        fraction = [min(MAX_FRACTION_BITS, first - math.ceil(math.log2(input_bound + 1.0)))]
        bound = torch.full((self.layers[0].in_channels,), float(input_bound), dtype=torch.float64)
        for i, (layer, conv) in enumerate(zip(self.layers, convs, strict=True)):
            weight = conv.weight.detach().double().cpu()
            if layer.transposed:
                weight = weight.transpose(0, 1)
            weight = weight.reshape(layer.out_channels, -1)
            bias = conv.bias.detach().double().cpu() if conv.bias is not None else torch.zeros(layer.out_channels)
            bias = bias.double()
            exponents = _weight_exponents(weight, bias, fraction[i])
            w_int = torch.round(weight * torch.exp2(exponents.double())[:, None])
            b_int = torch.round(bias * torch.exp2((exponents + fraction[i]).double()))
            out_bound = _output_bound(conv, bound) + bias.abs()
            if i + 1 < len(self.layers):
                bits = min(self.layers[i + 1].activation_bits, self.layers[i + 1].exact_bits + HEADROOM_BITS)
                out_fraction = bits - math.ceil(math.log2(float(out_bound.max()) + 1.0))
                out_fraction = max(0, min(MAX_FRACTION_BITS, out_fraction))
            else:
                out_fraction = OUTPUT_FRACTION_BITS
            out_fraction = min(out_fraction, fraction[i] + int(exponents.min()))
            fraction.append(out_fraction)
            bound = out_bound
            kernel_layout = w_int.view(layer.out_channels, layer.in_channels, *layer.kernel)
            setattr(self, f"weight{i}", kernel_layout.to(device, torch.int32))
            setattr(self, f"bias{i}", b_int.to(device, torch.int64))
            setattr(self, f"shift{i}", (exponents + fraction[i] - out_fraction).to(device, torch.int64))
        self.fraction_bits = torch.tensor(fraction, dtype=torch.int64, device=device)

    def forward(self, z_hat: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) float -> the network's output as float64 multiples of 2**-16 (on CPU for non-CUDA devices)."""
        if not self.built:
            raise RuntimeError("the integer network was not built; call update() first")
        device = z_hat.device if z_hat.device.type in ("cpu", "cuda") else torch.device("cpu")
        fraction = self.fraction_bits.tolist()
        limit = float((1 << self.layers[0].activation_bits) - 1)
        x = torch.round(z_hat.to(device, torch.float64) * 2.0 ** fraction[0]).clamp_(-limit, limit).long()
        x = x.permute(0, 2, 3, 1)
        for i, layer in enumerate(self.layers):
            weight = getattr(self, f"weight{i}").to(device)
            acc = _integer_conv(x, weight, layer)
            acc += getattr(self, f"bias{i}").to(device)
            x = _requantize(acc, getattr(self, f"shift{i}").to(device))
            if i + 1 < len(self.layers):
                x = x.clamp_(0 if layer.relu else -_limit(self.layers[i + 1]), _limit(self.layers[i + 1]))
            else:
                x = x.clamp_(-OUTPUT_LIMIT, OUTPUT_LIMIT)
        return (x.double() * 2.0 ** -fraction[-1]).permute(0, 3, 1, 2).contiguous()


def _output_bound(conv: nn.Conv2d | nn.ConvTranspose2d, bound: torch.Tensor) -> torch.Tensor:
    """max over positions of sum |W| * bound_in per output channel: the largest |conv(x) - bias| for |x_c| <= bound_c.

    Evaluated by the convolution of |W| itself on a constant map, so that a transposed convolution's
    outputs count only the taps that reach them (9 of 25 for 5x5 stride 2), and borders fewer.
    """
    weight = conv.weight.detach().double().abs().cpu()
    side = 2 * max(conv.kernel_size) + 1
    x = bound.view(1, -1, 1, 1).expand(1, -1, side, side)
    if isinstance(conv, nn.ConvTranspose2d):
        y = nn.functional.conv_transpose2d(x, weight, None, conv.stride, conv.padding, conv.output_padding)
    else:
        y = nn.functional.conv2d(x, weight, None, conv.stride, conv.padding)
    return y.amax(dim=(0, 2, 3))


def _limit(layer: _Layer) -> int:
    """The largest input magnitude of ``layer``: 2**A - 1."""
    return (1 << layer.activation_bits) - 1


def _requantize(acc: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """floor((acc + 2**(s - 1)) / 2**s) per channel (last dimension), in int64, in place; ``acc`` itself where s = 0."""
    divisor = torch.ones_like(shift) << shift
    return acc.add_(divisor >> 1).div_(divisor, rounding_mode="floor")


def _exact_parts(x: torch.Tensor, layer: _Layer) -> list[tuple[torch.Tensor, int]]:
    """int64 ``x`` as float64 parts ``(part, shift)`` with ``x = sum(part << shift)``, each narrow enough
    that its convolution by ``layer`` sums exactly in float64 (see :attr:`_Layer.exact_bits`): ``x`` itself,
    or ``hi = x >> 16`` and ``lo = x & (2**16 - 1)`` (both below 2**exact_bits, since inputs stay below
    2**activation_bits and 16 <= exact_bits for any kernel of up to 2**22 terms)."""
    if not x.numel() or int(x.abs().max()) < 1 << layer.exact_bits:
        return [(x.double(), 0)]
    if layer.exact_bits < SPLIT_BITS:
        raise ValueError(f"a layer with {layer.in_channels} x {layer.kernel} inputs per output cannot be made exact")
    return [((x >> SPLIT_BITS).double(), SPLIT_BITS), ((x & ((1 << SPLIT_BITS) - 1)).double(), 0)]


def _row_blocks(rows: int, row_elements: int) -> list[tuple[int, int]]:
    """Blocks of rows whose float64 temporaries stay within ``BLOCK_BYTES`` (results do not depend on them)."""
    step = max(1, BLOCK_BYTES // max(1, 8 * row_elements))
    return [(start, min(rows, start + step)) for start in range(0, rows, step)]


def _integer_conv(x: torch.Tensor, weight: torch.Tensor, layer: _Layer) -> torch.Tensor:
    """Convolve int64 ``x`` (B, H, W, C_in) with integer ``weight`` exactly: int64 (B, H', W', C_out).

    Each part of :func:`_exact_parts` is convolved in float64, tap by tap as matrix products summed
    into a float64 accumulator: every partial sum is an integer below 2**53, so no order of
    summation, blocking or FMA can change it. The parts are combined in int64. Rows go in blocks
    so that the temporaries stay small at any image size. ``weight`` is (C_out, C_in, kh, kw) for
    both kinds (a transposed convolution's weight is stored with its in/out axes swapped).
    """
    b, h, w, c = x.shape
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel, layer.stride, layer.padding
    taps = [[weight[:, :, i, j].T.double().contiguous() for j in range(kw)] for i in range(kh)]
    if not layer.transposed:
        out_h, out_w = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        acc = torch.zeros(b, out_h, out_w, layer.out_channels, dtype=torch.int64, device=x.device)
        for part, shift in _exact_parts(x, layer):
            padded = torch.zeros(b, h + 2 * ph, w + 2 * pw, c, dtype=torch.float64, device=x.device)
            padded[:, ph : ph + h, pw : pw + w] = part
            del part
            for r0, r1 in _row_blocks(out_h, b * out_w * max(c, layer.out_channels)):
                block = torch.zeros(b, r1 - r0, out_w, layer.out_channels, dtype=torch.float64, device=x.device)
                for i in range(kh):
                    rows = padded[:, r0 * sh + i : (r1 - 1) * sh + i + 1 : sh]
                    for j in range(kw):
                        block += rows[:, :, j : j + sw * (out_w - 1) + 1 : sw] @ taps[i][j]
                acc[:, r0:r1] += block.long() << shift
        return acc
    (oh, ow) = layer.output_padding
    out_h, out_w = (h - 1) * sh - 2 * ph + kh + oh, (w - 1) * sw - 2 * pw + kw + ow
    canvas_h, canvas_w = max((h - 1) * sh + kh, ph + out_h), max((w - 1) * sw + kw, pw + out_w)
    acc = torch.zeros(b, out_h, out_w, layer.out_channels, dtype=torch.int64, device=x.device)
    for part, shift in _exact_parts(x, layer):
        canvas = torch.zeros(b, canvas_h, canvas_w, layer.out_channels, dtype=torch.float64, device=x.device)
        for r0, r1 in _row_blocks(h, b * w * max(c, layer.out_channels)):
            block = part[:, r0:r1]
            for i in range(kh):
                for j in range(kw):
                    target = canvas[:, r0 * sh + i : (r1 - 1) * sh + i + 1 : sh, j : j + sw * (w - 1) + 1 : sw]
                    target += block @ taps[i][j]
        acc += canvas[:, ph : ph + out_h, pw : pw + out_w].long() << shift
    return acc
