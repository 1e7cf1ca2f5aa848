"""Keeping freed memory: a block freed and allocated again reuses its pages instead of faulting fresh ones."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# Run in a fresh interpreter: the setting lasts for the whole process, and page faults are counted there.
PAGE_FAULTS_OF_REUSE = """
import resource, sys
import numpy as np
from nac_hash.training.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
np.ones(2**24)  # 128 MiB, allocated, touched and freed once before counting
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    np.ones(2**24)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    run = subprocess.run([sys.executable, "-c", PAGE_FAULTS_OF_REUSE, mode], check=True, capture_output=True,
                         text=True)
    return int(run.stdout)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_kept_memory_is_reused_without_page_faults():
    # glibc's default maps each large block afresh (how many faults depends on the page size the kernel uses).
    assert 10 * page_faults("keep") < page_faults("default")
