"""Keep freed tensor memory inside the process (Linux with glibc, CPU training).

glibc hands blocks above its mmap threshold (128 KiB at first) back to the kernel when they are
freed, so every step's activations and gradients land on fresh pages that the kernel zeroes on
first touch. On a CPU that page-fault work took about a fifth of a learning step of SmolLM2-135M
(``benchmarks/step_time.py``). Raising the mmap and trim thresholds lets freed blocks be reused
from the heap, for a larger resident size (about 300 MB more there).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc's mallopt parameters
SETTINGS = {M_MMAP_THRESHOLD: 1 << 30, M_TRIM_THRESHOLD: (1 << 31) - 1, M_TOP_PAD: 1 << 30}


def keep_freed_memory() -> bool:
    """Apply :data:`SETTINGS` with glibc's ``mallopt``; False where there is no glibc (macOS,
    Windows, musl) and nothing was changed."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(param, value) == 1 for param, value in SETTINGS.items())
