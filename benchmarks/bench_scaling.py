"""Throughput of the engines: items/s for ViSQOL labelling and built-in-model scoring.

One run measures, on the same pairs of real music (tests/data/codecs, coded with Opus and MP3):
- the local engine (`--workers 2` processes; scoring also in this one process, the default);
- Ray with one node (1 CPU) and with two nodes (1 CPU each), both on this machine, started
  with `ray.cluster_utils.Cluster` (the same raylets `ray start` runs).
Each row is steady-state: the engine's workers are warmed up on a few items first (ViSQOL and
the model loaded), then the timed job runs. It also prints the CPU seconds one item costs in
this process (`time.process_time`, which waiting for a busy core does not inflate), which
docs/scaling.md turns into projections for larger sets.

    .venv/bin/python benchmarks/bench_scaling.py [--label-pairs 12] [--score-pairs 96] [--seconds 5]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "codecs"


def make_pairs(folder: Path, n: int, seconds: float) -> Path:
    """A pairs CSV of `n` (reference, coded) pairs, `seconds` long, cycling through the excerpts."""
    from deepaq.codecs import degrade

    rows = []
    files = sorted(DATA.glob("*.flac"))
    for k in range(n):
        x, sr = sf.read(files[k % len(files)], dtype="float32", always_2d=True)
        x = np.tile(x.T, (1, int(np.ceil(seconds * sr / x.shape[0]))))[:, : int(seconds * sr)]
        codec, kbps = (("opus", 32), ("mp3", 96), ("opus", 64))[k % 3]
        ref, deg = folder / f"ref{k}.flac", folder / f"deg{k}.flac"
        sf.write(ref, x.T, sr)
        sf.write(deg, degrade(x, sr, codec, kbps).T, sr)
        rows.append((f"p{k}", ref.name, deg.name))
    path = folder / f"pairs{n}.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([("id", "reference", "degraded"), *rows])
    return path


def timed(engine, fn, tasks, warm, shared=None) -> float:
    """Seconds for `fn` over `tasks` on `engine`, after `warm` tasks warmed its workers up."""
    list(engine.map(fn, warm, desc=None, shared=shared))
    start = time.perf_counter()
    for _ in engine.map(fn, tasks, desc=None, shared=shared):
        pass
    return time.perf_counter() - start


def measure(engine, label_tasks, score_jobs, options) -> tuple[float, float]:
    from deepaq.data.labels import score_pair
    from deepaq.scoring.remote import score_one

    label_s = timed(engine, score_pair, label_tasks, label_tasks[: 2 * getattr(engine, "cpus", 2)])
    score_s = timed(engine, score_one, score_jobs, score_jobs[:8], shared=(options, None))
    return len(label_tasks) / label_s, len(score_jobs) / score_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label-pairs", type=int, default=12, help="pairs labelled with ViSQOL per row")
    parser.add_argument("--score-pairs", type=int, default=96, help="pairs scored with the built-in model per row")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each pair (default 5 s)")
    args = parser.parse_args()

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    os.environ.setdefault("RAY_AUTH_TOKEN", os.urandom(16).hex())
    import ray
    from ray.cluster_utils import Cluster

    from deepaq.cluster import RayEngine
    from deepaq.data.labels import read_pairs
    from deepaq.engine import LocalEngine
    from deepaq.scoring import Scorer
    from deepaq.scoring.inputs import jobs_from_pairs_csv

    work = Path(tempfile.mkdtemp(prefix="deepaq-bench-scaling-"))
    label_csv = make_pairs(work, args.label_pairs, args.seconds)
    score_csv = make_pairs(work, min(args.score_pairs, 24), args.seconds)
    label_tasks = read_pairs(label_csv)
    base = jobs_from_pairs_csv(score_csv)
    score_jobs = [type(j)(f"{j.id}#{k}", j.degraded, j.reference) for k in range(-(-args.score_pairs // len(base)))
                  for j in base][: args.score_pairs]
    options = dict(model="deepaq-compact", cache_dir=False)

    from deepaq.data.labels import score_pair

    rows = []
    with LocalEngine(2) as local:
        rows.append(("local engine, 2 processes", 2, *measure(local, label_tasks, score_jobs, options)))
    scorer = Scorer(**options)
    list(scorer.iter_scores(score_jobs[:8]))
    start, cpu = time.perf_counter(), time.process_time()
    list(scorer.iter_scores(score_jobs))
    score_cpu = (time.process_time() - cpu) / len(score_jobs)
    rows.append(("local, scoring in this process", 1, float("nan"), len(score_jobs) / (time.perf_counter() - start)))
    score_pair(label_tasks[0])  # ViSQOL loaded
    cpu = time.process_time()
    for task in label_tasks:
        score_pair(task)
    label_cpu = (time.process_time() - cpu) / len(label_tasks)

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 100_000_000,
                                                              "include_dashboard": False})
    try:
        for nodes in (1, 2):
            if nodes == 2:
                cluster.add_node(num_cpus=1, object_store_memory=100_000_000)
                cluster.wait_for_nodes()
            engine = RayEngine(cluster.address)
            try:
                rows.append((f"ray, {nodes} node{'s' * (nodes > 1)} x 1 CPU", nodes,
                             *measure(engine, label_tasks, score_jobs, options)))
            finally:
                engine.close()
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()

    base_label, base_score = rows[0][2], rows[0][3]
    print(f"\n{args.label_pairs} pairs labelled (ViSQOL v3), {len(score_jobs)} scored (deepaq-compact), "
          f"{args.seconds:g} s each; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"{'engine':34} {'cores':>5} {'label/s':>8} {'x local':>7} {'score/s':>8} {'x local':>7}")
    for name, cores, lab, sco in rows:
        print(f"{name:34} {cores:5d} {lab:8.2f} {lab / base_label:7.2f} {sco:8.2f} {sco / base_score:7.2f}")
    one, two = rows[2], rows[3]
    print(f"2 nodes vs 1 node: labels x{two[2] / one[2]:.2f}, scores x{two[3] / one[3]:.2f} (ideal x2)")
    print(f"CPU time per item in one process: ViSQOL label {label_cpu:.3f} s ({label_cpu / args.seconds:.3f} s per "
          f"second of audio), deepaq-compact score {score_cpu:.4f} s ({score_cpu / args.seconds:.4f} s per second)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
