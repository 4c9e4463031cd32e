"""What a user feels: a cold `deepaq score` CLI, warm Scorer throughput, a busy core, batches.

    python benchmarks/bench_cold_start.py [--data ../shared/data/visqol_testdata] [--repeats 5]
        [--pairs 3] [--batch 16] [--skip-visqol]

All in one run, on 10 s stereo 48 kHz pairs (a reference and its AAC 64 kbps copy, 16-bit WAV):

1. Cold start: a new process per call, warm disk, median of `--repeats`: the bare
   `python -c "import numpy, scipy.signal, soundfile, av"`, `deepaq score REF DEG` (numpy
   backend, the default; `--network-only`, without the 2f part and its numba kernels; and
   `--backend torch`), our `deepaq peaq REF DEG` and ViSQOL's CLI
   (`visqol -r REF -d DEG`, visqol-python). Ratios against the bare import and ViSQOL.
2. Warm: one process per setting, the metric loaded once, seconds per pair (median) with the
   machine as it is and with one core taken by a spinning process, for each thread setting
   (`threads` = BLAS/OpenMP/torch threads, set before import); ratio busy / idle and against
   ViSQOL in the same condition.
3. Batch: `deepaq score --pairs` over `--batch` pairs (the pairs repeated), wall time of the
   whole command with `--processes 1` and `--processes 2`.

The machine is not otherwise quiet when other jobs run: the load average is printed first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_default_model import DEFAULT_DATA, pair_times, speed_pairs  # noqa: E402

BIN = Path(sys.executable).parent
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
WARM = [("deepaq numpy", "numpy", 1), ("deepaq numpy", "numpy", 2), ("deepaq torch", "torch", 1),
        ("deepaq torch", "torch", 2), ("PEAQ (ours)", "peaq", 0), ("ViSQOL", "visqol", 0)]


def timed(cmd: list[str], repeats: int) -> float:
    """Median wall time of `cmd` in a new process (one untimed run first: warm disk)."""
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def cold_table(ref: str, deg: str, repeats: int, visqol: bool) -> None:
    deepaq = str(BIN / "deepaq")
    rows = [("bare import", [sys.executable, "-c", "import numpy, scipy.signal, soundfile, av"]),
            ("deepaq score", [deepaq, "score", ref, deg, "--no-cache"]),
            ("deepaq score --network-only", [deepaq, "score", ref, deg, "--no-cache", "--network-only"]),
            ("deepaq score --backend torch", [deepaq, "score", ref, deg, "--no-cache", "--backend", "torch"]),
            ("deepaq peaq", [deepaq, "peaq", ref, deg])]
    if visqol:
        rows.append(("visqol (CLI)", [str(BIN / "visqol"), "-r", ref, "-d", deg]))
    seconds = {name: timed(cmd, repeats) for name, cmd in rows}
    bare, base = seconds["bare import"], seconds.get("visqol (CLI)")
    print(f"\n1. Cold start, one 10 s stereo pair, new process per call, median of {repeats}")
    print(f"{'command':<30}{'s':>8}{'vs bare import':>16}{'vs ViSQOL':>11}")
    for name, s in seconds.items():
        vs = f"{base / s:10.1f}x" if base else "         -"
        print(f"{name:<30}{s:8.2f}{s / bare:15.2f}x{vs}")
    print("(vs bare import: time / bare import time, the target is <= 2; vs ViSQOL: ViSQOL's time / this)")


def warm_worker(metric: str, threads: int, pairs: list[list[str]], repeats: int) -> float:
    """Runs in its own process: median seconds per pair with the metric loaded once."""
    if metric in ("numpy", "torch"):
        from deepaq.scoring import Scorer

        scorer = Scorer(cache_dir=False, backend=metric, threads=threads)
        fn = lambda r, d: scorer.score(reference=r, degraded=d)  # noqa: E731
    elif metric == "peaq":
        from deepaq.baselines.peaq import peaq

        fn = lambda r, d: peaq(reference=r, degraded=d)  # noqa: E731
    else:
        from deepaq.baselines.visqol import VisqolV3

        visqol = VisqolV3()
        fn = lambda r, d: visqol.score(reference=r, degraded=d)  # noqa: E731
    return statistics.median(pair_times(fn, pairs, repeats))


def run_warm(metric: str, threads: int, pairs: list[list[str]], repeats: int) -> float:
    env = dict(os.environ)
    if threads:
        env.update({name: str(threads) for name in THREAD_VARIABLES})
    cmd = [sys.executable, __file__, "--warm-worker", metric, str(threads), str(repeats), json.dumps(pairs)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"warm worker {metric} failed:\n{proc.stderr[-2000:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def warm_table(pairs: list[list[str]], repeats: int, visqol: bool) -> None:
    settings = [w for w in WARM if visqol or w[1] != "visqol"]
    idle = {(m, t): run_warm(m, t, pairs, repeats if m != "visqol" else 1) for _, m, t in settings}
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        busy = {(m, t): run_warm(m, t, pairs, repeats if m != "visqol" else 1) for _, m, t in settings}
    finally:
        spinner.kill()
        spinner.wait()
    print(f"\n2. Warm, seconds per 10 s stereo pair (decode to score, median), {len(pairs)} pairs")
    print(f"{'metric':<16}{'threads':>8}{'as is':>9}{'x RT':>7}{'core busy':>11}{'x RT':>7}{'busy/as is':>12}"
          f"{'vs ViSQOL':>11}{'busy vs ViSQOL':>16}")
    vi, vb = idle.get(("visqol", 0)), busy.get(("visqol", 0))
    for name, m, t in settings:
        a, b = idle[(m, t)], busy[(m, t)]
        ratio = f"{vi / a:10.1f}x{vb / b:15.1f}x" if vi else ""
        print(f"{name:<16}{t or 'lib':>8}{a:9.3f}{10 / a:7.0f}{b:11.3f}{10 / b:7.0f}{b / a:11.2f}x{ratio}")
    print("(threads: BLAS/OpenMP/torch threads per process, 'lib' = the library's default; core busy: "
          "a second process spins on one of the cores)")


def batch_table(pairs: list[list[str]], n: int, folder: Path) -> None:
    csv_path = folder / "pairs.csv"
    lines = ["id,reference,degraded"] + [f"p{i:03d},{pairs[i % len(pairs)][0]},{pairs[i % len(pairs)][1]}"
                                         for i in range(n)]
    csv_path.write_text("\n".join(lines) + "\n")
    print(f"\n3. Batch: deepaq score --pairs, {n} pairs of 10 s, whole command (start included)")
    print(f"{'processes':<12}{'s':>8}{'pairs/s':>9}{'speed-up':>10}")
    first = None
    for processes in (1, 2):
        out = folder / f"out{processes}.csv"
        cmd = [str(BIN / "deepaq"), "score", "--pairs", str(csv_path), "--out", str(out), "--overwrite",
               "--no-cache", "--processes", str(processes)]
        s = timed(cmd, 1)
        first = first or s
        print(f"{processes:<12}{s:8.2f}{n / s:9.1f}{first / s:9.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=3, help="distinct 10 s pairs for the warm figures")
    parser.add_argument("--batch", type=int, default=64, help="pairs in the batch run")
    parser.add_argument("--skip-visqol", action="store_true")
    parser.add_argument("--warm-worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.warm_worker:
        metric, threads, repeats, pairs = args.warm_worker
        print(warm_worker(metric, int(threads), json.loads(pairs), int(repeats)))
        return
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="deepaq-bench-") as tmp:
        pairs = [[str(r), str(d)] for r, d in speed_pairs(args.data, Path(tmp), args.pairs)]
        cold_table(*pairs[0], args.repeats, not args.skip_visqol)
        warm_table(pairs, 3, not args.skip_visqol)
        batch_table(pairs, args.batch, Path(tmp))


if __name__ == "__main__":
    main()
