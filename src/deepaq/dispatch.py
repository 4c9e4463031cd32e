"""What both engines (`deepaq.engine.LocalEngine`, `deepaq.cluster.RayEngine`) share: calling
a task, streaming tasks through a bounded window, the progress bar and one thread per worker.

A module of its own so that `deepaq.cluster` needs nothing from `deepaq.engine`, which imports
the cluster only when `--engine ray` is chosen.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Hashable, Iterable, Iterator, TypeVar

CRASH = "its worker process died (a crash in native code, or killed)"  # why, for a map's on_crash

T = TypeVar("T")
R = TypeVar("R")
H = TypeVar("H", bound=Hashable)


def one_thread_per_worker() -> None:
    """Limit BLAS, OpenMP and torch (`deepaq.threads`) and numba to one thread in this worker."""
    from deepaq.threads import set_threads

    os.environ["NUMBA_NUM_THREADS"] = "1"  # read when numba is imported
    set_threads(1)
    if "numba" in sys.modules:
        sys.modules["numba"].set_num_threads(1)


def call(fn: Callable, shared: Any, task: Any) -> Any:
    """`fn(task)`, or `fn(shared, task)` when there is something shared."""
    return fn(task) if shared is None else fn(shared, task)


def stream(units: Iterable[T], submit: Callable[[T], H], wait_any: Callable[[list[H]], Iterable[H]],
           result: Callable[[H], R], cancel: Callable[[H], Any], *, window: int, ordered: bool
           ) -> Iterator[tuple[T, R]]:
    """Keep at most `window` units submitted (or finished and waiting for their turn with
    `ordered`), yield `(unit, result)` as they finish or in order, cancel the rest on exit."""
    pending: dict[H, tuple[int, T]] = {}
    ready: dict[int, tuple[T, R]] = {}
    todo = enumerate(units)
    next_out, exhausted = 0, False
    try:
        while True:
            while not exhausted and len(pending) + len(ready) < window:
                item = next(todo, None)
                if item is None:
                    exhausted = True
                else:
                    pending[submit(item[1])] = item
            if not pending and not ready:
                return
            if pending:
                for handle in wait_any(list(pending)):
                    index, unit = pending.pop(handle)
                    if ordered:
                        ready[index] = (unit, result(handle))
                    else:
                        yield unit, result(handle)
            while next_out in ready:
                yield ready.pop(next_out)
                next_out += 1
    finally:
        for handle in pending:
            cancel(handle)


def progress(desc: str | None, total: int, unit: str):
    """A tqdm bar on stderr (a do-nothing one with `desc=None`)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, disable=True if desc is None else None)
