"""How many threads the maths libraries use (BLAS under numpy, torch's intra-op pool).

Scoring one pair is a few small matrix products and FFTs: a second thread gains little on an
idle machine, and when another process holds a core the threads of a BLAS or OpenMP pool
wait on each other (measured on 2 cores with one busy: torch's default 2 threads 1.9 s per
12 s pair, 1 thread 0.065 s; `benchmarks/bench_cold_start.py` prints the figures of this
machine). So scoring runs on `DEFAULT_THREADS` = 1 thread per process and batches use more
cores with more processes (`deepaq score --processes`), which do not wait on each other.

`set_threads(n)` before numpy is imported sets the usual environment variables (free); after,
it limits the loaded BLAS and OpenMP libraries through threadpoolctl; it sets torch's pool
when torch is loaded. `n=0` leaves the libraries' defaults.
"""

from __future__ import annotations

import os
import sys

DEFAULT_THREADS = 1
_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def set_threads(n: int | None) -> None:
    """Use `n` threads (None: DEFAULT_THREADS; 0: leave the libraries' own defaults)."""
    n = DEFAULT_THREADS if n is None else int(n)
    if n < 0:
        raise ValueError(f"threads must be >= 0, got {n}")
    if n == 0:
        return
    if "numpy" not in sys.modules:
        for name in _ENV:
            os.environ[name] = str(n)
    else:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=n)  # stays in force (only its context exit would restore)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)
