"""Speed of PEAQ Basic against ViSQOL v3 on the same 10 s stereo 48 kHz pairs, on one core.

    python benchmarks/bench_peaq.py [--data ../shared/data/visqol_testdata] [--seconds 10] [--repeats 3]

Both metrics get the same in-memory pairs (decoding is not timed; ViSQOL's codec pairs are
not delay-compensated, which changes no timing but makes their PEAQ scores meaningless, so
none are printed), after one untimed
warm-up call each (numba compiles or loads its cache). The process is pinned to one CPU and
every thread pool is limited to one thread before numpy is imported. Prints seconds per
pair (median of the repeats) for each pair, the mean, and the ratio ViSQOL / PEAQ.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "visqol_testdata"


def find_pairs(folder: Path) -> list[tuple[str, Path, Path]]:
    """(name, reference, degraded) for every `NAME48_stereo_<condition>.wav|.flac` with its reference."""
    pairs = []
    for deg in sorted(folder.glob("*48_stereo_*.*")):
        ref = folder / (deg.name.split("_stereo_")[0] + "_stereo" + deg.suffix)
        if ref.exists():
            pairs.append((deg.stem, ref, deg))
    return pairs


def excerpt(path: Path, seconds: float) -> np.ndarray:
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    if sr != 48_000 or x.shape[0] < seconds * sr:
        raise SystemExit(f"{path}: need at least {seconds} s at 48 kHz")
    return np.ascontiguousarray(x[: int(seconds * sr)].T)


def seconds_per_call(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with ViSQOL's test pairs")
    parser.add_argument("--seconds", type=float, default=10.0, help="excerpt length per pair")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per pair and metric")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    from deepaq.baselines.peaq import peaq
    from deepaq.baselines.visqol import VisqolV3

    pairs = [(name, excerpt(r, args.seconds), excerpt(d, args.seconds)) for name, r, d in find_pairs(args.data)]
    if not pairs:
        raise SystemExit(f"no pairs found in {args.data}")
    visqol = VisqolV3()
    _, ref0, deg0 = pairs[0]
    peaq(reference=(ref0, 48_000), degraded=(deg0, 48_000))  # warm-up: numba cache / compile
    visqol.score(reference=(ref0, 48_000), degraded=(deg0, 48_000))

    print(f"{len(pairs)} pairs, {args.seconds:g} s stereo 48 kHz each, 1 thread, median of {args.repeats}")
    print(f"{'pair':42s} {'PEAQ s':>8s} {'ViSQOL s':>9s} {'ratio':>6s}")
    rows = []
    for name, ref, deg in pairs:
        t_peaq = seconds_per_call(lambda: peaq(reference=(ref, 48_000), degraded=(deg, 48_000)), args.repeats)
        t_visqol = seconds_per_call(
            lambda: visqol.score(reference=(ref, 48_000), degraded=(deg, 48_000)), args.repeats
        )
        rows.append((t_peaq, t_visqol))
        print(f"{name:42s} {t_peaq:8.3f} {t_visqol:9.3f} {t_visqol / t_peaq:6.1f}")
    mean_peaq = statistics.mean(r[0] for r in rows)
    mean_visqol = statistics.mean(r[1] for r in rows)
    print(f"{'mean':42s} {mean_peaq:8.3f} {mean_visqol:9.3f} {mean_visqol / mean_peaq:6.1f}")
    ratio = mean_visqol / mean_peaq
    print(f"PEAQ is {ratio:.1f}x faster than ViSQOL v3 ({visqol.version}) per {args.seconds:g} s pair")
    return 0


if __name__ == "__main__":
    sys.exit(main())
