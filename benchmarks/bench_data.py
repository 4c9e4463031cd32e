"""Speed of the weak-label pipeline on this machine: coding, ViSQOL labelling, whole build.

    .venv/bin/python benchmarks/bench_data.py [--clips 2] [--workers 1,2]

For each worker count: items per second for coding alone (the paper's grid: Opus, MP3, AAC x
16-128 kbps, 5 s stereo 48 kHz clips, FLAC written), for ViSQOL labelling alone (5 s pairs read
from FLAC), and for `build_dataset` end to end, also given as hours of item audio per hour of
wall time. Worker processes are started and warmed up (imports, numba, codec delay
calibration) before the clock starts, except in the end-to-end run, which includes everything.
The music is synthetic (plucked harmonic notes); the machine's load average is printed, since
other jobs on the same cores slow every figure down.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from deepaq.codecs import PAPER_BITRATES
from deepaq.data.labels import visqol_scorer
from deepaq.engine import LocalEngine

SR = 48_000
GRID = [(c, b) for c in ("opus", "mp3", "aac") for b in PAPER_BITRATES]


def music(seconds: float, seed: int) -> np.ndarray:
    """Stereo plucked harmonic notes with a little noise, float32 [2, samples]."""
    rng = np.random.default_rng(seed)
    n, note = int(seconds * SR), int(1.5 * SR)  # each note decays for 1.5 s (to -52 dB)
    x = np.zeros((2, n + note))
    t = np.arange(note) / SR
    for onset in range(0, n, SR // 4):
        f0 = 110 * 2 ** (rng.integers(0, 24) / 12)
        for h in range(1, 12):
            pan = rng.uniform(0.3, 1, size=(2, 1))
            x[:, onset : onset + note] += pan * np.exp(-4 * t) * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h
    x = x[:, :n] + 0.01 * rng.standard_normal((2, n))
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def code_item(task: tuple[str, str, float, str]) -> int:
    """Read a clean clip, code it, write the FLAC (what build-data does per item, minus the label)."""
    from deepaq.audio import read_audio, write_audio
    from deepaq.codecs import degrade

    clean, codec, bitrate, out = task
    x, sr = read_audio(clean)
    write_audio(out, degrade(x, sr, codec, bitrate), sr)
    return 1


def label_item(task: tuple[str, str]) -> int:
    visqol_scorer().score(reference=task[0], degraded=task[1])
    return 1


def warm_up(engine: LocalEngine, workers: int, clean: str, folder: Path) -> None:
    """Every worker imports, compiles numba, and calibrates every codec delay before timing."""
    tasks = [(clean, c, b, str(folder / f"warm_{w}_{c}_{b}.flac")) for w in range(workers) for c, b in GRID]
    list(engine.map(code_item, tasks, desc="warm-up"))
    pairs = [(clean, clean)] * workers * 2
    list(engine.map(label_item, pairs, desc="warm-up"))


def timed(engine: LocalEngine, fn, tasks, desc: str) -> float:
    start = time.perf_counter()
    list(engine.map(fn, tasks, desc=desc))
    return time.perf_counter() - start


def bench(workers: int, clips: int, seconds: float, folder: Path) -> dict[str, float]:
    from deepaq.audio import write_audio
    from deepaq.data.build import BuildConfig, build_dataset

    cleans = [str(write_audio(folder / f"clean_{i}.flac", music(seconds, i), SR)) for i in range(clips)]
    coded = [(c, codec, b, str(folder / f"w{workers}_{i}_{codec}_{b}.flac")) for i, c in enumerate(cleans) for codec, b in GRID]
    with LocalEngine(workers) as engine:
        warm_up(engine, workers, cleans[0], folder)
        t_code = timed(engine, code_item, coded, f"code x{workers}")
        pairs = [(task[0], task[3]) for task in coded]
        t_label = timed(engine, label_item, pairs, f"label x{workers}")

    corpus = folder / f"corpus_{workers}"
    corpus.mkdir()
    for i in range(clips):
        write_audio(corpus / f"song_{i}.flac", music(seconds, 100 + i), SR)
    config = BuildConfig(clip_seconds=seconds, max_clips_per_source=1)
    start = time.perf_counter()
    summary = build_dataset([corpus], folder / f"dataset_{workers}", config, workers=workers)
    t_build = time.perf_counter() - start
    n = len(coded)
    return {
        "code": n / t_code,
        "label": n / t_label,
        "build": summary.items / t_build,
        "hours": summary.items * seconds / t_build,  # audio seconds per wall second = hours per hour
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=2, help="clean clips (each gives 21 coded items)")
    parser.add_argument("--seconds", type=float, default=5.0, help="clip length")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        for workers in counts:
            folder = Path(tmp) / f"w{workers}"
            folder.mkdir()
            results[workers] = bench(workers, args.clips, args.seconds, folder)
    print(f"\nweak-label pipeline, {args.seconds:g} s stereo 48 kHz clips, {args.clips} clips x 21 grid items "
          f"(+1 clean in the build); {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}")
    print(f"{'workers':>7} | {'code items/s':>12} | {'label items/s':>13} | {'build items/s':>13} | {'audio h per wall h':>18}")
    print("-" * 75)
    for workers, r in results.items():
        print(f"{workers:>7} | {r['code']:>12.2f} | {r['label']:>13.2f} | {r['build']:>13.2f} | {r['hours']:>18.2f}")


if __name__ == "__main__":
    main()
