"""The error bound's residual: quantization with step 2K + 1, and a learned, exactly reproducible entropy model.

Every pixel value of ``x`` is kept within ``K`` of the original by coding ``q``, the residual
``r = x - x_hat`` quantized with step ``2K + 1`` (K = 0: lossless). This is the l-infinity bound of
near-lossless coding (JPEG-LS's NEAR parameter, ISO/IEC 14495-1; Bai et al., "Learning Scalable
l-inf-constrained Near-lossless Image Compression via Joint Lossy Image and Residual Compression",
CVPR 2021), applied on top of a learned codec's decoding ``x_hat`` as Mentzer et al., "Learning
Better Lossless Compression Using Lossy Compression" (CVPR 2020) do for lossless coding.

The entropy model of ``q`` sees what the decoder has: all of ``x_hat`` and the part of ``q`` decoded
so far. The image is cut into the phases of a G x G grid (pixel ``(G i + a, G j + b)`` is in phase
``(a, b)``; G = 4 by default), coded coarse to fine (:func:`phase_order`, as Adam7 interlacing or
FLIF's): the network of phase ``p`` sees ``x_hat`` (all phases, as 3 G**2 channels at 1/G resolution)
and the dequantized residual of phases ``0 .. p-1``, and predicts per pixel and colour a logistic
mean and log-scale, plus three coefficients that shift G's mean by R's residual and B's by R's and
G's (PixelCNN++'s channel conditioning, Salimans et al. 2017, Sec. 2.2), so that R, G and B are coded in
that order. For coding, each phase network is frozen into an
:class:`~hific_lit.entropy.integer.IntegerConvNet`: its inputs are multiples of 2**-6 and its
arithmetic exact, so that encoder and decoder choose the same table rows on any device, given the
same ``x_hat`` (which the container checks).
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Iterator

import torch
from torch import nn

from hific_lit.entropy.coder import CHUNK_SYMBOLS, StreamReader, StreamWriter
from hific_lit.entropy.integer import IntegerConvNet
from hific_lit.entropy.ops import lower_bound
from hific_lit.entropy.residual_tables import (
    MAX_ERROR_LIMIT,
    SCALE_HIGH,
    SCALE_LOW,
    UNITS,
    build_tables,
    rows,
)
from hific_lit.entropy.tables import CodingBuffers, CodingTables
from hific_lit.errors import BitstreamError, CheckpointError

DEFAULT_GRID = 4


def phase_order(grid: int) -> tuple[tuple[int, int], ...]:
    """The positions ``(a, b)`` of a ``grid`` x ``grid`` cell in coding order, coarse to fine (as Adam7 interlacing).

    A position whose coordinates are both multiples of ``s`` (and not of ``2s``) belongs to level ``s``;
    levels go from the coarsest, and within one the diagonal positions (both coordinates odd multiples
    of ``s``) come first, so that the others see decoded neighbours on all four sides. Grid 2:
    ``(0, 0), (1, 1), (0, 1), (1, 0)``.
    """
    if grid < 1 or grid & (grid - 1):
        raise ValueError(f"the phase grid must be a power of 2, got {grid}")

    def level(position: tuple[int, int]) -> tuple[int, bool, int, int]:
        a, b = position
        s = grid
        while a % s or b % s:
            s //= 2
        diagonal = a % (2 * s) == s and b % (2 * s) == s
        return -s, not diagonal, a, b

    return tuple(sorted(((a, b) for a in range(grid) for b in range(grid)), key=level))


INPUT_SHIFT = 6
"""Network inputs are ``(x_hat - 128) / 64``, ``step * q / 64`` and ``step / 64``: exact multiples of 2**-6."""
INPUT_BOUND = 8.0
"""|input| < 8 for every K <= 127 (|step * q| <= 255 + K)."""
OUTPUTS = 9
"""Per pixel: 3 means, 3 natural log-scales (pixel units), coefficients G<-R, B<-R, B<-G."""
MEAN_LIMIT = 1024 * UNITS
COEFFICIENT_LIMIT = 4 * UNITS
LOG_SCALE_LIMIT = 32 * UNITS
BAND_POSITIONS = 1 << 16
"""Half-resolution positions per band of rows (part of the format: a band's symbols of one colour are one chunk)."""


def residual_step(max_error: int) -> int:
    """The quantization step ``2K + 1`` of the bound ``K`` (checked: an integer in 0 .. 127)."""
    if isinstance(max_error, bool) or not isinstance(max_error, int) or not 0 <= max_error <= MAX_ERROR_LIMIT:
        raise ValueError(f"the maximum error must be an integer from 0 to {MAX_ERROR_LIMIT}, got {max_error!r}")
    return 2 * max_error + 1


def quantize_residual(x: torch.Tensor, x_hat: torch.Tensor, max_error: int) -> torch.Tensor:
    """``q = sign(r) floor((|r| + K) / (2K + 1))`` of ``r = x - x_hat`` (uint8 images, same shape): int16.

    Then ``|r - (2K + 1) q| <= K`` for every value (JPEG-LS's quantizer, ISO/IEC 14495-1 A.4.4).
    """
    step = residual_step(max_error)
    r = x.to(torch.int16) - x_hat.to(torch.int16)
    return torch.sign(r) * torch.div(r.abs() + max_error, step, rounding_mode="floor")


def dequantize_residual(x_hat: torch.Tensor, q: torch.Tensor, max_error: int) -> torch.Tensor:
    """``clamp(x_hat + (2K + 1) q, 0, 255)`` as uint8: within K of ``x`` (clamping only moves towards it)."""
    step = residual_step(max_error)
    return (x_hat.to(torch.int16) + step * q.to(torch.int16)).clamp_(0, 255).to(torch.uint8)


def to_phases(t: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, grid**2, C, ceil(H/grid), ceil(W/grid)), the phases in :func:`phase_order`; sides
    that are not multiples of ``grid`` are completed by repeating the last row / column."""
    h, w = t.shape[-2:]
    rows = torch.arange(-(-h // grid) * grid, device=t.device).clamp_(max=h - 1)
    cols = torch.arange(-(-w // grid) * grid, device=t.device).clamp_(max=w - 1)
    t = t.index_select(-2, rows).index_select(-1, cols)
    return torch.stack([t[..., a::grid, b::grid] for a, b in phase_order(grid)], 1)


def phase_valid(height: int, width: int, phase: int, grid: int) -> torch.Tensor:
    """(ceil(H/grid), ceil(W/grid)) bool: where ``phase`` holds a pixel of the image, not one added to fill the grid."""
    a, b = phase_order(grid)[phase]
    rows_ok = torch.arange(-(-height // grid)) * grid + a < height
    cols_ok = torch.arange(-(-width // grid)) * grid + b < width
    return rows_ok[:, None] & cols_ok[None, :]


def phases_valid(height: int, width: int, grid: int) -> torch.Tensor:
    """(grid**2, 1, h, w) bool: :func:`phase_valid` of every phase; the residual counts as 0 elsewhere."""
    return torch.stack([phase_valid(height, width, p, grid) for p in range(grid * grid)])[:, None]


def phase_inputs(x_hat_phases: torch.Tensor, dequantized: torch.Tensor, phase: int, step: torch.Tensor) -> torch.Tensor:
    """The network input of ``phase``: (B, 3 P + 3 phase + 1, h, w) float, every value a multiple of 2**-6.

    ``x_hat_phases`` (B, P, 3, h, w) uint8 (P phases); ``dequantized`` (B, P, 3, h, w) the dequantized
    residual ``step * q`` (only phases before ``phase`` are read); ``step`` (B,) each image's 2K + 1.
    """
    b, phases, _, h, w = x_hat_phases.shape
    scale = 1.0 / (1 << INPUT_SHIFT)
    parts = [(x_hat_phases.reshape(b, 3 * phases, h, w).float() - 128.0) * scale]
    if phase:
        parts.append(dequantized[:, :phase].reshape(b, 3 * phase, h, w).float() * scale)
    parts.append((step.view(b, 1, 1, 1).float() * scale).expand(b, 1, h, w))
    return torch.cat(parts, 1)


def phase_network(phase: int, phases: int, width: int = 32, layers: int = 3) -> nn.Sequential:
    """The float network of ``phase`` (of ``phases``): ``layers`` 3x3 convolutions of ``width`` channels with
    ReLUs, then a 1x1 to 9."""
    modules: list[nn.Module] = []
    channels = 3 * phases + 3 * phase + 1
    for _ in range(layers):
        modules += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
        channels = width
    modules.append(nn.Conv2d(channels, OUTPUTS, 1))
    return nn.Sequential(*modules)


def channel_means(out: torch.Tensor, dequantized: torch.Tensor) -> torch.Tensor:
    """Per-colour means with the channel conditioning: m_G += a_GR r_R, m_B += a_BR r_R + a_BG r_G.

    Works on floats (training) and on int64 units of 2**-16 (coding; ``dequantized`` integers), the
    coefficients clamped to +-4 and the results to +-1024 pixels in both.
    """
    if out.dtype == torch.int64:
        coef, limit = out[:, 6:9].clamp(-COEFFICIENT_LIMIT, COEFFICIENT_LIMIT), MEAN_LIMIT
    else:
        coef, limit = out[:, 6:9].clamp(-COEFFICIENT_LIMIT / UNITS, COEFFICIENT_LIMIT / UNITS), MEAN_LIMIT / UNITS
    r = dequantized.to(out.dtype)
    mean = out[:, 0:3].clamp(-limit, limit)
    red = mean[:, 0]
    green = mean[:, 1] + coef[:, 0] * r[:, 0]
    blue = mean[:, 2] + coef[:, 1] * r[:, 0] + coef[:, 2] * r[:, 1]
    return torch.stack([red, green, blue], 1).clamp(-limit, limit)


def logistic_bits(q: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """-log2 p(q) under the logistic (pixel-domain ``mean``, ``log_scale``) integrated over q's bin, in the
    q domain (mean / step, scale / step, unit bins), the scale kept within the tables' range; on the
    centred magnitude as :meth:`~hific_lit.entropy.conditional.ConditionalEntropyModel.likelihood`."""
    log_step = torch.log(step.float())
    low, high = math.log(SCALE_LOW), math.log(SCALE_HIGH)
    scale = torch.exp(lower_bound(-lower_bound(-(log_scale - log_step), -high), low))
    v = torch.abs(q.float() - mean / step)
    p = torch.sigmoid((0.5 - v) / scale) - torch.sigmoid((-0.5 - v) / scale)
    return -torch.log2(lower_bound(p, 1.0 / (1 << 16)))


class ResidualCoder(CodingBuffers):
    """The residual's entropy model: four float phase networks (trained), their integer copies and the tables.

    Train the float ``nets`` on :meth:`bits`; :meth:`update` freezes them and builds the tables;
    :meth:`encode` / :meth:`decode` then code ``q`` into a self-checking stream.
    """

    def __init__(self, width: int = 32, layers: int = 3, grid: int = DEFAULT_GRID) -> None:
        super().__init__()
        self.width, self.layers, self.grid = width, layers, grid
        phases = len(phase_order(grid))
        self.nets = nn.ModuleList(phase_network(p, phases, width, layers) for p in range(phases))
        self.exact = nn.ModuleList(IntegerConvNet(net) for net in self.nets)
        self.tables = CodingTables()
        self.register_buffer("log_thresholds", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("log_steps", torch.zeros(0, dtype=torch.int64))

    @property
    def built(self) -> bool:
        """Whether :meth:`update` has frozen the networks and built the tables."""
        return self.tables.built and all(net.built for net in self.exact)

    def update(self) -> None:
        """Freeze the phase networks into integers and build the coding tables."""
        for net, exact in zip(self.nets, self.exact, strict=True):
            exact.update(net, INPUT_BOUND)
        cdf, length, offset, log_thresholds, log_steps = build_tables()
        self.tables.assign(cdf, length, offset)
        self.log_thresholds, self.log_steps = log_thresholds.clone(), log_steps.clone()

    def fingerprint(self) -> bytes:
        """BLAKE2b-8 over the frozen networks and tables: what decoding depends on."""
        digest = hashlib.blake2b(digest_size=8)
        for name, buffer in self.state_dict().items():
            if name.startswith("nets."):
                continue
            digest.update(name.encode())
            digest.update(buffer.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
        return digest.digest()

    def bits(self, x: torch.Tensor, x_hat: torch.Tensor, max_error: torch.Tensor) -> torch.Tensor:
        """Training rate: -log2 p(q) of uint8 batches (B, 3, H, W), per image (B,), with the float networks.

        ``max_error`` (B,) int64 chooses each image's K.
        """
        step = (2 * max_error + 1).view(-1, 1, 1, 1)
        r = x.to(torch.int16) - x_hat.to(torch.int16)
        q = to_phases(torch.sign(r) * torch.div(r.abs() + (step - 1) // 2, step, rounding_mode="floor"), self.grid)
        q = q * phases_valid(x.shape[-2], x.shape[-1], self.grid).to(x.device)
        xp = to_phases(x_hat, self.grid)
        dequantized = q * step[:, None]
        total = torch.zeros(x.shape[0], device=x.device)
        for p, net in enumerate(self.nets):
            out = net(phase_inputs(xp, dequantized, p, step))
            mean = channel_means(out, dequantized[:, p])
            valid = phase_valid(x.shape[-2], x.shape[-1], p, self.grid).to(x.device)
            cost = logistic_bits(q[:, p], mean, out[:, 3:6], step)
            total = total + (cost * valid).sum((1, 2, 3))
        return total

    def _bands(self, h: int, w: int) -> Iterator[tuple[int, int]]:
        rows_per_band = max(1, BAND_POSITIONS // max(1, w))
        for start in range(0, h, rows_per_band):
            yield start, min(h, start + rows_per_band)

    def _band_outputs(
        self, phase: int, xp: torch.Tensor, dequantized: torch.Tensor, step: int, band: tuple[int, int]
    ) -> torch.Tensor:
        """The integer network's outputs (9, rows, w) int64 for the rows ``band`` of ``phase``."""
        halo = self.layers
        start, end = band
        lo, hi = max(0, start - halo), min(xp.shape[-2], end + halo)
        inputs = phase_inputs(xp[None, :, :, lo:hi], dequantized[None, :, :, lo:hi], phase, torch.tensor([step]))
        out = self.exact[phase](inputs.double())[0, :, start - lo : end - lo]
        return torch.round(out * UNITS).long()

    def _plan(self, x_hat: torch.Tensor, max_error: int) -> tuple[int, int, torch.Tensor]:
        if not self.built:
            raise RuntimeError("the residual coder's networks are not frozen; call update() first")
        if x_hat.dtype != torch.uint8 or x_hat.dim() != 3 or x_hat.shape[0] != 3:
            raise ValueError(f"x_hat must be a (3, H, W) uint8 image, got {tuple(x_hat.shape)} {x_hat.dtype}")
        step = residual_step(max_error)
        return step, int(self.log_steps[max_error]), to_phases(x_hat[None].cpu(), self.grid)[0]

    def encode(self, x: torch.Tensor, x_hat: torch.Tensor, max_error: int) -> bytes:
        """The stream of ``q`` for the uint8 (3, H, W) images ``x`` and ``x_hat``: chunks, then the symbols' CRC32."""
        step, log_step, xp = self._plan(x_hat, max_error)
        height, width = x.shape[-2:]
        q = quantize_residual(x.cpu(), x_hat.cpu(), max_error)[None]
        q = to_phases(q, self.grid)[0] * phases_valid(height, width, self.grid)
        dequantized = q * step
        writer = StreamWriter(self.tables)
        for phase in range(len(self.nets)):
            valid = phase_valid(height, width, phase, self.grid)
            for band in self._bands(*xp.shape[-2:]):
                out = self._band_outputs(phase, xp, dequantized, step, band)
                mask = valid[band[0] : band[1]]
                mean = channel_means(out[None], dequantized[phase, :, band[0] : band[1]][None])[0]
                for c in range(3):
                    centre, row = rows(mean[c], out[3 + c], step, self.log_thresholds, log_step)
                    symbols = q[phase, c, band[0] : band[1]].long() - centre
                    _add(writer, symbols[mask], row[mask])
        return bytes(writer.out) + struct.pack("<I", writer.crc)

    def decode(self, data: bytes, x_hat: torch.Tensor, max_error: int) -> torch.Tensor:
        """The uint8 (3, H, W) image within ``max_error`` of the original, from :meth:`encode` and ``x_hat``."""
        step, log_step, xp = self._plan(x_hat, max_error)
        if len(data) < 4:
            raise BitstreamError("residual stream: too short to hold its CRC32 (truncated)")
        reader = StreamReader(data[:-4], self.tables, "residual")
        height, width = x_hat.shape[-2:]
        q = torch.zeros(xp.shape, dtype=torch.int16)
        dequantized = torch.zeros(xp.shape, dtype=torch.int16)
        for phase in range(len(self.nets)):
            valid = phase_valid(height, width, phase, self.grid)
            for band in self._bands(*xp.shape[-2:]):
                out = self._band_outputs(phase, xp, dequantized, step, band)
                mask = valid[band[0] : band[1]]
                for c in range(3):
                    mean = channel_means(out[None], dequantized[phase, :, band[0] : band[1]][None])[0]
                    centre, row = rows(mean[c], out[3 + c], step, self.log_thresholds, log_step)
                    symbols = _read(reader, row[mask]) + centre[mask]
                    if bool((symbols.abs() > 255).any()):
                        raise BitstreamError("residual stream: a decoded residual is beyond +-255 (corrupt)")
                    plane = q[phase, c, band[0] : band[1]]
                    plane[mask] = symbols.to(torch.int16)
                    dequantized[phase, c, band[0] : band[1]] = plane * step
        reader.finish()
        if reader.crc != struct.unpack("<I", data[-4:])[0]:
            raise BitstreamError("residual stream: the decoded symbols do not match the encoder's (symbol CRC32)")
        return dequantize_residual(x_hat.cpu(), from_phases(q, height, width, self.grid), max_error)


def _add(writer: StreamWriter, symbols: torch.Tensor, rows_: torch.Tensor) -> None:
    for start in range(0, symbols.numel(), CHUNK_SYMBOLS):
        writer.add_chunk(symbols[start : start + CHUNK_SYMBOLS], rows_[start : start + CHUNK_SYMBOLS])


def _read(reader: StreamReader, rows_: torch.Tensor) -> torch.Tensor:
    parts = [reader.read_chunk(rows_[s : s + CHUNK_SYMBOLS]) for s in range(0, rows_.numel(), CHUNK_SYMBOLS)]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int64)


