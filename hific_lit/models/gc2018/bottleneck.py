"""The quantized bottleneck of GC2018: L fixed centers, soft-to-hard quantization, a categorical prior.

Quantization (Agustsson et al. 2018, after the soft-to-hard scheme of Agustsson et al. 2017 and Mentzer et al. 2018):
``w_hat_i = c_j`` with ``j = argmin_j |w_i - c_j|`` over centers ``c = {-(L-1)/2, ..., (L-1)/2}``
(L = 5: -2, -1, 0, 1, 2). In training the gradient flows through the soft assignment
``w_soft = sum_j softmax(-sigma |w - c|)_j c_j`` while the forward value is the hard one
(straight-through: ``w_soft + stopgrad(w_hard - w_soft)``). With ``|w - c|`` the soft assignment is
flat beyond the outer centers (all weights scale alike), so an encoder output that strays there
gets no gradient and stays: in short CPU runs every symbol collapsed onto one center. Beyond the
outer centers the relaxation therefore continues with slope 1 (``+ w - clamp(w, c_1, c_L)``).

Coding: the paper bounds the rate by ``dim(w_hat) log2(L)`` bits (beta = 0: no entropy term in training). Here the
symbols ``j`` are coded with torchac under a learned per-channel categorical prior, so that a file
costs the prior's cross-entropy, below that bound when the symbols are not uniform. The prior is
trained on its own (the ``prior`` optimizer) on detached symbols, like HiFiC's aux loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hific_lit.entropy.coder import decode_stream, encode_stream
from hific_lit.entropy.tables import CodingTables, cdf_rows, quantize_pmfs
from hific_lit.errors import BitstreamError, CheckpointError


def centers(levels: int) -> torch.Tensor:
    """The L fixed, evenly spaced centers around 0: ``j - (L - 1) / 2`` for ``j = 0 .. L-1``."""
    return torch.arange(levels, dtype=torch.float32) - (levels - 1) / 2


class SoftToHardQuantizer(nn.Module):
    """Nearest-center quantization with the softmax relaxation for gradients (straight-through in training)."""

    def __init__(self, levels: int = 5, sigma: float = 1.0) -> None:
        super().__init__()
        self.sigma = sigma
        self.register_buffer("centers", centers(levels))

    def symbols(self, w: torch.Tensor) -> torch.Tensor:
        """Index (int64) of the nearest center of each element; ties go to the lower center."""
        return (w.float()[..., None] - self.centers).abs().argmin(-1)

    def dequantize(self, symbols: torch.Tensor) -> torch.Tensor:
        """The centers the symbols index (float32)."""
        return self.centers[symbols]

    def forward(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(w_hat, symbols): hard values forward; in training, gradients of the soft assignment."""
        symbols = self.symbols(w)
        hard = self.dequantize(symbols).to(w.dtype)
        if not self.training:
            return hard, symbols
        c = self.centers.to(w.dtype)
        weights = torch.softmax(-self.sigma * (w[..., None] - c).abs(), dim=-1)
        relaxed = weights @ c + (w - w.clamp(float(c[0]), float(c[-1])))  # slope 1 beyond the outer centers
        return relaxed + (hard - relaxed).detach(), symbols


class CategoricalPrior(nn.Module):
    """A learned distribution over the L symbols per channel, and its frozen coding table.

    ``update()`` turns ``softmax(logits)`` into one 16-bit CDF row per channel (plus the overflow
    bin every table row has, see :mod:`hific_lit.entropy.tables`); ``compress`` and ``decompress``
    code a (1, C, h, w) symbol tensor with row ``c`` for channel ``c`` through
    :mod:`hific_lit.entropy.coder`.
    """

    def __init__(self, channels: int, levels: int) -> None:
        super().__init__()
        self.levels = levels
        self.logits = nn.Parameter(torch.zeros(channels, levels))
        self.tables = CodingTables()

    def bits(self, symbols: torch.Tensor) -> torch.Tensor:
        """-log2 p(symbols) summed over a (B, C, h, w) tensor of symbols (differentiable in the logits)."""
        log_pmf = F.log_softmax(self.logits.float(), dim=-1)
        c = symbols.shape[1]
        per_channel = log_pmf[torch.arange(c, device=symbols.device)[:, None], symbols.transpose(0, 1).reshape(c, -1)]
        return -per_channel.sum() / math.log(2.0)

    @torch.no_grad()
    def update(self, force: bool = False) -> bool:
        """Build the coding table from the current logits (once, unless ``force``); returns whether it did."""
        if self.tables.built and not force:
            return False
        pmf = torch.softmax(self.logits.detach().double().cpu(), dim=-1)
        channels = pmf.shape[0]
        pmf = torch.cat([pmf, torch.zeros(channels, 1, dtype=pmf.dtype)], dim=1)  # the overflow bin, never used
        length = torch.full((channels,), self.levels + 1, dtype=torch.int64)
        cdf = cdf_rows(quantize_pmfs(pmf, length), length)
        self.tables.assign(cdf, length, torch.zeros(channels, dtype=torch.int64))
        return True

    def require_tables(self) -> None:
        """Raise :class:`CheckpointError` unless :meth:`update` has built the table."""
        if not self.tables.built:
            raise CheckpointError("the categorical prior has no coding table: call model.update() after training")

    def _indexes(self, shape: tuple[int, ...]) -> torch.Tensor:
        channels = torch.arange(shape[1], dtype=torch.int64)[None, :, None, None]
        return channels.expand(shape)

    def compress(self, symbols: torch.Tensor) -> bytes:
        """One stream for the (1, C, h, w) int64 symbols (row ``c`` for channel ``c``)."""
        self.require_tables()
        return encode_stream(self.tables, symbols.cpu(), self._indexes(tuple(symbols.shape)))

    def decompress(self, stream: bytes, shape: tuple[int, int, int, int]) -> torch.Tensor:
        """The (1, C, h, w) int64 symbols of ``stream``; a symbol outside 0..L-1 raises :class:`BitstreamError`."""
        self.require_tables()
        symbols = decode_stream(stream, self.tables, self._indexes(shape), "latent")
        if symbols.numel() and (symbols.min() < 0 or symbols.max() >= self.levels):
            raise BitstreamError(f"latent stream: a decoded symbol lies outside the {self.levels} centers (corrupt)")
        return symbols

    def estimate_bits(self, symbols: torch.Tensor) -> float:
        """-log2 of the symbols' probabilities under the frozen table: the size an ideal coder would reach."""
        self.require_tables()
        starts = self.tables.cdf.long() & 0xFFFF
        freq = (starts[:, 1 : self.levels + 1] - starts[:, : self.levels]).double()
        c = symbols.shape[1]
        picked = freq[torch.arange(c)[:, None], symbols.cpu().transpose(0, 1).reshape(c, -1)]
        return float(-(torch.log2(picked / 65536.0)).sum())
