"""The Ray engine: the corpus verbs' work as Ray tasks of many items, on any Ray cluster.

Why tasks, not actors: Ray reruns a task whose worker or node was lost on another node by
itself (`max_retries`), while calls queued on a lost actor die with it. Ray keeps its worker
processes for the whole job and reuses them for every task, so a module-level cache
(`visqol_scorer()`, the evaluation's metrics, the Scorer cache in `deepaq.scoring.remote`)
still loads ViSQOL, a model or PEAQ once per worker process, as the local engine does.

Audio travels as paths: every node must see the input (and, for `build-data`, the output)
folders at the same path, e.g. on NFS, a shared volume in Kubernetes, or a copy at the same
place on each machine. Tasks run in the driver's working folder, so relative paths work too. Results (label rows, scores) travel back to the driver, which writes
them; the driver never holds more than a window of 2 tasks per cluster CPU.

Faults: the driver killed (kill -9) ends the Ray job and its tasks; rerunning the command
resumes from what the driver had written (the verbs' journals). A lost worker or node: its
tasks run again elsewhere. An exception raised by the task function (e.g. a full disk)
stops the run with that exception, as locally; a bad item is an error row, as locally. A
task that kills its worker process on every retry (a crash in native code): with the caller's
`on_crash`, each task of its chunk runs again as a task of its own, and the one that crashes
again becomes `on_crash(task, why)`, as locally; without it, the run stops with a DeepaqError.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any, Callable, Iterator, Sequence, TypeVar

from deepaq.dispatch import CRASH, call, one_thread_per_worker, progress, stream
from deepaq.errors import ConfigError, DeepaqError, require

T = TypeVar("T")
R = TypeVar("R")

MAX_CHUNK = 16  # items per Ray task at most; fewer when there are few items per CPU
CHUNKS_PER_CPU = 4  # aim for this many tasks per cluster CPU, so work spreads over nodes
MAX_RETRIES = 5  # reruns of a task whose worker or node died


def _run_chunk(fn: Callable, shared: Any, chunk: list, cwd: str) -> list:
    """One Ray task: `fn` over a chunk of tasks in a worker process, in the driver's working
    folder (so relative paths mean what they mean to the driver, error messages included)."""
    one_thread_per_worker()
    if os.getcwd() != cwd:
        try:
            os.chdir(cwd)
        except OSError as exc:
            raise ConfigError(f"{cwd}: the driver's working folder is not on this Ray node ({exc}); every node "
                              "must see the driver's folders at the same paths (see docs/scaling.md)") from None
    return [call(fn, shared, task) for task in chunk]


class RayEngine:
    """Runs the work on the Ray cluster at `address` (None: `$RAY_ADDRESS`, else a local Ray)."""

    name = "ray"

    def __init__(self, address: str | None = None) -> None:
        ray = require("ray", "--engine ray", "cluster")
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            address = address or os.environ.get("RAY_ADDRESS") or None
            options: dict[str, Any] = {"logging_level": logging.WARNING}
            if address is None:  # a Ray of this machine's cores, for this job only
                options["include_dashboard"] = False
            try:
                ray.init(address=address, **options)
            except ConnectionError as exc:
                raise ConfigError(f"cannot reach the Ray cluster at {address}: {exc}") from None
        self.cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        chunk_task = ray.remote(_run_chunk)
        self._remote = chunk_task.options(num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False)
        self._alone = chunk_task.options(num_cpus=1, max_retries=0, retry_exceptions=False)  # see `_one_alone`

    def map(self, fn: Callable[..., R], tasks: Sequence[T], *, desc: str | None, unit: str = "it",
            total: int | None = None, weight: Callable[[R], int] = lambda _: 1, ordered: bool = False,
            shared: Any = None, chunk_size: int | None = None,
            on_crash: Callable[[T, str], R] | None = None) -> Iterator[tuple[T, R]]:
        """See `deepaq.engine.Engine.map`. Tasks go out in chunks of `chunk_size` (default: enough
        chunks for every CPU, at most MAX_CHUNK tasks each); `shared` is stored once in the object store."""
        ray = self._ray
        size = chunk_size or max(1, min(MAX_CHUNK, math.ceil(len(tasks) / (CHUNKS_PER_CPU * self.cpus))))
        chunks = [list(tasks[i : i + size]) for i in range(0, len(tasks), size)]
        shared_ref = ray.put(shared) if shared is not None else None
        cwd = os.getcwd()

        sent: dict = {}

        def submit(chunk: list):
            ref = self._remote.remote(fn, shared_ref, chunk, cwd)
            sent[ref] = chunk
            return ref

        def wait_any(refs: list) -> list:
            return ray.wait(refs, num_returns=1)[0]

        def get(ref) -> list:
            chunk = sent.pop(ref)
            try:
                return self._get(ref)
            except ray.exceptions.WorkerCrashedError:
                if on_crash is None:
                    raise DeepaqError(f"a Ray task's worker process died on each of {MAX_RETRIES + 1} tries "
                                      "(a crash in native code?); finished items are saved") from None
                return [self._one_alone(fn, shared_ref, task, cwd, on_crash) for task in chunk]

        def cancel(ref) -> None:
            sent.pop(ref, None)
            ray.cancel(ref)

        with progress(desc, len(tasks) if total is None else total, unit) as bar:
            for chunk, values in stream(chunks, submit, wait_any, get, cancel, window=2 * self.cpus, ordered=ordered):
                for task, value in zip(chunk, values):
                    bar.update(weight(value))
                    yield task, value

    def _one_alone(self, fn: Callable, shared_ref: Any, task: Any, cwd: str, on_crash: Callable) -> Any:
        """One task of a chunk whose worker kept dying, as a task of its own, tried once."""
        try:
            return self._get(self._alone.remote(fn, shared_ref, [task], cwd))[0]
        except self._ray.exceptions.WorkerCrashedError:
            return on_crash(task, CRASH)

    def _get(self, ref) -> list:
        ray = self._ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # the task function raised: re-raise it as such
            cause = getattr(exc, "cause", None)
            if isinstance(cause, BaseException):
                raise cause from None
            raise
        except ray.exceptions.WorkerCrashedError:  # the caller decides (`map`'s on_crash)
            raise
        except ray.exceptions.RayError as exc:
            raise DeepaqError(f"a Ray task failed after {MAX_RETRIES} retries ({type(exc).__name__}: {exc}); "
                              "finished items are saved, run the same command again to resume") from None

    def close(self) -> None:
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()

    def __enter__(self) -> "RayEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
