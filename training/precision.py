"""Which autocast dtype a training step runs in.

bf16 autocast pays off on CUDA and on CPUs that compute bf16 natively (AVX512-BF16 or AMX): on this
project's 2-core AVX512-BF16 CPU it more than doubles the images/s of cnn_small (benchmarks/step_profile.py).
Elsewhere bf16 is emulated and slower than fp32, so ``auto`` keeps fp32 there. Inference stays in fp32 on
the CPU so that the codes of an index never depend on which machine encoded them.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

_NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when /proc/cpuinfo lists a native bf16 instruction set (False where there is no such file)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return bool(_NATIVE_BF16_FLAGS & set(flags))


def training_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for ``precision`` ("auto", "fp32" or "bf16") on ``device``; None means fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise ValueError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    native = device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
    return torch.bfloat16 if native else None
