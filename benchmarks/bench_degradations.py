"""Speed of every deepaq.degradations family on this machine, against the grid's Opus coding.

    .venv/bin/python benchmarks/bench_degradations.py [--seconds 5] [--draws 3]

For each family: seconds per item (the median over `--draws` sampled conditions, each applied
to the same 5 s stereo 48 kHz clip of synthetic music, one process), times real time, and the
ratio to `deepaq.codecs.degrade(x, 48000, "opus", 64)` measured in the same run. Codec delay
calibration runs once per setting and is warmed up before the clock starts. The load average
is printed, since other jobs on the same cores slow every figure down.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from deepaq import degradations as dg
from deepaq.codecs import degrade

SR = 48_000


def _music(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    x = np.zeros((2, n))
    for onset in range(0, n, SR // 4):
        f0 = 110 * 2 ** (rng.integers(0, 24) / 12)
        env = np.where(t >= onset / SR, np.exp(-5 * (t - onset / SR)), 0)
        for h in range(1, 10):
            x += rng.uniform(0.3, 1, size=(2, 1)) * env * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h
    x += 0.01 * rng.standard_normal((2, n))
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def _timed(fn) -> float:
    fn()  # warm-up: imports, delay calibration
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--draws", type=int, default=3)
    args = parser.parse_args()
    x = _music(args.seconds)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {args.seconds:g} s stereo 48 kHz, "
          f"median of {args.draws} sampled conditions")
    baseline = _timed(lambda: degrade(x, SR, "opus", 64))
    print(f"{'family':14s} {'s/item':>8s} {'x real time':>12s} {'vs opus 64':>11s}")
    print(f"{'(opus 64 grid)':14s} {baseline:8.3f} {args.seconds / baseline:12.1f} {1.0:11.2f}")
    for name in dg.FAMILIES:
        rng = np.random.default_rng(1)
        times = []
        for draw in range(args.draws):
            params = dg.sample_condition(name, rng)
            times.append(_timed(lambda: dg.apply(name, x, SR, params, draw)))
        t = statistics.median(times)
        print(f"{name:14s} {t:8.3f} {args.seconds / t:12.1f} {t / baseline:11.2f}")


if __name__ == "__main__":
    main()
