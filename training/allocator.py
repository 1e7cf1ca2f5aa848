"""Keep freed memory in the process during CPU training, so each step reuses the previous step's pages.

glibc's malloc hands every block over 128 KiB to its own ``mmap`` and gives it back with ``munmap`` when
freed. A training step allocates and frees activations of tens of MB, so every step maps fresh pages and
takes a page fault on each of them: on this project's 2-core machine that was up to a third of an fp32 step
(benchmarks/step_profile.py measures it). Telling malloc to serve large blocks from its
heap and not to hand freed memory back to the kernel removes that cost; the price is that the process keeps
its peak heap until it exits (peak memory of cnn_small at batch 500: 4% more in fp32, no more in bf16;
benchmarks/results/training-speed/step-profile-memory.json). PyTorch's CPU
performance guide makes the same point with jemalloc or tcmalloc, which need LD_PRELOAD; ``mallopt`` does it
from inside the process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
_M_MMAP_MAX = -4
_KEEP_UP_TO = 2**30  # free memory at the top of the heap returned to the kernel only beyond 1 GiB


def keep_freed_memory() -> bool:
    """Serve large blocks from malloc's heap and keep freed memory; False where libc is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    applied = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, _KEEP_UP_TO) == 1
    if not applied:
        logger.debug("mallopt refused the allocator settings; training runs with the default allocator")
    return applied
