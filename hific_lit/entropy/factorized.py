"""Fully factorized density for the hyperlatent z (Ballé et al. 2018, App. 6.1)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hific_lit.entropy.coder import decode_stream, encode_stream
from hific_lit.entropy.ops import add_uniform_noise, check_codable, lower_bound, quantize_around
from hific_lit.entropy.tables import CodingTables, factorized_rows


class FactorizedPrior(nn.Module):
    """A learned, per-channel, non-parametric density for z, convolved with U(-1/2, 1/2).

    The cumulative is ``c(x) = sigmoid(f_K(...f_1(x)))`` with
    ``f_k(x) = g_k(softplus(H_k) x + b_k)`` and ``g_k(x) = x + tanh(a_k) * tanh(x)`` for
    ``k < K`` (Ballé et al. 2018, App. 6.1, eq. 9-12), so ``p(z_hat) = c(z+1/2) - c(z-1/2)``.

    ``quantiles`` (C, 1, 3) holds each channel's learned lower tail, median and upper tail.
    ``final_gate`` also gates the last layer (the JT port's density does; Ballé et al. and TFC do not).
    Only the auxiliary loss (:meth:`aux_loss`) trains them, against a density whose
    parameters it does not move; they bound the coding tables and centre the rounding.

    For real coding, :meth:`update` builds one 16-bit table per channel into ``tables``;
    :meth:`compress` and :meth:`decompress` code ``round(z - median)`` with them.
    """

    def __init__(
        self,
        channels: int,
        filters: tuple[int, ...] = (3, 3, 3),
        init_scale: float = 10.0,
        tail_mass: float = 1e-9,
        likelihood_bound: float = 1e-9,
        final_gate: bool = False,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.tail_mass = tail_mass
        self.likelihood_bound = likelihood_bound
        dims = (1, *filters, 1)
        scale = init_scale ** (1.0 / (len(filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for k in range(len(filters) + 1):
            init = math.log(math.expm1(1.0 / scale / dims[k + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[k + 1], dims[k]), init)))
            self.biases.append(nn.Parameter(torch.empty(channels, dims[k + 1], 1).uniform_(-0.5, 0.5)))
            if k < len(filters) or final_gate:
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[k + 1], 1)))
        self.quantiles = nn.Parameter(torch.tensor([-init_scale, 0.0, init_scale]).repeat(channels, 1, 1))
        self.tail_logit = math.log(2.0 / tail_mass - 1.0)
        self.tables = CodingTables()

    def density_parameters(self) -> list[nn.Parameter]:
        """The parameters of the density itself (trained by the rate term)."""
        return [*self.matrices, *self.biases, *self.factors]

    def medians(self) -> torch.Tensor:
        """Per-channel medians, shape (1, C, 1, 1), detached: rounding is centred on them."""
        return self.quantiles[:, 0, 1].detach().view(1, -1, 1, 1)

    def logits_cumulative(self, x: torch.Tensor, stop_gradient: bool = False) -> torch.Tensor:
        """Logit of the cumulative c(x) for x of shape (C, 1, N) (Ballé et al. 2018, eq. 9-12)."""
        for k, (matrix, bias) in enumerate(zip(self.matrices, self.biases, strict=True)):
            if stop_gradient:
                matrix, bias = matrix.detach(), bias.detach()
            x = torch.matmul(F.softplus(matrix), x) + bias
            if k < len(self.factors):
                factor = self.factors[k].detach() if stop_gradient else self.factors[k]
                x = x + torch.tanh(factor) * torch.tanh(x)
        return x

    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        """p(z) under the density convolved with a unit uniform, for z of shape (B, C, H, W)."""
        b, c, h, w = z.shape
        values = z.permute(1, 0, 2, 3).reshape(c, 1, -1)
        lower = self.logits_cumulative(values - 0.5)
        upper = self.logits_cumulative(values + 0.5)
        sign = -torch.sign(lower + upper).detach()
        p = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        p = lower_bound(p, self.likelihood_bound)
        return p.reshape(c, b, h, w).permute(1, 0, 2, 3)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(z_for_h_s, p(z_for_h_s), p(z_hat))``.

        In training, ``z_tilde = z + U(-1/2, 1/2)`` both feeds h_s and gives the rate, as in
        Ballé et al. 2018 (a rounded z would give h_s's first layer no gradient while z is
        still small); in evaluation both use ``z_hat = round(z - median) + median``.
        ``p(z_hat)`` is always the likelihood of the rounded values.
        """
        z_hat = quantize_around(z, self.medians(), straight_through=False)
        p_hat = self.likelihood(z_hat)
        if not self.training:
            return z_hat, p_hat, p_hat
        z_tilde = add_uniform_noise(z)
        return z_tilde, self.likelihood(z_tilde), p_hat

    def aux_loss(self) -> torch.Tensor:
        """Pull the quantiles to the tail_mass/2, 1/2 and 1 - tail_mass/2 points of the density."""
        logits = self.logits_cumulative(self.quantiles, stop_gradient=True)
        target = logits.new_tensor([-self.tail_logit, 0.0, self.tail_logit])
        return torch.abs(logits - target).sum()

    @torch.no_grad()
    def update(self, force: bool = False) -> bool:
        """Build the coding tables from the density and the quantiles (once, unless ``force``); whether they were."""
        if self.tables.built and not force:
            return False
        device = self.quantiles.device
        self.tables.assign(*factorized_rows(lambda x: self.logits_cumulative(x.to(device)), self.quantiles))
        return True

    def symbols(self, z: torch.Tensor) -> torch.Tensor:
        """The integers coded: ``round(z - median)`` per channel (int64), checked to be codable."""
        rounded = torch.round(z.float() - self.medians().float().to(z.device))
        check_codable(rounded, "hyperlatent z")
        return rounded.long()

    def dequantize(self, symbols: torch.Tensor) -> torch.Tensor:
        """z_hat = symbols + median, summed in float64 and rounded once to float32 (the same on any device).

        On devices without float64 (e.g. Apple's MPS) the sum is taken on the CPU.
        """
        device = symbols.device if symbols.device.type in ("cpu", "cuda") else torch.device("cpu")
        medians = self.medians().to(device, torch.float64)
        return (symbols.to(device).double() + medians).float().to(symbols.device)

    def _indexes(self, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
        return torch.arange(self.channels).view(1, -1, 1, 1).expand(*shape)

    def compress(self, z: torch.Tensor) -> bytes:
        """Code ``round(z - median)`` of z (1, C, h, w) with the per-channel tables into a self-checking stream."""
        return encode_stream(self.tables, self.symbols(z), self._indexes(z.shape))

    def decompress(self, stream: bytes, shape: tuple[int, int]) -> torch.Tensor:
        """z_hat (1, C, h, w), float32 on the module's device, from a stream of :meth:`compress`; ``shape`` = (h, w)."""
        symbols = decode_stream(stream, self.tables, self._indexes((1, self.channels, *shape)), "hyperlatent")
        return self.dequantize(symbols.to(self.quantiles.device))

    def estimate_bits(self, z_hat: torch.Tensor) -> float:
        """-sum(log2 p(z_hat)) under the density: the ideal size of the stream in bits."""
        return -torch.log2(self.likelihood(z_hat.to(self.quantiles.dtype))).sum().item()
