"""Reduced-precision synthesis and analysis: which float type g_a and g_s run in.

Only g_a and g_s change precision. Everything that decides symbols and table indexes (h_a's output
is coded as it is rounded, the integer-exact h_s, the tables and the coder) stays as it is, so a
file written in any precision decodes in any other (issue "Portable bitstreams"). ``auto`` picks
bfloat16 where the hardware computes it natively: CUDA GPUs (float16 on those without bfloat16) and
CPUs with AVX-512 BF16 or AMX, where bfloat16 convolutions run about twice as fast as float32.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import nn

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
NATIVE_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@functools.cache
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU feature flags the kernel reports (empty where there is no ``/proc/cpuinfo``)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_native_bf16(flags: frozenset[str] | None = None) -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX)."""
    return bool((cpu_flags() if flags is None else flags) & NATIVE_BF16_CPU_FLAGS)


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> torch.dtype:
    """The float type for g_a and g_s: ``fp32``, ``bf16`` and ``fp16`` as named; ``auto`` as the module says."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of: {', '.join(PRECISIONS)}")
    if precision != "auto":
        return DTYPES[precision]
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32


def set_transform_precision(g_a: nn.Module, g_s: nn.Module, dtype: torch.dtype) -> None:
    """Cast the analysis and synthesis transforms' weights once, in place, and lay them out channels_last.

    channels_last suits oneDNN and cuDNN alike, and lets ChannelNorm run as one fused layer norm
    (768x512 on 2 CPU cores: g_s 20 % faster in bfloat16, 12 % in float32; scripts/bench_inference.py).
    """
    for net in (g_a, g_s):
        for layer in net.modules():  # tensor by tensor: only one weight is ever held twice
            for param in layer.parameters(recurse=False):
                layout = torch.channels_last if param.dim() == 4 else torch.contiguous_format
                param.data = param.data.to(dtype, memory_format=layout)
            for name, buffer in layer.named_buffers(recurse=False):
                if buffer.is_floating_point():
                    setattr(layer, name, buffer.to(dtype))
