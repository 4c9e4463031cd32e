"""Keep freed memory in the process for reuse: repeated scoring without page faults.

glibc malloc hands blocks above its mmap threshold (dynamic, at most 32 MB) back to the
kernel when they are freed, and gives the free top of its heap back above a trim threshold
of twice that. Scoring a pair allocates tens of MB of short-lived arrays (decoded audio,
FFTs, STFT frames), so every pair maps fresh pages and faults on each of them: on the 2-core
VM this project is measured on, ~3,500-6,600 page faults per 10 s pair cost 10-18 ms of a
~55 ms pair (`benchmarks/bench_default_model.py --speed-only`). This is the reason CPU
inference guides for PyTorch recommend jemalloc or tcmalloc.

`keep_freed_memory()` does the light-weight equivalent with glibc's own `mallopt`: blocks up
to 64 MB come from the heap, and up to 256 MB of free heap stay mapped for the next pair.
Memory that was in use once is kept (bounded by those 256 MB plus the peak working set)
instead of being returned. The setting holds for the whole process; a `Scorer` applies it
unless made with `keep_memory=False`. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import platform

MMAP_THRESHOLD_MB = 64
TRIM_THRESHOLD_MB = 256
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds (idempotent); True when they are set."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_MB << 20)
                and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_MB << 20))
