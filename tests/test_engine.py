"""deepaq.engine: the local engine's map (in this process and in worker processes), the
bounded window, ordered results, errors, and that nothing on the local path imports Ray."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from deepaq.engine import LocalEngine, add_engine_arguments, engine_from_args, stream
from deepaq.errors import ConfigError


def _slow_square(x: int) -> int:
    import time

    time.sleep(0.05 * (x % 3))  # later tasks finish first sometimes
    return x * x


def _scaled(shared: int, x: int) -> int:
    return shared * x


def _fails(x: int) -> int:
    if x == 3:
        raise OSError(28, "No space left on device")
    return x


@pytest.mark.parametrize("workers", [0, 2])
def test_local_map_ordered_and_unordered(workers):
    tasks = list(range(12))
    with LocalEngine(workers) as engine:
        ordered = list(engine.map(_slow_square, tasks, desc=None, ordered=True))
        assert ordered == [(t, t * t) for t in tasks]
        unordered = list(engine.map(_slow_square, tasks, desc=None))
        assert sorted(unordered) == ordered
        assert sorted(engine.map(_scaled, [1, 2], desc=None, shared=10)) == [(1, 10), (2, 20)]


def test_an_exception_of_the_function_stops_the_map():
    with LocalEngine(2) as engine, pytest.raises(OSError, match="No space left"):
        list(engine.map(_fails, list(range(6)), desc=None, ordered=True))


def test_stream_keeps_a_bounded_window_and_cancels_the_rest():
    pending, most, cancelled = set(), 0, []

    def submit(unit):
        nonlocal most
        pending.add(unit)
        most = max(most, len(pending))
        return unit

    def wait_any(handles):  # the newest finishes first: ordered output must wait for the oldest
        pending.discard(max(handles))
        return [max(handles)]

    out = [u for u, _ in stream(range(20), submit, wait_any, lambda h: h, cancelled.append, window=3, ordered=True)]
    assert out == list(range(20)) and most <= 3
    gen = stream(range(20), submit, wait_any, lambda h: h, cancelled.append, window=3, ordered=False)
    next(gen)
    gen.close()
    assert cancelled  # what was still in flight is cancelled when the consumer stops


def test_ray_address_needs_the_ray_engine():
    parser = argparse.ArgumentParser()
    add_engine_arguments(parser)
    with pytest.raises(ConfigError, match="--engine ray"):
        engine_from_args(parser.parse_args(["--ray-address", "10.0.0.1:6379"]), 1)


def test_evaluate_with_one_job_refuses_a_ray_address_too(tmp_path, capsys):
    from deepaq.cli import main

    manifest = tmp_path / "test.csv"
    manifest.write_text("test,stimulus,reference,degraded,score\n")
    assert main(["evaluate", str(manifest), "--ray-address", "10.0.0.1:6379", "--out", str(tmp_path / "out")]) != 0
    assert "--engine ray" in capsys.readouterr().err


def test_the_local_engine_never_imports_ray():
    code = (
        "import sys, math\n"
        "import deepaq.data.labels, deepaq.data.build, deepaq.scoring.remote, deepaq.evaluation.runner\n"
        "from deepaq.cli import build_parser\n"
        "for verb in ('label', 'build-data', 'score', 'evaluate'): build_parser(verb)\n"
        "from deepaq.engine import open_engine\n"
        "with open_engine('local', workers=1) as e: assert [r for _, r in e.map(math.sqrt, [4.0], desc=None)] == [2.0]\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def _aborts_on_three(x: int) -> int:
    import os

    if x == 3:
        os.abort()  # as an assertion in native code (an FFmpeg encoder) does
    return x * x


def test_a_task_that_kills_its_process_is_handed_to_on_crash_and_the_rest_finish():
    """Every other task (also those in flight in the dead pool) still gives its result, in
    order; the pool serves later maps again."""
    tasks = list(range(10))
    with LocalEngine(2) as engine:
        got = list(engine.map(_aborts_on_three, tasks, desc=None, ordered=True,
                              on_crash=lambda task, why: f"crashed: {why}"))
        assert [t for t, _ in got] == tasks
        assert [v for t, v in got if t != 3] == [t * t for t in tasks if t != 3]
        assert got[3][1].startswith("crashed: its worker process died")
        assert sorted(engine.map(_slow_square, [1, 2], desc=None)) == [(1, 1), (2, 4)]


def test_without_on_crash_the_task_that_kills_its_process_is_named():
    from deepaq.engine import WorkerCrashed

    with LocalEngine(2) as engine, pytest.raises(WorkerCrashed, match="while running 3, also when run again alone"):
        list(engine.map(_aborts_on_three, list(range(6)), desc=None))
