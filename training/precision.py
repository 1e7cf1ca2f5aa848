"""Which autocast dtype a training step runs in.

bf16 autocast pays off on CUDA and on CPUs that compute bf16 natively (AVX512-BF16 or AMX): on this
project's 2-core AVX512-BF16 CPU it more than doubles the images/s of cnn_small (benchmarks/step_profile.py).
Elsewhere bf16 is emulated and far slower than fp32 (convolutions leave oneDNN for PyTorch's reference path:
on a 2-core AVX2 CPU, 46 images/s against 440 in fp32:
benchmarks/results/training-speed/step-profile-avx2-bf16-emulated.json),
so ``auto`` keeps fp32 there and an explicit ``bf16`` is warned about. Inference stays in fp32 on the CPU so
that the codes of an index never depend on which machine encoded them.
"""

from __future__ import annotations

import functools
import logging

import torch

from nac_hash.provenance import cpuinfo_field

logger = logging.getLogger(__name__)

_NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when /proc/cpuinfo lists a native bf16 instruction set (False where there is no such file)."""
    return bool(_NATIVE_BF16_FLAGS & set((cpuinfo_field("flags") or "").split()))


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


def warn_if_emulated(device: torch.device, precision: str) -> None:
    """Warn when bf16 is asked for on a CPU that would emulate it."""
    if precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        logger.warning("--precision bf16 on a CPU without native bf16 (AVX512-BF16 or AMX): PyTorch emulates it, "
                       "about 10x slower than fp32 on such a CPU; --precision auto chooses fp32 here")