def from_phases(phases: torch.Tensor, height: int, width: int, grid: int) -> torch.Tensor:
    """Inverse of :func:`to_phases` for one image: (grid**2, C, h, w) -> (C, H, W)."""
    c, h, w = phases.shape[1:]
    out = torch.empty(c, grid * h, grid * w, dtype=phases.dtype)
    for p, (a, b) in enumerate(phase_order(grid)):
        out[:, a::grid, b::grid] = phases[p]
    return out[:, :height, :width]


CODER_FORMAT = "hific-lit residual coder"


def coder_payload(coder: ResidualCoder) -> dict:
    """A frozen coder as plain data (its layout, networks and tables), stored in the model's checkpoint."""
    if not coder.built:
        raise ValueError("freeze the residual coder with update() before saving it")
    state = {k: v.detach().cpu() for k, v in coder.state_dict().items()}
    return {"format": CODER_FORMAT, "width": coder.width, "layers": coder.layers, "grid": coder.grid, "state": state}


def coder_from_payload(payload: object, source: str) -> ResidualCoder:
    """The coder of :func:`coder_payload`; :class:`CheckpointError` naming ``source`` for anything else."""
    try:
        if not isinstance(payload, dict) or payload.get("format") != CODER_FORMAT:
            raise ValueError("not a residual coder")
        coder = ResidualCoder(int(payload["width"]), int(payload["layers"]), int(payload["grid"]))
        coder.load_state_dict(payload["state"])
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{source}: cannot load its residual coder ({str(exc).splitlines()[0]})") from None
    if not coder.built:
        raise CheckpointError(f"{source}: its residual coder is not frozen")
    return coder.eval()
