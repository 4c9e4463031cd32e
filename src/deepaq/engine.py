"""Where batch work runs: worker processes on this machine (`local`) or a Ray cluster (`ray`).

Every corpus verb (`build-data`, `label`, `score`, `evaluate`) hands its work to an engine as
a module-level function and a list of tasks; the engine yields `(task, result)` as results
come back, with a progress bar, keeping only a bounded window of tasks in flight so a long
task list costs the driver no memory. The caller writes each result to its journal or output
file at once, so a killed run loses only the tasks that were in flight.

A worker process that dies while it runs a task (a crash in native code, such as an assertion
in an FFmpeg encoder, or a kill) does not end the job: the local engine starts a fresh pool,
runs each task that was in the dead pool again alone in a process of its own, and hands the
one that kills its process too to the caller's `on_crash` (which records it as a bad item),
or raises `WorkerCrashed` naming it when there is none.

The function runs in long-lived worker processes, so whatever it loads once per process
(ViSQOL, a DeePAQ model, PEAQ: module-level caches such as `deepaq.data.labels.visqol_scorer`)
is loaded once per worker and reused for every task that worker runs. Numerical libraries use
one thread per worker (the workers already fill the cores), so results do not depend on the
engine or the worker count.

`RayEngine` lives in `deepaq.cluster` and imports ray; this module never does.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterator, Protocol, Sequence, TypeVar

from deepaq.dispatch import CRASH, call, one_thread_per_worker, progress, stream
from deepaq.errors import DeepaqError

T = TypeVar("T")
R = TypeVar("R")

ENGINES = ("local", "ray")


class WorkerCrashed(DeepaqError):
    """A task killed the process that ran it, also when run again alone."""


class Engine(Protocol):
    """Runs `fn` over tasks somewhere and streams the results back (see the module docstring)."""

    name: str

    def map(self, fn: Callable[..., R], tasks: Sequence[T], *, desc: str | None, unit: str = "it",
            total: int | None = None, weight: Callable[[R], int] = ..., ordered: bool = False,
            shared: Any = None, chunk_size: int | None = None,
            on_crash: Callable[[T, str], R] | None = None) -> Iterator[tuple[T, R]]:
        """Yield `(task, fn(task))` (or `fn(shared, task)` when `shared` is given) as tasks finish,
        or in task order with `ordered=True`. `desc=None` shows no progress bar; `weight(result)`
        is how many bar units one result counts for (`total` of them in all). A task that kills
        the process running it yields `on_crash(task, why)` (see the module docstrings)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> "Engine": ...

    def __exit__(self, *exc) -> None: ...


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """`--engine` and `--ray-address`, shared by every corpus verb."""
    g = parser.add_argument_group("engine")
    g.add_argument("--engine", choices=ENGINES, default="local",
                   help="local: worker processes on this machine (default); ray: a Ray cluster "
                        "(pip install 'deepaq[cluster]'; audio paths must be readable on every node)")
    g.add_argument("--ray-address", metavar="ADDRESS",
                   help="Ray cluster to join, e.g. 10.0.0.1:6379 or ray://head:10001 "
                        "(default: $RAY_ADDRESS, else a Ray started on this machine for the job)")


def open_engine(name: str = "local", *, workers: int = 1, address: str | None = None) -> Engine:
    """The engine called `name`: `local` with `workers` processes (0: in this process), or `ray`."""
    if name == "local":
        return LocalEngine(workers)
    if name == "ray":
        from deepaq.cluster import RayEngine

        return RayEngine(address)
    from deepaq.errors import ConfigError

    raise ConfigError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)}")


def check_engine_args(args: argparse.Namespace) -> None:
    """ConfigError for options of `add_engine_arguments` that cannot go together."""
    if args.engine == "local" and args.ray_address:
        from deepaq.errors import ConfigError

        raise ConfigError("--ray-address needs --engine ray")


def engine_from_args(args: argparse.Namespace, workers: int) -> Engine:
    """The engine chosen by `add_engine_arguments`' options."""
    check_engine_args(args)
    return open_engine(args.engine, workers=workers, address=args.ray_address)


@contextlib.contextmanager
def given_or_local(engine: Engine | None, workers: int) -> Iterator[Engine]:
    """`engine` as given (its owner closes it), or `workers` local processes closed on exit."""
    if engine is not None:
        yield engine
        return
    with LocalEngine(workers) as local:
        yield local


# ---------------------------------------------------------------- worker processes


def _init_local_worker() -> None:
    one_thread_per_worker()
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """A worker whose parent was killed (kill -9) would wait for work forever: end it instead."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of `workers` spawned processes, each with one thread per numerical library.

    Spawned, not forked: safe when the caller holds threads (torch, tqdm). Scripts that call
    into it need the usual `if __name__ == "__main__":` guard.
    """
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=max(1, workers), mp_context=context, initializer=_init_local_worker)


class LocalEngine:
    """`workers` spawned processes on this machine (0: everything runs in this process).

    The pool starts on the first `map` and is shared by every later one until `close`.
    """

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        self.workers = max(0, int(workers))
        self._pool: ProcessPoolExecutor | None = None

    def map(self, fn: Callable[..., R], tasks: Sequence[T], *, desc: str | None, unit: str = "it",
            total: int | None = None, weight: Callable[[R], int] = lambda _: 1, ordered: bool = False,
            shared: Any = None, chunk_size: int | None = None,
            on_crash: Callable[[T, str], R] | None = None) -> Iterator[tuple[T, R]]:
        """See `Engine.map`; one task per process call (`chunk_size` matters on Ray only)."""
        with progress(desc, len(tasks) if total is None else total, unit) as bar:
            if self.workers == 0:
                results: Iterator = ((t, call(fn, shared, t)) for t in tasks)
            else:
                submitted: dict[Future, tuple[T, ProcessPoolExecutor]] = {}

                def submit(task: T) -> Future:
                    pool = self._live_pool()
                    try:
                        future = pool.submit(call, fn, shared, task)
                    except BrokenProcessPool:  # broke since the last result was read
                        self._drop_pool(pool)
                        pool = self._live_pool()
                        future = pool.submit(call, fn, shared, task)
                    submitted[future] = (task, pool)
                    return future

                def result(future: Future) -> R:
                    task, pool = submitted.pop(future)
                    try:
                        return future.result()
                    except BrokenProcessPool:
                        self._drop_pool(pool)
                        return _run_alone(fn, shared, task, on_crash)

                def cancel(future: Future) -> None:
                    submitted.pop(future, None)
                    future.cancel()

                def wait_any(futures: list[Future]):
                    return wait(futures, return_when=FIRST_COMPLETED)[0]

                results = stream(tasks, submit, wait_any, result, cancel, window=2 * self.workers, ordered=ordered)
            for task, value in results:
                bar.update(weight(value))
                yield task, value

    def _live_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = worker_pool(self.workers)
        return self._pool

    def _drop_pool(self, pool: ProcessPoolExecutor) -> None:
        """Forget a broken pool (the next task starts a fresh one), unless a fresh one is in use."""
        if pool is self._pool:
            pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> "LocalEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _run_alone(fn: Callable[..., R], shared: Any, task: T, on_crash: Callable[[T, str], R] | None) -> R:
    """`fn(task)` in a process of its own: the task was in a pool whose process died, and only
    alone can it be told whether it is the one that kills its process."""
    with worker_pool(1) as solo:
        try:
            return solo.submit(call, fn, shared, task).result()
        except BrokenProcessPool:
            if on_crash is None:
                raise WorkerCrashed(f"{CRASH} while running {task!r}, also when run again alone") from None
            return on_crash(task, CRASH)
